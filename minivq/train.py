"""Training loop: Adam on the weights, EMA on the shared codebook, checkpoints (METHOD.md LOSS, VQ-5, VQ-6).

One step: :func:`minivq.model.loss_forward`, :func:`minivq.model.loss_backward`,
global-norm clipping, an Adam step on every weight, then (EMA codebook) one
EMA step of the codebook from the units of all modalities (VQ-5) and the
restart of dead codes (VQ-6). The quantized output of a step uses the
codebook from before that step's update.

Seeded and deterministic: one ``np.random.Generator`` drives initialization,
the shuffling of every epoch and the dead-code restarts, and its state is
saved in the checkpoint, so ``fit`` for 2 epochs equals ``fit`` for 1, save,
load, ``fit`` for 1 more, to the last bit (``tests/test_train.py``).
"""
import json
import time
from dataclasses import asdict, dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from . import metrics
from .data import TEXT_VOCAB
from .encoders import modality_arrays
from .model import ModelConfig, init_params, loss_backward, loss_forward, represent
from .optim import Adam, clip_grad_norm
from .quantizer import EMAState, codebook_usage, ema_init, ema_update, init_codebook_kmeanspp, restart_dead_codes

__all__ = ["TrainConfig", "TrainState", "config_from_data", "batch_inputs", "init_state",
           "train_step", "train_epoch", "quick_val_r1", "fit", "save_checkpoint", "load_checkpoint"]


