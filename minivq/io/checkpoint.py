"""Checkpoints: a :class:`~minivq.train_state.TrainState` as one ``.npz`` of arrays plus a JSON ``meta``.

Written atomically (a kill leaves the previous checkpoint or the new one), read without pickle; every way a
file can fail to be a checkpoint is a :class:`CheckpointError` naming the file. A checkpoint records the data
it was trained on (:func:`data_record`), so that resuming trains on the same data.
"""
import json
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..model import ModelConfig
from ..optim import Adam
from ..quantizer import EMAState
from ..train_state import TrainConfig, TrainState, trainable_params
from .atomic import atomic_write

__all__ = ["CheckpointError", "META_KEYS", "data_record", "write_checkpoint_file", "read_checkpoint_file",
           "save_checkpoint", "load_checkpoint"]

#: Entries every minivq checkpoint's meta holds.
META_KEYS = ("model_cfg", "train_cfg", "rng", "epoch", "step")
_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(ValueError):
    """A file that is no minivq checkpoint: ``"{path} is {reason}"``, the parts apart for a command to say
    ``f"--checkpoint {e.path}: {e.reason}"``."""

    def __init__(self, path, reason, message=None):
        self.path, self.reason = Path(path), reason
        super().__init__(message or f"{path} is {reason}")

    def __reduce__(self):  # picklable (worker processes), although __init__ takes more than the message
        return type(self), (self.path, self.reason, str(self))


def data_record(modalities, n_train, n_val, seed=0, patch=8, world="easy"):
    """What a run trained on (JSON-able): the arguments of :func:`minivq.cli.demo.load_split` per split."""
    return {"modalities": list(modalities), "n_train": int(n_train), "n_val": int(n_val),
            "seed": int(seed), "patch": int(patch), "world": str(world)}


def write_checkpoint_file(path, arrays, meta):
    """Write ``arrays`` (numeric: read without pickle) and ``meta`` (JSON-able, with :data:`META_KEYS`) to
    one .npz, atomically."""
    entries = {**arrays, "meta": np.array(json.dumps(meta))}
    atomic_write(path, lambda f: np.savez(f, **entries))


def _open_checks(path):
    """CheckpointError for a path that is no file, an empty file, or no zip at all."""
    if not path.exists():
        raise CheckpointError(path, "no such file", f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(path, "a folder, expected a checkpoint file (.npz)")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        why = e.strerror or e
        raise CheckpointError(path, f"unreadable ({why})", f"cannot read {path} ({why})") from e
    if not head:
        raise CheckpointError(path, "empty, expected a minivq checkpoint (.npz)")
    if head != _ZIP_MAGIC:
        raise CheckpointError(path, "not a minivq checkpoint (not an .npz archive)")


def read_checkpoint_file(path):
    """(meta, arrays) of a file of :func:`write_checkpoint_file`; :class:`CheckpointError` for any other."""
    path = Path(path)
    _open_checks(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            if "meta" not in z.files:
                raise CheckpointError(path, "not a minivq checkpoint (no 'meta' entry)")
            arrays = {k: z[k].copy() for k in z.files}
    except (zipfile.BadZipFile, EOFError, OSError) as e:
        raise CheckpointError(path, f"truncated or not a zip file ({e})") from e
    except ValueError as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(path, "not a minivq checkpoint (an entry holds pickled objects, "
                              "which minivq never writes nor loads, or is damaged)") from e
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except ValueError as e:
        raise CheckpointError(path, "not a minivq checkpoint (its 'meta' entry is not JSON)") from e
    missing = [k for k in META_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise CheckpointError(path, f"not a minivq checkpoint (its 'meta' lacks {', '.join(missing)})")
    return meta, arrays


def save_checkpoint(path, state):
    """Write params, optimizer and EMA state, RNG state, configs and the data record to one .npz, atomically."""
    from .. import __version__  # the package imports its modules first
    arrays = {f"param/{k}": v for k, v in state.params.items()}
    arrays.update({f"optim/{k}": np.asarray(v) for k, v in state.optimizer.state_dict().items()})
    if state.ema is not None:
        arrays.update({"ema/n": state.ema.n, "ema/m": state.ema.m, "ema/E": state.ema.E})
    meta = {"minivq_version": __version__, "model_cfg": state.model_cfg.to_dict(),
            "train_cfg": asdict(state.train_cfg), "rng": state.rng.bit_generator.state,
            "epoch": state.epoch, "step": state.step, "history": state.history, "data": state.data}
    write_checkpoint_file(path, arrays, meta)


def load_checkpoint(path, epochs=None):
    """The :class:`TrainState` of :func:`save_checkpoint`'s file, trained up to ``epochs`` if given;
    :class:`CheckpointError` naming any other file."""
    meta, z = read_checkpoint_file(path)
    params = {k[len("param/"):]: v for k, v in z.items() if k.startswith("param/")}
    opt_state = {k[len("optim/"):]: v for k, v in z.items() if k.startswith("optim/")}
    ema = EMAState(n=z["ema/n"], m=z["ema/m"], E=z["ema/E"]) if "ema/n" in z else None
    try:
        model_cfg = ModelConfig(**meta["model_cfg"])
        train_cfg = TrainConfig(**{**meta["train_cfg"], **({"epochs": epochs} if epochs is not None else {})})
        optimizer = Adam(trainable_params(params, model_cfg), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
        optimizer.load_state_dict(opt_state)
        rng = np.random.default_rng()
        rng.bit_generator.state = meta["rng"]
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(path, "not a checkpoint this minivq can read "
                              f"(written by minivq {meta.get('minivq_version', '0.1')}: {e})") from e
    return TrainState(model_cfg, train_cfg, params, optimizer, ema, rng, meta["epoch"], meta["step"],
                      meta.get("history", []), meta.get("data"))
