"""Training loop: Adam on the weights, EMA on the shared codebook, checkpoints (METHOD.md LOSS, VQ-5, VQ-6).

One step: :func:`minivq.model.loss_forward`, :func:`minivq.model.loss_backward`,
global-norm clipping, an Adam step on every weight, then (EMA codebook) one
EMA step of the codebook from the units of all modalities (VQ-5) and the
restart of dead codes (VQ-6). The quantized output of a step uses the
codebook from before that step's update. :func:`fit` checks its data once,
at its entry (:mod:`minivq.checks.train`); the functions its steps call then
skip their checks.

Seeded and deterministic on one machine: one ``np.random.Generator`` drives
initialization, the shuffling of every epoch and the dead-code restarts, and
its state is saved in the checkpoint, so ``fit`` for 2 epochs equals ``fit``
for 1, save, load, ``fit`` for 1 more (``tests/test_train.py``). A step whose
loss or gradient norm is not finite stops the run with
:class:`~minivq.train_state.TrainingDiverged`.
"""
import math
import time

import numpy as np
from threadpoolctl import threadpool_limits

from . import metrics
from .checks import checked
from .checks import train as check
from .checks.train import check_data
from .io.checkpoint import load_checkpoint, save_checkpoint
from .data import TEXT_VOCAB
from .data.batches import batch_inputs, modality_arrays
from .ema import ema_update, restart_dead_codes
from .model import ModelConfig, init_params, loss_backward, loss_forward, represent
from .nearest import nearest_threads
from .cli.progress import Clock, epoch_line
from .optim import Adam, clip_grad_norm
from .quantizer import codebook_usage, ema_init, init_codebook_kmeanspp
from .train_state import TrainConfig, TrainingDiverged, TrainState, trainable_params as _trainable

__all__ = ["TrainConfig", "TrainState", "TrainingDiverged", "config_from_data", "batch_inputs", "init_state",
           "train_step", "train_epoch", "quick_val_r1", "fit", "save_checkpoint", "load_checkpoint"]


def config_from_data(data, modalities, **overrides):
    """A :class:`ModelConfig` whose input sizes match a data dict (vocab, n_mels, toy dims)."""
    sizes = {}
    if "speech" in data:
        sizes["n_mels"] = int(data["speech"].shape[-1])
    if "text" in data:
        # the whole vocabulary, not the largest id seen: a split may lack a word
        sizes["vocab"] = int(data.get("vocab_size", max(len(TEXT_VOCAB), int(data["text"].max()) + 1)))
    sizes["toy_dims"] = {m: int(data[m].shape[-1]) for m in ("a", "b") if m in data}
    return ModelConfig(modalities=tuple(modalities), **{**sizes, **overrides})