@dataclass
class TrainConfig:
    """Optimization settings (JSON-able).

    Attributes
    ----------
    epochs, batch_size : int
        Full passes over the training set; pairs per step (the last partial
        batch of an epoch is dropped so every step sees B pairs).
    lr, weight_decay, clip : float
        Adam step size and weight decay; global gradient-norm bound (0: off).
    ema_decay, ema_eps : float
        g and eps of the EMA codebook (VQ-5).
    dead_threshold : float
        A code whose raw EMA count n_k falls below it is restarted (VQ-6).
    seed : int
        Seeds the one random generator of the run.
    val_size : int
        Validation pairs for the quick R@1 of the progress line (0: none).
    blas_threads : int
        BLAS threads while training. The matrices are small, so one thread
        is fastest (and several fight over a shared CPU); results do not
        depend on it beyond the last bits of BLAS sums.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.0
    clip: float = 5.0
    ema_decay: float = 0.99
    ema_eps: float = 1e-5
    dead_threshold: float = 0.5
    seed: int = 0
    val_size: int = 200
    blas_threads: int = 1


@dataclass
class TrainState:
    """Everything a run needs to continue: weights, optimizer, EMA, RNG, progress."""

    model_cfg: ModelConfig
    train_cfg: TrainConfig
    params: dict
    optimizer: Adam
    ema: EMAState = None
    rng: np.random.Generator = None
    epoch: int = 0
    step: int = 0
    history: list = field(default_factory=list)


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


def batch_inputs(data, modalities, rows):
    """Encoder inputs ``{m: (x, mask)}`` of the given rows of a data dict.

    Sequences (speech, text, toy) are cut after the batch's last valid unit:
    the cut columns are padding, zero like the convolutions' own padding, so
    the valid units are unchanged and the batch is cheaper.
    """
    out = {}
    for m in modalities:
        x, mask = modality_arrays(data, m, rows)[:2]
        if m != "image":
            T = int(np.max(np.nonzero(mask.any(axis=0))[0], initial=0)) + 1
            x, mask = x[:, :T], mask[:, :T]
        out[m] = (x, mask)
    return out


def _trainable(params, cfg):
    """The weights Adam updates: all but the codebook when the EMA trains it."""
    return {k: v for k, v in params.items() if not (k == "E" and cfg.codebook == "ema")}


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


def train_step(state, inputs):
    """One optimization step on one batch; returns the step's logs.

    Returns
    -------
    dict
        ``loss``, its parts (``mms``, ``cmcm``, ``commit``, ``codebook``),
        ``grad_norm``, and with the discrete path ``perplexity`` (VQ-7) and
        ``restarted`` (number of codes restarted, VQ-6).
    """
    cfg, tc = state.model_cfg, state.train_cfg
    loss, cache = loss_forward(state.params, inputs, cfg)
    grads = _trainable(loss_backward(cache), cfg)
    if tc.clip > 0:
        norm = clip_grad_norm(grads, tc.clip)
    else:  # no clipping: still log the global norm
        norm = float(np.sqrt(sum(np.sum(g * g) for g in grads.values())))
    state.optimizer.step(grads)
    state.step += 1
    logs = {"loss": loss, **cache["parts"], "grad_norm": float(norm)}
    if cfg.use_vq:
        units = [cache["units"][m] for m in cfg.modalities]
        Hs, idxs, Ms = [u["H"] for u in units], [u["idx"] for u in units], [u["M"] for u in units]
        logs["perplexity"] = codebook_usage(idxs, Ms, cfg.K)["perplexity"]
        if cfg.codebook == "ema":
            ema = ema_update(state.ema, Hs, idxs, Ms, tc.ema_decay, tc.ema_eps)  # (VQ-5)
            state.ema, restarted = restart_dead_codes(ema, Hs, Ms, tc.dead_threshold, state.rng)  # (VQ-6)
            state.params["E"][...] = state.ema.E
            logs["restarted"] = int(len(restarted))
    return logs


def train_epoch(state, data):
    """One shuffled pass over ``data``; returns the mean of each logged quantity."""
    n = len(modality_arrays(data, state.model_cfg.modalities[0])[0])
    B = min(state.train_cfg.batch_size, n)
    perm = state.rng.permutation(n)
    logs = []
    for start in range(0, n - B + 1, B):
        logs.append(train_step(state, batch_inputs(data, state.model_cfg.modalities, perm[start:start + B])))
    return {k: float(np.mean([entry[k] for entry in logs])) for k in logs[0]}


def quick_val_r1(params, cfg, data, n):
    """Mean R@1 (both directions, RET) of the first two modalities on the first n pairs."""
    a, b = cfg.modalities[:2]
    rows = np.arange(min(n, len(modality_arrays(data, a)[0])))
    rep = represent(params, batch_inputs(data, (a, b), rows), cfg)
    return metrics.retrieval_metrics(rep[a]["r"] @ rep[b]["r"].T)["mean_R@1"]


def _progress_line(state, logs, seconds):
    parts = f"mms {logs['mms']:.3f}"
    if state.model_cfg.use_cmcm:
        parts += f"  cmcm {logs['cmcm']:.3f}"
    if state.model_cfg.use_vq:
        parts += f"  commit {logs['commit']:.3f}  ppl {logs['perplexity']:.1f}  restarts {logs.get('restarted', 0):.2f}"
    val = f"  val R@1 {logs['val_r1']:.3f}" if "val_r1" in logs else ""
    return (f"[{state.model_cfg.variant}] epoch {state.epoch}/{state.train_cfg.epochs}  "
            f"loss {logs['loss']:.3f} ({parts}){val}  {seconds:.1f}s")


def fit(state, train_data, val_data=None, log=print, checkpoint=None):
    """Train from ``state.epoch`` up to ``state.train_cfg.epochs``, one progress line per epoch.

    Parameters
    ----------
    state : TrainState
        From :func:`init_state` or :func:`load_checkpoint`.
    train_data, val_data : dict
        Data dicts; val_data (optional) gives the quick validation R@1.
    log : callable or None
        Receives each progress line (``print`` by default).
    checkpoint : str or None
        Path of a .npz checkpoint rewritten after every epoch.

    Returns
    -------
    TrainState
        The same object, trained; ``state.history`` holds one dict per epoch.
    """
    while state.epoch < state.train_cfg.epochs:
        t0 = time.perf_counter()
        with threadpool_limits(limits=state.train_cfg.blas_threads, user_api="blas"):
            logs = train_epoch(state, train_data)
        state.epoch += 1
        if val_data is not None and state.train_cfg.val_size > 0:
            logs["val_r1"] = quick_val_r1(state.params, state.model_cfg, val_data, state.train_cfg.val_size)
        seconds = time.perf_counter() - t0
        state.history.append({"epoch": state.epoch, **logs, "seconds": seconds})
        if log is not None:
            log(_progress_line(state, logs, seconds))
        if checkpoint is not None:
            save_checkpoint(checkpoint, state)
    return state


def save_checkpoint(path, state):
    """Write params, optimizer and EMA state, RNG state and configs to one .npz."""
    arrays = {f"param/{k}": v for k, v in state.params.items()}
    arrays.update({f"optim/{k}": np.asarray(v) for k, v in state.optimizer.state_dict().items()})
    if state.ema is not None:
        arrays.update({"ema/n": state.ema.n, "ema/m": state.ema.m, "ema/E": state.ema.E})
    meta = {"model_cfg": state.model_cfg.to_dict(), "train_cfg": asdict(state.train_cfg),
            "rng": state.rng.bit_generator.state, "epoch": state.epoch, "step": state.step,
            "history": state.history}
    arrays["meta"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_checkpoint(path, epochs=None):
    """Rebuild a :class:`TrainState` from :func:`save_checkpoint`'s file.

    Parameters
    ----------
    path : str
    epochs : int or None
        Override the total number of epochs (to train further).

    Returns
    -------
    TrainState
    """
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        params = {k[len("param/"):]: z[k].copy() for k in z.files if k.startswith("param/")}
        opt_state = {k[len("optim/"):]: z[k] for k in z.files if k.startswith("optim/")}
        ema = EMAState(n=z["ema/n"].copy(), m=z["ema/m"].copy(), E=z["ema/E"].copy()) if "ema/n" in z.files else None
    model_cfg = ModelConfig(**meta["model_cfg"])
    train_cfg = TrainConfig(**{**meta["train_cfg"], **({"epochs": epochs} if epochs is not None else {})})
    optimizer = Adam(_trainable(params, model_cfg), lr=train_cfg.lr, weight_decay=train_cfg.weight_decay)
    optimizer.load_state_dict(opt_state)
    rng = np.random.default_rng()
    rng.bit_generator.state = meta["rng"]
    return TrainState(model_cfg, train_cfg, params, optimizer, ema, rng, meta["epoch"], meta["step"],
                      meta["history"])
