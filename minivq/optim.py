"""Optimizers, gradient clipping and parameter initialization.

A model keeps its parameters in a dict ``params`` and its backward pass
returns a dict ``grads`` with the same keys (STYLE.md, after cs231n's
``fc_net``): one loop optimizes, clips, saves and loads everything. The
optimizers update the arrays of ``params`` **in place**, so any reference to
a parameter stays valid. ``tests/test_optim.py`` checks Adam against its
equations step by step and trains a small MLP built from
:mod:`minivq.layers`.
"""
import numpy as np

from ._checks import (MAX_SIZE, check_bool, check_finite, check_float, check_float_dtype, check_int, check_number,
                      describe)
from .nearest import compiled_passes

# the norm and the Adam step as compiled loops: the same bits as the NumPy passes
_fast = compiled_passes("_optim_fast")

__all__ = ["SGD", "Adam", "clip_grad_norm", "glorot_uniform", "he_uniform"]


def _check_params(params):
    if not isinstance(params, dict) or not params:
        raise TypeError(f"params must be a non-empty dict name -> ndarray, got {type(params).__name__}")
    for key, p in params.items():
        if not isinstance(p, np.ndarray) or p.dtype not in (np.float32, np.float64):
            raise TypeError(
                f"params[{key!r}] must be a float32 or float64 ndarray, got "
                f"{type(p).__name__} {getattr(p, 'dtype', '')}"
            )
        if not p.flags.writeable:
            raise ValueError(f"params[{key!r}] must be writeable (it is updated in place)")
    return params


def _check_grads(grads, params, limit=None):
    """grads must have exactly the keys of params, with matching shapes and dtypes, finite (and at most
    ``limit`` in magnitude when given)."""
    if not isinstance(grads, dict):
        raise TypeError(f"grads must be a dict with the keys of params, got {type(grads).__name__}")
    if grads.keys() != params.keys():
        missing = sorted(params.keys() - grads.keys())
        extra = sorted(grads.keys() - params.keys())
        raise ValueError(f"grads must have the keys of params; missing {missing}, unexpected {extra}")
    for key, g in grads.items():
        p = params[key]
        if isinstance(g, np.ndarray) and g.shape != p.shape:
            raise ValueError(f"grads[{key!r}] must have the shape of params[{key!r}] {p.shape}, got {g.shape}")
        if not isinstance(g, np.ndarray) or g.dtype != p.dtype:
            got = g.dtype if isinstance(g, np.ndarray) else type(g).__name__
            raise TypeError(f"grads[{key!r}] must have the dtype of params[{key!r}] ({p.dtype}) (an ndarray), "
                            f"got {got}")
        if not g.size:
            continue
        lo, hi = g.min(), g.max()  # one pass each: finiteness (NaN propagates) and magnitude
        if not (np.isfinite(lo) and np.isfinite(hi)):
            check_finite(g, f"grads[{key!r}]")  # raises, naming the first NaN or inf
        if limit is not None and max(-lo, hi) > limit:
            raise ValueError(f"grads[{key!r}] must be at most {limit:.3g} in magnitude for {p.dtype} (Adam's "
                             f"second moment holds g^2), got {max(-lo, hi):.3g}; clip the gradients")


def _check_hyper(value, name, below=None, big=None):
    """A finite real number >= 0 (and < ``below``, or at most ``big``, when given)."""
    if below is None and big is not None:
        return check_number(value, name, 0, big)
    return check_number(value, name, 0, below, high_open=True)


