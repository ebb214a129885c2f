"""What a training run is made of: its settings, its state, and how it can fail.

:class:`TrainConfig` (optimization settings) and :class:`TrainState`
(weights, optimizer, EMA, RNG, progress, the data record) are what
:mod:`minivq.train` updates and :mod:`minivq.io.checkpoint` saves;
:class:`TrainingDiverged` is raised when the loss stops being finite.
"""
from dataclasses import dataclass, field

import numpy as np

from .checks.arrays import check_int, check_number

from .model import ModelConfig
from .optim import Adam
from .quantizer import EMAState

__all__ = ["TrainConfig", "TrainState", "TrainingDiverged", "trainable_params"]


class TrainingDiverged(FloatingPointError):
    """The loss or the gradient norm became non-finite (or the weights overflowed) during training.

    Attributes
    ----------
    epoch, step : int
        The epoch (1-based) and the optimization step (1-based, counted over
        the whole run) that failed.
    loss : float or None
        The step's loss, if it could be computed.
    lr : float
        The learning rate in use.
    """

    def __init__(self, epoch, step, loss, lr, what):
        self.epoch, self.step, self.loss, self.lr = epoch, step, loss, lr
        super().__init__(f"training diverged at epoch {epoch}, step {step} ({what}); "
                         f"try a smaller learning rate (lr = {lr:g} now)")


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
        A code whose raw EMA count n_k falls below it is restarted (VQ-6);
        in (0, 1e6], so that m_k = e_k * threshold stays finite.
    seed : int
        Seeds the one random generator of the run.
    val_size : int
        Validation pairs for the quick R@1 of the progress line (0: none).
    blas_threads : int
        BLAS threads while training, and the nearest-code kernel's. The
        matrices are small, so one thread is fastest (and several fight over
        a shared CPU); results do not depend on it beyond the last bits of
        BLAS sums.
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

    def __post_init__(self):
        """Every field checked when the config is made (a ValueError/TypeError naming it)."""
        for name, low in (("epochs", 0), ("batch_size", 1), ("seed", 0), ("val_size", 0), ("blas_threads", 1)):
            setattr(self, name, check_int(getattr(self, name), f"TrainConfig {name}", low))
        self.lr = check_number(self.lr, "TrainConfig lr", 0, low_open=True)
        self.weight_decay = check_number(self.weight_decay, "TrainConfig weight_decay", 0)
        self.clip = check_number(self.clip, "TrainConfig clip", 0)
        self.ema_decay = check_number(self.ema_decay, "TrainConfig ema_decay", 0, 1, low_open=True, high_open=True)
        self.ema_eps = check_number(self.ema_eps, "TrainConfig ema_eps", 0)
        self.dead_threshold = check_number(self.dead_threshold, "TrainConfig dead_threshold", 0, 1e6,
                                           low_open=True)


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
    data: dict = None  # what it trains on, see minivq.io.checkpoint.data_record


def trainable_params(params, cfg):
    """The weights Adam updates: all but the codebook when the EMA trains it."""
    return {k: v for k, v in params.items() if not (k == "E" and cfg.codebook == "ema")}
