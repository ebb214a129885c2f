"""Checks of the training loop (:mod:`minivq.train`): its data and weights, once, at its entry."""
import numpy as np

from ..data.batches import batch_inputs, modality_arrays
from . import model as model_checks


def check_data(state, data, name="data"):
    """A whole split checked as :func:`minivq.model.loss_forward` checks a batch; errors start with ``name``.

    Raises TypeError, ValueError naming the array, e.g. ``train_data: x of 'speech' must be finite``.
    """
    cfg = state.model_cfg
    try:
        rows = np.arange(len(modality_arrays(data, cfg.modalities[0])[0]))
        model_checks.check_model_args(state.params, batch_inputs(data, cfg.modalities, rows), cfg)
    except (TypeError, ValueError) as e:
        raise type(e)(f"{name}: {e}") from None


def train_step(a):
    a["inputs"] = model_checks.check_model_args(a["state"].params, a["inputs"], a["state"].model_cfg)


def train_epoch(a):
    check_data(a["state"], a["data"])


def fit(a):
    state = a["state"]
    if a["after_epoch"] is not None and not callable(a["after_epoch"]):
        raise TypeError(f"after_epoch must be None or a callable taking the state, got "
                        f"{type(a['after_epoch']).__name__}")
    if state.epoch < state.train_cfg.epochs:
        check_data(state, a["train_data"], "train_data")