class _Optimizer:
    """Shared bookkeeping: hyperparameters, per-parameter state, state_dict."""

    grad_limit = None  # the largest |gradient| step() accepts (None: any finite value)
    hyper = ()  # names of the float hyperparameters saved by state_dict
    flags = ()  # names of the bool options saved by state_dict
    slots = ()  # names of the per-parameter state arrays

    def __init__(self, params, **hyper):
        self.params = _check_params(params)
        big = min(float(np.finfo(p.dtype).max) for p in params.values())  # a value the update can hold
        for name, value in hyper.items():
            setattr(self, name, _check_hyper(value, name, big=big))
        self.t = 0  # steps taken
        self._flat = {}  # slot -> the flat buffer its state arrays are views of (one dtype only)
        self.state = {s: self._zero_state(s, params) for s in self.slots}

    def _zero_state(self, slot, params):
        """One zero array per parameter; with a single dtype, views into one flat buffer.

        The views let an optimizer update all its state with a few whole-buffer
        operations (:meth:`Adam._step`) instead of a few per parameter; each
        ``state[slot][key]`` is still an array of the parameter's shape.
        """
        dtypes = {p.dtype for p in params.values()}
        if len(dtypes) != 1:
            return {k: np.zeros_like(p) for k, p in params.items()}
        flat = self._flat[slot] = np.zeros(sum(p.size for p in params.values()), dtype=dtypes.pop())
        views, start = {}, 0
        for k, p in params.items():
            views[k] = flat[start:start + p.size].reshape(p.shape)
            start += p.size
        return views

    def _flat_state(self, slot):
        """The flat buffer behind ``state[slot]``, or None (several dtypes, or an array replaced)."""
        flat = self._flat.get(slot)
        if flat is None or any(a.base is not flat for a in self.state[slot].values()):
            return None
        return flat

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

    def load_state_dict(self, state):
        """Restore from :meth:`state_dict` (or the dict of a loaded .npz).

        Everything is checked before anything changes: a bad state leaves the
        optimizer as it was.
        """
        if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
            raise TypeError(f"state must be a dict from {type(self).__name__}.state_dict(), got {describe(state)}")
        slot_keys = [f"{slot}/{key}" for slot in self.slots for key in self.params]
        for name in self.hyper + self.flags + ("t",) + tuple(slot_keys):
            if name not in state:
                raise ValueError(f"state is missing {name!r}; expected keys from {type(self).__name__}.state_dict()")
        arrays = {}
        for slot in self.slots:
            for key, p in self.params.items():
                name = f"state[{slot + '/' + key!r}]"
                arr = check_float(state[f"{slot}/{key}"], name, f"{p.shape}")
                if arr.shape != p.shape:
                    raise ValueError(f"{name} must have shape {p.shape}, got {arr.shape}")
                arrays[slot, key] = arr
        hyper = {name: _check_hyper(_scalar(state[name]), f"state[{name!r}]",
                                    below=1 if name in ("momentum", "beta1", "beta2") else None)
                 for name in self.hyper}
        flags = {name: check_bool(_scalar(state[name]), f"state[{name!r}]") for name in self.flags}
        t = check_int(_scalar(state["t"]), "state['t']", 0)
        for name, value in {**hyper, **flags}.items():
            setattr(self, name, value)
        self.t = t
        for (slot, key), arr in arrays.items():
            self.state[slot][key][...] = arr.astype(self.params[key].dtype, copy=False)

    def step(self, grads):
        """Update every array of ``params`` in place from ``grads`` (same keys)."""
        _check_grads(grads, self.params, self.grad_limit)
        self._step(grads)

    def _step(self, grads):
        """:meth:`step` without the checks: grads of the params' keys, shapes and dtypes, finite (and for
        Adam at most ``grad_limit`` in magnitude), e.g. fresh from a backward pass and clip_grad_norm."""
        self.t += 1
        for key, p in self.params.items():
            self._update(key, p, np.asarray(grads[key]))

    def _update(self, key, p, g):
        raise NotImplementedError


