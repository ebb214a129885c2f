"""Checks of the ``minivq`` command's arguments, made before any work starts.

Argument types for argparse report a bad value as argparse does (exit 2); the checks of more than one value
raise :class:`UsageError`, which the command prints as the same one line (exit 2). Every message names the
argument as typed, what was expected and what came.
"""
import argparse
import dataclasses
import json
import math
import os
from pathlib import Path

from ..config import ModelConfig
from ..data.digits import DIGIT_SIZE
from ..io.atomic import check_writable_folder

__all__ = ["UsageError", "positive_int", "non_negative_int", "finite_float", "positive_float", "json_object",
           "check_modalities", "check_model_overrides", "check_output_file", "check_output_folder",
           "check_json_file", "check_input_file", "check_memory", "available_memory", "SCENE_PATCHES"]

TOY_MODALITIES = ("a", "b")
#: ModelConfig fields that other flags or the data set; --model may not set them.
NOT_IN_MODEL = {"modalities": "set them with --modalities", "variant": "set it with --variant",
                "n_mels": "it is fixed by the data", "vocab": "it is fixed by the data",
                "toy_dims": "it is fixed by the data"}
#: Patch sizes the spoken-digit scenes can be cut into: the divisors of the 8-pixel digit (minivq.data.world).
SCENE_PATCHES = tuple(p for p in range(1, DIGIT_SIZE + 1) if DIGIT_SIZE % p == 0)


class UsageError(ValueError):
    """A wrong command line: the command prints the message as one line and exits with 2."""


def _number(kind, ok, expected):
    """An argparse type: ``kind(text)`` for which ``ok`` holds, or argparse's error saying what was expected."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value
    return parse


positive_int = _number(int, lambda v: v >= 1, "a positive integer (>= 1)")
non_negative_int = _number(int, lambda v: v >= 0, "a non-negative integer (>= 0)")
finite_float = _number(float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
positive_float = _number(float, lambda v: math.isfinite(v) and v > 0, "a finite number > 0")


def json_object(text):
    """argparse type: a JSON object (dict)."""
    try:
        value = json.loads(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"expected a JSON object such as '{{\"K\": 64}}', got {text!r} ({e})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"K\": 64}}', got {text!r}")
    return value


def check_modalities(modalities):
    """The modality pair as a tuple; UsageError for a repeat or toy and real modalities mixed."""
    modalities = tuple(modalities)
    if len(set(modalities)) != len(modalities):
        raise UsageError(f"--modalities: expected two different modalities, got {' '.join(modalities)}")
    toy = [m in TOY_MODALITIES for m in modalities]
    if any(toy) and not all(toy):
        raise UsageError(f"--modalities: the toy modalities a and b (synthetic) go together and cannot be "
                         f"mixed with image, speech or text; got {' '.join(modalities)}")
    return modalities


def check_model_overrides(overrides, modalities, variant):
    """Validate --model's fields by building a ModelConfig; UsageError naming --model and the field."""
    fields = [f.name for f in dataclasses.fields(ModelConfig)]
    for key in overrides:
        if key in NOT_IN_MODEL:
            raise UsageError(f"--model: field {key!r} cannot be set here ({NOT_IN_MODEL[key]})")
        if key not in fields:
            allowed = ", ".join(f for f in fields if f not in NOT_IN_MODEL)
            raise UsageError(f"--model: unknown field {key!r}; expected ModelConfig fields ({allowed})")
    toy_dims = {m: 16 for m in modalities if m in TOY_MODALITIES}
    try:
        ModelConfig(modalities=modalities, variant=variant, toy_dims=toy_dims, **overrides)
    except (TypeError, ValueError) as e:
        raise UsageError(f"--model: {e}") from None
    patch = overrides.get("patch")
    scenes = any(m not in TOY_MODALITIES for m in modalities)  # the toy pairs have no pixels
    if patch is not None and scenes and patch not in SCENE_PATCHES:
        raise UsageError(f"--model: patch: expected one of {', '.join(map(str, SCENE_PATCHES))} for the spoken-digit "
                         f"scenes (a divisor of the {DIGIT_SIZE}-pixel digit), got {patch}")
    return overrides