def init_state(model_cfg, train_cfg, data):
    """Fresh weights, optimizer and EMA state; k-means++ codebook from the first batch (VQ-8).

    Parameters
    ----------
    model_cfg : ModelConfig
    train_cfg : TrainConfig
    data : dict
        Training data (only the first batch is read, for k-means++ seeding).

    Returns
    -------
    TrainState
    """
    rng = np.random.default_rng(train_cfg.seed)
    params = init_params(model_cfg, rng)
    ema = None
    if model_cfg.use_vq:
        if model_cfg.codebook_init == "kmeans++":
            n = len(modality_arrays(data, model_cfg.modalities[0])[0])
            rows = np.arange(min(train_cfg.batch_size, n))
            units = represent(params, batch_inputs(data, model_cfg.modalities, rows), model_cfg)
            Hs = [units[m]["H"] for m in model_cfg.modalities]
            params["E"] = init_codebook_kmeanspp(Hs, [units[m]["M"] for m in model_cfg.modalities],
                                                 model_cfg.K, rng).astype(model_cfg.dtype)
        if model_cfg.codebook == "ema":
            ema = ema_init(params["E"])
    optimizer = Adam(_trainable(params, model_cfg), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    return TrainState(model_cfg, train_cfg, params, optimizer, ema, rng)


def _diverged(state, loss, what):
    return TrainingDiverged(state.epoch + 1, state.step + 1, loss, state.train_cfg.lr, what)


def _loss_and_grads(state, inputs):
    """Forward and backward of one step; TrainingDiverged when weights that worked before overflow."""
    cfg = state.model_cfg
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is reported as divergence below
            loss, cache = loss_forward(state.params, inputs, cfg)
            grads = _trainable(loss_backward(cache), cfg)
    except (ValueError, FloatingPointError) as e:
        if state.step == 0 or not all(np.isfinite(x).all() for x, _ in inputs.values()):
            raise
        largest = max(float(np.max(np.abs(p), initial=0.0)) for p in state.params.values())
        raise _diverged(state, None, f"the forward pass overflowed: largest weight {largest:.2g}") from e
    return float(loss), cache, grads


@checked(check.train_step)
def train_step(state, inputs):
    """One optimization step on one batch ``{m: (x, mask)}``; returns the step's logs.

    Returns ``loss``, its parts (``mms``, ``cmcm``, ``commit``, ``codebook``),
    ``grad_norm``, and with the discrete path ``perplexity`` (VQ-7) and
    ``restarted`` (codes restarted, VQ-6). Raises :class:`TrainingDiverged`
    when the loss or the gradient norm is not finite; the failing step does
    not update the weights.
    """
    cfg, tc = state.model_cfg, state.train_cfg
    loss, cache, grads = _loss_and_grads(state, inputs)
    if not math.isfinite(loss):
        raise _diverged(state, loss, f"loss = {loss:g}")
    with np.errstate(over="ignore", invalid="ignore"):
        # the global norm before clipping; clip = 0: no clipping (the largest float never clips)
        norm = clip_grad_norm(grads, tc.clip if tc.clip > 0 else float(np.finfo(np.float64).max))
    if not math.isfinite(norm):
        raise _diverged(state, loss, f"loss = {loss:g}, gradient norm = inf or NaN")
    state.optimizer.step(grads)
    state.step += 1
    logs = {"loss": loss, **cache["parts"], "grad_norm": float(norm)}
    if cfg.use_vq:
        units = [cache["units"][m] for m in cfg.modalities]
        Hs, idxs, Ms = [u["H"] for u in units], [u["idx"] for u in units], [u["M"] for u in units]
        logs["perplexity"] = codebook_usage(idxs, Ms, cfg.K)["perplexity"]  # (VQ-7)
        if cfg.codebook == "ema":
            ema = ema_update(state.ema, Hs, idxs, Ms, tc.ema_decay, tc.ema_eps)  # (VQ-5)
            state.ema, restarted = restart_dead_codes(ema, Hs, Ms, tc.dead_threshold, state.rng)  # (VQ-6)
            state.params["E"][...] = state.ema.E
            logs["restarted"] = int(len(restarted))
    return logs


@checked(check.train_epoch)
def train_epoch(state, data):
    """One shuffled pass over ``data`` in batches of ``train_cfg.batch_size``; the mean of each log."""
    n = len(modality_arrays(data, state.model_cfg.modalities[0])[0])
    B = min(state.train_cfg.batch_size, n)
    perm = state.rng.permutation(n)
    logs = [train_step(state, batch_inputs(data, state.model_cfg.modalities, perm[start:start + B]))
            for start in range(0, n - B + 1, B)]
    return {k: float(np.mean([entry[k] for entry in logs])) for k in logs[0]}


def quick_val_r1(params, cfg, data, n):
    """Mean R@1 (both directions, RET) of the first two modalities on the first n pairs."""
    a, b = cfg.modalities[:2]
    rows = np.arange(min(n, len(modality_arrays(data, a)[0])))
    rep = represent(params, batch_inputs(data, (a, b), rows), cfg)
    return metrics.retrieval_metrics(rep[a]["r"] @ rep[b]["r"].T)["mean_R@1"]


@checked(check.fit)
def fit(state, train_data, val_data=None, log=print, checkpoint=None, label=None, clock=None, after_epoch=None):
    """Train from ``state.epoch`` up to ``state.train_cfg.epochs``, one progress line per epoch.

    Parameters
    ----------
    state : TrainState
        From :func:`init_state` or :func:`load_checkpoint`.
    train_data, val_data : dict
        Data dicts; val_data (optional) gives the quick validation R@1 on its
        first ``train_cfg.val_size`` pairs (the line names that number).
    log : callable or None
        Receives each progress line (``print`` by default).
    checkpoint : str or None
        Path of a .npz checkpoint rewritten (atomically) after every epoch.
    label : str or None
        Start of each progress line; default ``"[variant, seed s]"``.
    clock : minivq.cli.progress.Clock or None
        Shared by several runs for an ETA of the whole command; default: the
        epochs of this call.
    after_epoch : callable or None
        Called as ``after_epoch(state)`` after each epoch, before the
        checkpoint and the progress line (a learning curve, for example:
        :mod:`minivq.study.runs`).

    Returns
    -------
    TrainState
        The same object, trained; ``state.history`` holds one dict per epoch.

    Raises
    ------
    TrainingDiverged
        When the loss or the gradient norm stops being finite.
    """
    label = label or f"[{state.model_cfg.variant}, seed {state.train_cfg.seed}]"
    clock = clock or Clock(state.train_cfg.epochs - state.epoch)
    while state.epoch < state.train_cfg.epochs:
        t0 = time.perf_counter()
        threads = state.train_cfg.blas_threads  # BLAS and the nearest-code kernel alike
        with threadpool_limits(limits=threads, user_api="blas"), nearest_threads(threads):
            logs = train_epoch(state, train_data)
        state.epoch += 1
        if val_data is not None and state.train_cfg.val_size > 0:
            n_val = len(modality_arrays(val_data, state.model_cfg.modalities[0])[0])
            logs["val_pairs"] = min(state.train_cfg.val_size, n_val)  # the line names the set size
            logs["val_r1"] = quick_val_r1(state.params, state.model_cfg, val_data, logs["val_pairs"])
        seconds = time.perf_counter() - t0
        state.history.append({"epoch": state.epoch, **logs, "seconds": seconds})
        if after_epoch is not None:
            after_epoch(state)
        if checkpoint is not None:
            save_checkpoint(checkpoint, state)
        clock.tick(time.perf_counter() - t0)
        if log is not None:
            log(epoch_line(state, logs, seconds, label, clock.eta()))
    return state