def _scalar(value):
    """A 0-d array (as saved in an .npz) as its Python scalar; anything else as is."""
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


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

    def __init__(self, params, lr, momentum=0.9, weight_decay=0.0):
        _check_hyper(momentum, "momentum", below=1)
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)

    def _update(self, key, p, g):
        if self.weight_decay:
            g = g + p.dtype.type(self.weight_decay) * p
        v = self.state["v"][key]
        v *= p.dtype.type(self.momentum)
        v += g
        p -= p.dtype.type(self.lr) * v


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
        AdamW's decoupled weight decay instead of the L2 penalty; saved by
        :meth:`state_dict` with the hyperparameters.

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

    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                 *, decoupled=False):
        _check_hyper(beta1, "beta1", below=1)
        _check_hyper(beta2, "beta2", below=1)
        decoupled = check_bool(decoupled, "decoupled")
        tiny = max((float(np.finfo(p.dtype).tiny) for p in _check_params(params).values()), default=0.0)
        if _check_hyper(eps, "eps") < tiny:  # it would be 0 in the parameters' dtype: 0 / 0 where g = 0
            raise ValueError(f"eps must be >= {tiny:.3g} (the smallest normal number of the parameters' dtype), "
                             f"got {eps!r}")
        super().__init__(params, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)
        if decoupled and self.lr * self.weight_decay > min(float(np.finfo(p.dtype).max) for p in self.params.values()):
            raise ValueError(f"lr and weight_decay must keep lr * weight_decay within the parameters' dtype, got "
                             f"{self.lr!r} * {self.weight_decay!r}")
        self.decoupled = decoupled
        # g^2 must fit the dtype of the second moment: |g| <= sqrt(max) / 2 (1.8e19 / 2 in float32)
        self.grad_limit = min(float(np.sqrt(np.finfo(p.dtype).max)) / 2 for p in self.params.values())

    def _step(self, grads):
        """:meth:`step` without the checks; one pass over all the parameters at once when it can.

        With one dtype and no weight decay, the moments of every parameter are
        updated as one flat buffer (the state arrays are views into it,
        :meth:`_Optimizer._zero_state`) from the concatenated gradients, then
        each parameter takes its slice of the step: the same operations, in
        the same order, as :meth:`_update` per parameter, so the same bits
        (``tests/test_fast_paths.py``), with a few whole-buffer passes
        instead of a dozen small ones per parameter. When the parameters and
        gradients are C-contiguous arrays of that dtype, the compiled
        :func:`minivq._optim_fast.adam_update` runs the same operations in
        one loop: the same bits again (``tests/test_compiled_step.py``).
        """
        m_flat, v_flat = self._flat_state("m"), self._flat_state("v")
        if self.weight_decay or m_flat is None or v_flat is None:
            return super()._step(grads)
        self.t += 1
        if _fast is not None:  # one compiled loop (:mod:`minivq._optim_fast`), the same operations
            try:
                return _fast.adam_update(list(self.params.values()), [grads[k] for k in self.params], m_flat, v_flat,
                                         self.beta1, self.beta2, 1 - self.beta1 ** self.t, 1 - self.beta2 ** self.t,
                                         self.lr, self.eps)
            except TypeError:  # a gradient of another dtype, or not C-contiguous: the NumPy passes below
                pass
        f = m_flat.dtype.type
        g = np.concatenate([np.asarray(grads[k]).ravel() for k in self.params])
        m_flat *= f(self.beta1)
        m_flat += f(1 - self.beta1) * g
        v_flat *= f(self.beta2)
        np.multiply(g, g, out=g)
        g *= f(1 - self.beta2)
        v_flat += g
        m_hat = m_flat / f(1 - self.beta1 ** self.t)
        v_hat = np.divide(v_flat, f(1 - self.beta2 ** self.t), out=g)
        np.sqrt(v_hat, out=v_hat)
        v_hat += f(self.eps)
        m_hat *= f(self.lr)
        m_hat /= v_hat  # the step, lr m_hat / (sqrt(v_hat) + eps)
        start = 0
        for p in self.params.values():
            p -= m_hat[start:start + p.size].reshape(p.shape)
            start += p.size

    def _update(self, key, p, g):
        f = p.dtype.type
        if self.weight_decay and self.decoupled:
            p -= f(self.lr * self.weight_decay) * p
        elif self.weight_decay:
            g = g + f(self.weight_decay) * p
        m, v = self.state["m"][key], self.state["v"][key]
        m *= f(self.beta1)
        m += f(1 - self.beta1) * g
        v *= f(self.beta2)
        v += f(1 - self.beta2) * (g * g)
        m_hat = m / f(1 - self.beta1 ** self.t)
        v_hat = v / f(1 - self.beta2 ** self.t)
        p -= f(self.lr) * m_hat / (np.sqrt(v_hat) + f(self.eps))


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
    max_norm = check_number(max_norm, "max_norm", 0, low_open=True)
    if not isinstance(grads, dict):
        raise TypeError(f"grads must be a dict name -> ndarray, got {type(grads).__name__}")
    for key, g in grads.items():
        if not isinstance(g, np.ndarray) or g.dtype not in (np.float32, np.float64):
            raise TypeError(f"grads[{key!r}] must be a float32 or float64 ndarray (it is scaled in place), "
                            f"got {type(g).__name__} {getattr(g, 'dtype', '')}")
        if not g.flags.writeable:
            raise ValueError(f"grads[{key!r}] must be writeable (it is scaled in place)")
    return _clip_grad_norm(grads, max_norm)


