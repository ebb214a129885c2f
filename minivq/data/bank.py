"""The two shipped banks spoken-digit scenes are made of, and their splits.

``digit_images(split)``: the 8x8 UCI optical digits (Alpaydin and Kaynak, UCI
Machine Learning Repository, CC BY 4.0). ``speech_bank()``: about 200 log-mel
renderings of each word "zero".."nine" (espeak-ng and flite, see
``data_small/README.md``) in *takes*: one speaker saying all ten words with
one setting of accent, speed and pitch. Both are verified before use.
"""
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..checks.arrays import check_float_dtype, check_int, describe
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
    """(n, seed) as Python ints: n in [1, 2^20], seed >= 0."""
    return check_int(n, "n", 1, MAX_SCENES), check_int(seed, "seed", 0)


def check_int_range(value, name, low, high=None, ordered=True):
    """A pair (a, b) of ints in [low, high], with a <= b when ``ordered``."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"{name} must be a pair of ints (a, b), got {describe(value)}")
    a, b = (check_int(v, name, low, high) for v in value)
    if ordered and a > b:
        raise ValueError(f"{name} must be an inclusive range (a, b) with a <= b, got {tuple(value)}")
    return a, b


def digit_images(split):
    """The 8x8 digit images of one split (70% train, 10% val, 20% test of each digit).

    Returns
    -------
    images : ndarray, shape (N, 8, 8), uint8
        Ink 0..16.
    labels : ndarray, shape (N,), int64
        The digit shown.
    ids : ndarray, shape (N,), int64
        Row of each image in ``digits_8x8.npz``.
    """
    z = load_npz("digits_8x8.npz")
    ids = np.flatnonzero(z["split"] == split_index(split))
    return z["images"][ids], z["labels"][ids], ids


@dataclass(frozen=True)
class SpeechBank:
    """The word renderings, as stored (uint8 dB), and their lookup tables.

    Attributes
    ----------
    mel, offsets : ndarray (F, 40) uint8 and (R + 1,) int64
        All renderings' frames; rendering r is ``mel[offsets[r]:offsets[r + 1]]``.
    word, take : ndarray, shape (R,), int64
        The digit said in rendering r and its take.
    take_speaker, speaker_split : ndarray (n_takes,) and (n_speakers,), int64
        The speaker of each take, the split (0 train, 1 val, 2 test) of each speaker.
    rendering_of : ndarray, shape (n_takes, 10), int64
        The rendering of digit d in take t.
    db_lo, db_step : float
        dB = db_lo + q * db_step.
    mean_db, std_db : ndarray, shape (40,), float32
        Per-band statistics of the train renderings' frames; they normalize the scenes' speech.
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
    """The verified :class:`SpeechBank` (cached; arrays are read-only)."""
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


def voice_type(name):
    """``"espeak-ng"`` for every espeak-ng speaker; a flite speaker is its own type (``"flite:slt"``)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a speaker name (str), got {type(name).__name__} {name!r}")
    return name if name.startswith("flite:") else name.split(":")[0]


@lru_cache(maxsize=8)
def split_voices(split, voice_split="types"):
    """The voices (speakers) of a split and their takes: a list of (speaker id, take indices).

    ``"speakers"``: the speakers' own disjoint split. ``"types"``: the same for
    espeak-ng, but the takes of each flite voice (a recorded person) are split:
    the last take test, the one before val, the rest train.
    """
    s, bank, names = split_index(split), speech_bank(), speaker_names()
    out = []
    for speaker, name in enumerate(names):
        takes = np.flatnonzero(bank.take_speaker == speaker)
        if voice_split == "types" and name.startswith("flite:"):
            role = np.zeros(len(takes), dtype=np.int64)  # train, then val, then test for the last take
            role[-2:] = (1, 2)
            takes = takes[role == s]
        elif bank.speaker_split[speaker] != s:
            continue
        if len(takes):
            out.append((speaker, takes))
    return out


@lru_cache(maxsize=4)
def speech_stats(voice_split):
    """Per-band mean and std (dB), float32 (40,), over every frame of the train takes' renderings."""
    bank = speech_bank()
    takes = np.concatenate([t for _, t in split_voices("train", voice_split)])
    frames = np.concatenate([bank.rendering_db(r, np.float64) for r in bank.rendering_of[takes].ravel()])
    return frames.mean(axis=0).astype(np.float32), frames.std(axis=0).astype(np.float32)
