"""Find the shipped data files, verify their SHA-256, and load them.

The files of ``data_small/`` are looked up in this order:

1. the folder named by the environment variable ``MINIVQ_DATA_DIR``, if set;
2. the installed package ``minivq.data_small`` (``pip install .`` copies
   ``data_small/`` there; an editable install maps it to the checkout);
3. ``data_small/`` next to the ``minivq`` package folder (a plain checkout
   on ``sys.path``).

Every file is checked against ``checksums.json`` before it is used; a missing
or damaged file raises ``DataFileError`` naming the file, the folder and how
to restore it. Nothing is ever downloaded.
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
    """The folder that holds the data files (see the module docstring for the order).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    DataFileError
        If ``MINIVQ_DATA_DIR`` names no folder, or no candidate holds checksums.json.
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


def sha256_of(path):
    """Hex SHA-256 digest of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def verified_path(name):
    """Path of the data file ``name`` after checking it against checksums.json.

    Parameters
    ----------
    name : str
        A file name listed in checksums.json, e.g. ``"speech_bank.npz"``.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    DataFileError
        If the manifest or the file is missing, unreadable, or its size or
        SHA-256 differs from the manifest. The message names the file.
    """
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
    size, digest = path.stat().st_size, sha256_of(path)
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
    """Verified, cached, read-only arrays of the data file ``name``.

    Parameters
    ----------
    name : str
        ``"digits_8x8.npz"`` or ``"speech_bank.npz"``.

    Returns
    -------
    dict of str -> ndarray (read-only)
    """
    path = verified_path(name)
    return _load_npz_cached(str(path), path.stat().st_mtime_ns)


def load_json(name):
    """Verified contents of the JSON data file ``name`` (e.g. ``"speakers.json"``)."""
    return json.loads(verified_path(name).read_text())