def _clip_grad_norm(grads, max_norm):
    """:func:`clip_grad_norm` without the checks: a dict of writeable float arrays, max_norm > 0.

    The sum of squares runs compiled (:func:`minivq._optim_fast.squared_norm`,
    the same bits as the NumPy passes below) when the gradients are
    C-contiguous arrays of one dtype.
    """
    total_sq = None
    if _fast is not None:  # one compiled loop (:mod:`minivq._optim_fast`), the same sum
        try:
            total_sq = _fast.squared_norm(list(grads.values()))
        except TypeError:  # mixed dtypes or a non-contiguous gradient: the NumPy passes below
            pass
    if total_sq is None:
        # all the squares in one float64 buffer, one pairwise sum (the same on any number of threads)
        sq = np.concatenate([g.ravel() for g in grads.values()] or [np.zeros(0)], dtype=np.float64)
        total_sq = float(np.sum(np.square(sq, out=sq)))
    if not np.isfinite(total_sq):
        for key, g in grads.items():  # name the culprit
            if not np.isfinite(np.sum(np.square(g, dtype=np.float64))):
                raise ValueError(f"grads[{key!r}] is not finite (NaN, inf or overflow); cannot clip")
    total = float(np.sqrt(total_sq))
    if total > max_norm:
        for g in grads.values():
            g *= g.dtype.type(max_norm / total)
    return total


def _fans(shape):
    """fan_in, fan_out of a weight: (D_in, D_out), or (k, C_in, C_out) with the k taps counted."""
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) for s in shape):
        raise TypeError(f"shape must be a tuple of ints, got {shape!r}")
    shape = tuple(int(s) for s in shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"shape must have at least one axis and no zero axis, got {shape}")
    if np.prod(shape, dtype=float) > MAX_SIZE:
        raise ValueError(f"shape must hold at most {MAX_SIZE} entries, got {shape}")
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2]))
    return receptive * shape[-2], receptive * shape[-1]


def _uniform(rng, shape, dtype, limit):
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a np.random.Generator (np.random.default_rng(seed)), got {type(rng).__name__}")
    dtype = check_float_dtype(dtype)
    return rng.uniform(-limit, limit, size=tuple(shape)).astype(dtype)


def glorot_uniform(rng, shape, dtype=np.float64):
    """Glorot/Xavier uniform: U(-a, a), a = sqrt(6 / (fan_in + fan_out)).

    Keeps the variance of activations and of gradients about constant
    through linear or tanh layers (Glorot & Bengio 2010). For a conv weight
    (k, C_in, C_out): fan_in = k C_in, fan_out = k C_out.
    """
    fan_in, fan_out = _fans(shape)
    return _uniform(rng, shape, dtype, np.sqrt(6.0 / (fan_in + fan_out)))


def he_uniform(rng, shape, dtype=np.float64):
    """He/Kaiming uniform: U(-a, a), a = sqrt(6 / fan_in), for ReLU layers (He et al. 2015).

    Var = a^2 / 3 = 2 / fan_in compensates for ReLU zeroing half the units.
    """
    fan_in, _ = _fans(shape)
    return _uniform(rng, shape, dtype, np.sqrt(6.0 / fan_in))
