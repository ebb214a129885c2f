"""Optimizers, gradient clipping and parameter initialization.

A model keeps its parameters in a dict ``params`` and its backward pass
returns a dict ``grads`` with the same keys (STYLE.md, after cs231n's
``fc_net``): one loop optimizes, clips, saves and loads everything. The
optimizers update the arrays of ``params`` **in place**, so any reference to
a parameter stays valid. Argument checks: :mod:`minivq.checks.optim`.
``tests/test_optim.py`` checks Adam against its equations step by step and
trains a small MLP built from :mod:`minivq.layers`.
"""
import numpy as np

from .checks import checked
from .checks import optim as checks

__all__ = ["SGD", "Adam", "clip_grad_norm", "glorot_uniform", "he_uniform"]


class _Optimizer:
    """Shared bookkeeping: hyperparameters, per-parameter state, step, state_dict."""

    grad_limit = None  # the largest |gradient| step() accepts (None: any finite value)
    hyper = ()  # names of the float hyperparameters saved by state_dict
    flags = ()  # names of the bool options saved by state_dict
    slots = ()  # names of the per-parameter state arrays

    def __init__(self, params, **options):
        self.params = params
        for name, value in options.items():
            setattr(self, name, value)
        self.t = 0  # steps taken
        self.state = {slot: {k: np.zeros_like(p) for k, p in params.items()} for slot in self.slots}

    @checked(checks.step)
    def step(self, grads):
        """Update every array of ``params`` in place from ``grads`` (same keys, shapes and dtypes, finite)."""
        self.t += 1
        for key, p in self.params.items():
            self._update(p, grads[key], *(self.state[slot][key] for slot in self.slots))

    def _update(self, p, g, *state):
        raise NotImplementedError

    def state_dict(self):
        """Plain arrays and numbers: ``np.savez(path, **opt.state_dict())`` works.

        Keys: the hyperparameters and options, ``"t"``, and
        ``"<slot>/<param key>"`` per state array (e.g. ``"m/W1"``).
        """
        out = {name: getattr(self, name) for name in self.hyper + self.flags}
        out["t"] = self.t
        for slot in self.slots:
            for key, arr in self.state[slot].items():
                out[f"{slot}/{key}"] = arr.copy()
        return out

    @checked(checks.load_state_dict)
    def load_state_dict(self, state):
        """Restore from :meth:`state_dict` (or the dict of a loaded .npz); a bad state changes nothing."""
        for name in self.hyper + self.flags + ("t",):
            setattr(self, name, state[name])
        for slot in self.slots:
            for key in self.params:
                self.state[slot][key][...] = state[f"{slot}/{key}"]


class SGD(_Optimizer):
    """Stochastic gradient descent with (heavy-ball) momentum and L2 weight decay.

    Parameters
    ----------
    params : dict name -> ndarray
    lr : float
        Learning rate.
    momentum : float
        mu in [0, 1); 0 gives plain SGD.
    weight_decay : float
        lambda of the L2 penalty (lambda / 2) ||p||^2 added to the loss.

    Notes
    -----
    Per parameter p with gradient g (the convention of torch.optim.SGD):
    g <- g + lambda p;  v <- mu v + g;  p <- p - lr v.
    """

    hyper = ("lr", "momentum", "weight_decay")
    slots = ("v",)

    @checked(checks.SGD)
    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)

    def _update(self, p, g, v):
        if self.weight_decay:
            g = g + self.weight_decay * p
        v[...] = self.momentum * v + g
        p -= self.lr * v


class Adam(_Optimizer):
    """Adam (Kingma & Ba 2015) with optional weight decay.

    Parameters
    ----------
    params : dict name -> ndarray
    lr, beta1, beta2, eps : float
        Step size, decay rates of the first and second moments, and the
        constant that keeps the denominator away from 0.
    weight_decay : float
        lambda. Added to the gradient (L2 penalty, as torch.optim.Adam), or
        with ``decoupled=True`` applied to the weights directly (AdamW,
        Loshchilov & Hutter 2019: p <- p - lr lambda p before the Adam step).
    decoupled : bool, keyword-only
        AdamW's decoupled weight decay; saved by :meth:`state_dict`.

    :meth:`step` refuses gradients beyond sqrt of the dtype's largest number,
    halved (9e18 in float32): their square, the second moment, would overflow.

    Notes
    -----
    At step t = 1, 2, ... for each parameter p with gradient g:
    g <- g + lambda p (unless decoupled);
    m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2;
    m_hat = m / (1 - beta1^t);  v_hat = v / (1 - beta2^t);
    p <- p - lr m_hat / (sqrt(v_hat) + eps).
    """

    hyper = ("lr", "beta1", "beta2", "eps", "weight_decay")
    flags = ("decoupled",)
    slots = ("m", "v")

    @checked(checks.Adam)
    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, *, decoupled=False):
        super().__init__(params, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                         decoupled=decoupled)
        # g^2 must fit the dtype of the second moment: |g| <= sqrt(max) / 2 (1.8e19 / 2 in float32)
        self.grad_limit = min(float(np.sqrt(np.finfo(p.dtype).max)) / 2 for p in params.values())

    def _update(self, p, g, m, v):
        if self.weight_decay and self.decoupled:
            p -= (self.lr * self.weight_decay) * p
        elif self.weight_decay:
            g = g + self.weight_decay * p
        m[...] = self.beta1 * m + (1 - self.beta1) * g
        v[...] = self.beta2 * v + (1 - self.beta2) * (g * g)
        m_hat = m / (1 - self.beta1 ** self.t)
        v_hat = v / (1 - self.beta2 ** self.t)
        p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


@checked(checks.clip_grad_norm)
def clip_grad_norm(grads, max_norm):
    """Scale all gradients together so their global L2 norm is at most max_norm.

    Parameters
    ----------
    grads : dict name -> ndarray
        Scaled **in place** when the norm exceeds ``max_norm``.
    max_norm : float > 0

    Returns
    -------
    float
        The global norm before clipping.

    Notes
    -----
    n = sqrt(sum_key ||g_key||^2); if n > max_norm every g <- g * max_norm / n,
    which keeps the direction of the whole update and sets its norm to max_norm.
    """
    total = float(np.sqrt(sum(np.square(g, dtype=np.float64).sum() for g in grads.values())))  # squares in float64
    if max_norm < total < np.inf:  # an infinite norm (squares beyond float64) has no scale: returned as is
        for g in grads.values():
            g *= max_norm / total
    return total


def _fans(shape):
    """fan_in, fan_out of a weight: (D_in, D_out), or (k, C_in, C_out) with the k taps counted."""
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2]))
    return receptive * shape[-2], receptive * shape[-1]


@checked(checks.glorot_uniform)
def glorot_uniform(rng, shape, dtype=np.float64):
    """Glorot/Xavier uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)).

    Keeps the variance of activations and of gradients about constant
    through linear or tanh layers (Glorot & Bengio 2010). For a conv weight
    (k, C_in, C_out): fan_in = k C_in, fan_out = k C_out.
    """
    fan_in, fan_out = _fans(shape)
    a = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-a, a, size=shape).astype(dtype)


@checked(checks.he_uniform)
def he_uniform(rng, shape, dtype=np.float64):
    """He/Kaiming uniform: U(-a, a), a = sqrt(6 / fan_in), for ReLU layers (He et al. 2015).

    Var = a^2 / 3 = 2 / fan_in compensates for ReLU zeroing half the units.
    """
    fan_in, _ = _fans(shape)
    a = np.sqrt(6.0 / fan_in)
    return rng.uniform(-a, a, size=shape).astype(dtype)
