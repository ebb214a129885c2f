"""Data for minivq, every unit with its concept label (-1 for background), the ground truth of (LOC) and (CC).

:mod:`.toy` (two synthetic modalities that train in seconds), :mod:`.digits`
(spoken-digit scenes), :mod:`.world` (the hard world), :mod:`.bank` and
:mod:`.files` (the shipped banks in ``data_small/``), :mod:`.audio` (the
log-mel front end), :mod:`.batches` (a batch's encoder inputs).
``notebooks/00_data.ipynb`` shows the data.
"""
from .audio import dequantize_uint8, hz_to_mel, log_mel, mel_filterbank, mel_to_hz, quantize_uint8
from .bank import DIGIT_WORDS, SPLITS, SpeechBank, digit_images, speaker_names, speech_bank
from .digits import TEXT_VOCAB, digit_scenes
from .files import DataFileError, data_dir
from .toy import toy_pairs

__all__ = [
    "DIGIT_WORDS", "SPLITS", "TEXT_VOCAB", "DataFileError", "SpeechBank", "data_dir",
    "dequantize_uint8", "digit_images", "digit_scenes", "hz_to_mel", "log_mel",
    "mel_filterbank", "mel_to_hz", "quantize_uint8", "speaker_names", "speech_bank",
    "toy_pairs",
]
