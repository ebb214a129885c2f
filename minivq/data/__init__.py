"""Data for minivq: synthetic toy modalities and spoken-digit scenes.

* ``toy_pairs(n, seed)``: two synthetic modalities of the same concepts (a
  sequence of frames and a grid of patches, with unrelated prototypes), for
  the notebooks that must train in seconds (``toy.py``).
* ``digit_scenes(split, n, seed)``: canvases of 2 or 3 handwritten digits
  paired with spoken captions and tokens naming them (``digits.py``), built
  from the banks shipped in ``data_small/`` (``bank.py``, ``files.py``).
* ``log_mel`` and ``mel_filterbank``: the speech front end that built the bank
  (``audio.py``).

Every unit comes with its concept label (-1 for background), the ground truth
for METHOD.md (LOC) and (CC). ``notebooks/00_data.ipynb`` shows the data.
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
