"""The two shipped banks that spoken-digit scenes are composed from.

* ``digit_images(split)``: the 8x8 UCI optical digits (Alpaydin and Kaynak,
  UCI Machine Learning Repository, CC BY 4.0) of one split.
* ``speech_bank()``: about 200 log-mel renderings of each word "zero".."nine"
  (espeak-ng and flite, see ``data_small/README.md``), grouped in *takes*: a
  take is one speaker saying all ten words with one setting of accent, speed
  and pitch. Speakers are disjoint between the splits.

Both come from ``files.load_npz``, which verifies the SHA-256 first.
"""
from dataclasses import dataclass

import numpy as np

from .._checks import check_float_dtype, check_int, describe
from .audio import dequantize_uint8
from .files import load_json, load_npz

SPLITS = ("train", "val", "test")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def split_index(split):
    """Position of ``split`` in SPLITS; ValueError for anything else."""
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {describe(split)}")
    return SPLITS.index(split)


#: The most scenes (pairs) one call may generate.
MAX_SCENES = 1 << 20


def check_n_seed(n, seed):
    """(n, seed) as Python ints: n in [1, 2^20], seed >= 0 (TypeError for other types, ValueError out of range)."""
    return check_int(n, "n", 1, MAX_SCENES), check_int(seed, "seed", 0)


def digit_images(split):
    """The 8x8 digit images of one split.

    Parameters
    ----------
    split : {"train", "val", "test"}

    Returns
    -------
    images : ndarray, shape (N, 8, 8), uint8
        Ink 0..16 (divide by 16 for [0, 1]).
    labels : ndarray, shape (N,), int64
        The digit shown.
    ids : ndarray, shape (N,), int64
        Row of each image in ``digits_8x8.npz`` (the splits are disjoint:
        70% train, 10% val, 20% test of each digit).
    """
    z = load_npz("digits_8x8.npz")
    ids = np.flatnonzero(z["split"] == split_index(split))
    return z["images"][ids], z["labels"][ids], ids


@dataclass(frozen=True)
class SpeechBank:
    """The word renderings, as stored (uint8 dB) plus the lookup tables.

    Attributes
    ----------
    mel : ndarray, shape (F, 40), uint8
        All renderings' frames, concatenated.
    offsets : ndarray, shape (R + 1,), int64
        Rendering r is ``mel[offsets[r]:offsets[r + 1]]``.
    word, take : ndarray, shape (R,), int64
        The digit said in rendering r and the take it belongs to.
    take_speaker : ndarray, shape (n_takes,), int64
    speaker_split : ndarray, shape (n_speakers,), int64
        0 train, 1 val, 2 test.
    rendering_of : ndarray, shape (n_takes, 10), int64
        ``rendering_of[t, d]`` is the rendering of digit d in take t.
    db_lo, db_step : float
        Dequantization: dB = db_lo + q * db_step (clipped at -80 dB, 0 dB peak).
    mean_db, std_db : ndarray, shape (40,), float32
        Per-band mean and std (dB) over every frame of the train renderings;
        ``digit_scenes`` normalizes speech as (dB - mean_db) / std_db, so val
        and test statistics never leak into the features.
    """

    mel: np.ndarray
    offsets: np.ndarray
    word: np.ndarray
    take: np.ndarray
    take_speaker: np.ndarray
    speaker_split: np.ndarray
    rendering_of: np.ndarray
    db_lo: float
    db_step: float
    mean_db: np.ndarray
    std_db: np.ndarray

    def rendering_db(self, r, dtype=np.float32):
        """Log-mel of rendering r in dB, shape (T_r, 40); dtype float32 or float64."""
        r = check_int(r, "r", 0, len(self.offsets) - 2)
        dtype = check_float_dtype(dtype).type
        q = self.mel[self.offsets[r]:self.offsets[r + 1]]
        return dequantize_uint8(q, self.db_lo, self.db_step, dtype)

    def takes_of(self, split):
        """Indices of the takes whose speaker belongs to ``split``, shape (n,)."""
        return np.flatnonzero(self.speaker_split[self.take_speaker] == split_index(split))


def speech_bank():
    """The verified speech bank (cached; arrays are read-only).

    Returns
    -------
    SpeechBank
    """
    z = load_npz("speech_bank.npz")
    key = id(z["mel"])  # the cached bank keeps z["mel"] alive, so the id stays unique
    if key not in _BANKS:
        _BANKS.clear()
        _BANKS[key] = _make_bank(z)
    return _BANKS[key]


_BANKS = {}


def _make_bank(z):
    """Build the lookup table and the train statistics of a loaded speech_bank.npz."""
    rendering_of = np.full((len(z["take_speaker"]), len(DIGIT_WORDS)), -1, dtype=np.int64)
    rendering_of[z["take"], z["word"]] = np.arange(len(z["word"]))
    if (rendering_of < 0).any():
        raise ValueError("speech_bank.npz: some take lacks a rendering of some word")
    train = z["speaker_split"][z["take_speaker"][z["take"]]] == 0  # (R,) train renderings
    rows = np.repeat(train, np.diff(z["offsets"]))  # (F,) frames of train renderings
    frames = dequantize_uint8(z["mel"][rows], float(z["db_lo"]), float(z["db_step"]), np.float64)
    mean_db, std_db = frames.mean(axis=0).astype(np.float32), frames.std(axis=0).astype(np.float32)
    return SpeechBank(z["mel"], z["offsets"], z["word"], z["take"], z["take_speaker"],
                      z["speaker_split"], rendering_of, float(z["db_lo"]), float(z["db_step"]),
                      mean_db, std_db)


def speaker_names():
    """Human-readable speaker names (e.g. ``"flite:slt"``), indexed by speaker id."""
    return [s["name"] for s in load_json("speakers.json")["speakers"]]