def check_output_folder(folder, arg="--out"):
    """Create ``folder`` if needed and make sure files can be written there (before any training)."""
    problem = check_writable_folder(folder, create=True)
    if problem:
        raise UsageError(f"{arg} {folder}: {problem}")
    return Path(folder)


def check_output_file(path, arg):
    """The file ``path`` can be written: not a folder, its folder exists and is writable."""
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{arg} {path} is a folder, expected a file name")
    problem = check_writable_folder(path.parent)
    if problem:
        raise UsageError(f"{arg} {path}: {problem}")
    return path


def check_json_file(path, arg, inputs=(), own=None, overwrite=False):
    """A JSON file to write (option ``arg``): writable, none of ``inputs`` (``(what, path)`` pairs), not an
    existing .npz; with ``own = (is_mine, command)``, an existing file not ``is_mine`` unless ``overwrite``."""
    path = check_output_file(path, arg)
    for what, other in inputs:
        if path.exists() and Path(other).exists() and os.path.samefile(path, other):
            other_name = path.with_suffix(".json") if path.suffix != ".json" else path.with_suffix(".metrics.json")
            raise UsageError(f"{arg} {path} is {what} itself, which the JSON would overwrite; expected another "
                             f"file name, such as {other_name}")
    if path.suffix.lower() == ".npz" and path.exists():
        raise UsageError(f"{arg} {path}: expected a new file or a JSON file, got an existing .npz file "
                         "(a checkpoint?); it is not overwritten, name a .json file")
    if own is not None and path.exists() and not overwrite and not own[0](path):
        raise UsageError(f"{arg} {path} exists and was not written by {own[1]}; choose another file name, "
                         "or add --overwrite to replace it")
    return path


def check_input_file(path, arg):
    """An existing file (not a folder)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{arg} {path}: no such file")
    if path.is_dir():
        raise UsageError(f"{arg} {path} is a folder, expected a file")
    return path


def available_memory():
    """Bytes of memory available to this process (MemAvailable on Linux), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n_bytes):
    return f"{n_bytes / 2 ** 30:.1f} GiB"


#: Upper estimate of the memory of one pair of the data and its encodings (bytes).
BYTES_PER_PAIR = 96 * 1024
#: Bytes per entry of the (N, N) similarity matrices alive at once during evaluation
#: (S and S^code in float32, their sum, and the boolean masks of the ranking).
BYTES_PER_SIMILARITY = 24


def check_memory(arg, n, square=False, available=None):
    """UsageError naming ``arg`` (e.g. ``"--n 100000"``) when ``n`` pairs, and with ``square`` their (n, n)
    similarity matrices, cannot fit in ``available`` bytes (default :func:`available_memory`)."""
    available = available_memory() if available is None else available
    if available is None:
        return
    def needs(m):
        return m * BYTES_PER_PAIR + (m * m * BYTES_PER_SIMILARITY if square else 0)

    need = needs(n)
    if need <= available:
        return
    if square:  # the largest n that fits: the root of S n^2 + P n = available, then exact
        a, b = BYTES_PER_SIMILARITY, BYTES_PER_PAIR
        fits = int((-b + math.sqrt(b * b + 4 * a * available)) / (2 * a))
        what = f"the data and the {n} x {n} similarity matrices"
    else:
        fits, what = int(available // BYTES_PER_PAIR), "the data"
    fits += 1 if needs(fits + 1) <= available else -1 if fits > 0 and needs(fits) > available else 0
    raise UsageError(f"{arg} needs about {_gib(need)} of memory ({what}), but {_gib(available)} is "
                     f"available; expected at most about {fits}")
