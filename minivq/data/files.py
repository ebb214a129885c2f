"""Find the shipped data files, verify them against ``checksums.json``, and load them. Nothing is downloaded.

A missing or damaged file raises :class:`DataFileError` naming the file, the
folder and how to restore it.
"""
import hashlib
import importlib.resources
import json
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

ENV_VAR = "MINIVQ_DATA_DIR"
MANIFEST = "checksums.json"
HOW_TO_FIX = ("restore it with `git checkout -- data_small/` (or reinstall minivq), "
              "or rebuild with `python data_small/build.py`")


class DataFileError(OSError):
    """A shipped data file is missing, damaged, or does not match checksums.json."""


def data_dir():
    """The folder of the data files.

    ``$MINIVQ_DATA_DIR`` if set, else the first of the installed
    ``minivq.data_small`` and the checkout's ``data_small/`` that holds
    checksums.json; a :class:`DataFileError` if none does.
    """
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override)
        if not path.is_dir():
            raise DataFileError(f"{ENV_VAR}={override!r} is not a directory")
        return path
    candidates = []
    try:
        candidates.append(Path(str(importlib.resources.files("minivq.data_small"))))
    except (ModuleNotFoundError, TypeError):
        pass
    candidates.append(Path(__file__).resolve().parents[2] / "data_small")
    for path in candidates:
        if (path / MANIFEST).is_file():
            return path
    raise DataFileError(f"no data folder with {MANIFEST} found; looked in "
                        f"{[str(p) for p in candidates]}; set {ENV_VAR} or {HOW_TO_FIX}")


def verified_path(name):
    """Path of the data file ``name`` (e.g. ``"speech_bank.npz"``) once its size and SHA-256 match checksums.json."""
    folder = data_dir()
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        raise DataFileError(f"{folder / MANIFEST} is unreadable ({err}); {HOW_TO_FIX}") from err
    if name not in manifest:
        raise ValueError(f"name: expected one of {sorted(manifest)}, got {name!r}")
    path = folder / name
    if not path.is_file():
        raise DataFileError(f"data file {name} is missing from {folder}; {HOW_TO_FIX}")
    expected = manifest[name]
    size, digest = path.stat().st_size, hashlib.sha256(path.read_bytes()).hexdigest()
    if size != expected["bytes"] or digest != expected["sha256"]:
        raise DataFileError(
            f"data file {name} in {folder} is damaged: {size} bytes with SHA-256 {digest}, "
            f"expected {expected['bytes']} bytes with SHA-256 {expected['sha256']}; {HOW_TO_FIX}")
    return path


@lru_cache(maxsize=8)
def _load_npz_cached(path, mtime_ns):
    """Read every array of an .npz once per (path, modification time)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    for a in arrays.values():
        a.setflags(write=False)  # shared by every caller: make accidental edits fail
    return arrays


def load_npz(name):
    """Verified, cached, read-only arrays (a dict) of the data file ``name``, e.g. ``"digits_8x8.npz"``."""
    path = verified_path(name)
    return _load_npz_cached(str(path), path.stat().st_mtime_ns)


def load_json(name):
    """Verified contents of the JSON data file ``name`` (e.g. ``"speakers.json"``)."""
    return json.loads(verified_path(name).read_text())
