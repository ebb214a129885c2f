"""Checks of the optimizers, gradient clipping and the initializers (:mod:`minivq.optim`): one function
per public function or method, of the same name (``SGD`` and ``Adam`` for the constructors), on its
bound arguments (``self`` included for a method)."""
import math

import numpy as np

from .arrays import (FLOAT_DTYPES, MAX_SIZE, check_bool, check_finite, check_float, check_float_dtype, check_int,
                     check_number, describe)


def _writeable(key, x, name, use, note=""):
    """``name[key]`` is a writeable float32/float64 ndarray (``use``: what is done to it in place)."""
    if not isinstance(x, np.ndarray) or x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}[{key!r}] must be a float32 or float64 ndarray{note}, got "
                        f"{type(x).__name__} {getattr(x, 'dtype', '')}")
    if not x.flags.writeable:
        raise ValueError(f"{name}[{key!r}] must be writeable (it is {use} in place)")


def _params(params):
    """A non-empty dict name -> writeable float32/float64 ndarray (updated in place)."""
    if not isinstance(params, dict) or not params:
        raise TypeError(f"params must be a non-empty dict name -> ndarray, got {type(params).__name__}")
    for key, p in params.items():
        _writeable(key, p, "params", "updated")
    return params


def _hyper(a, names, below=()):
    """Each of ``names``: a finite number >= 0, below 1 if in ``below``, else at most what the params' dtype holds."""
    big = min(float(np.finfo(p.dtype).max) for p in a["params"].values())
    for name in names:
        a[name] = (check_number(a[name], name, 0, 1, high_open=True) if name in below
                   else check_number(a[name], name, 0, big))


def SGD(a):
    check_number(a["momentum"], "momentum", 0, 1, high_open=True)
    _params(a["params"])
    _hyper(a, ("lr", "momentum", "weight_decay"), below=("momentum",))


def Adam(a):
    check_number(a["beta1"], "beta1", 0, 1, high_open=True)
    check_number(a["beta2"], "beta2", 0, 1, high_open=True)
    a["decoupled"] = check_bool(a["decoupled"], "decoupled")
    params = _params(a["params"])
    tiny = max(float(np.finfo(p.dtype).tiny) for p in params.values())
    if check_number(a["eps"], "eps", 0) < tiny:  # it would be 0 in the parameters' dtype: 0 / 0 where g = 0
        raise ValueError(f"eps must be >= {tiny:.3g} (the smallest normal number of the parameters' dtype), "
                         f"got {a['eps']!r}")
    _hyper(a, ("lr", "beta1", "beta2", "eps", "weight_decay"), below=("beta1", "beta2"))
    if a["decoupled"] and a["lr"] * a["weight_decay"] > min(float(np.finfo(p.dtype).max) for p in params.values()):
        raise ValueError(f"lr and weight_decay must keep lr * weight_decay within the parameters' dtype, got "
                         f"{a['lr']!r} * {a['weight_decay']!r}")


def step(a):
    """grads: the keys of params, their shapes and dtypes, finite, and at most ``grad_limit`` in magnitude."""
    grads, params, limit = a["grads"], a["self"].params, a["self"].grad_limit
    if not isinstance(grads, dict):
        raise TypeError(f"grads must be a dict with the keys of params, got {type(grads).__name__}")
    if grads.keys() != params.keys():
        raise ValueError(f"grads must have the keys of params; missing {sorted(params.keys() - grads.keys())}, "
                         f"unexpected {sorted(grads.keys() - params.keys())}")
    for key, g in grads.items():
        p = params[key]
        if isinstance(g, np.ndarray) and g.shape != p.shape:
            raise ValueError(f"grads[{key!r}] must have the shape of params[{key!r}] {p.shape}, got {g.shape}")
        if not isinstance(g, np.ndarray) or g.dtype != p.dtype:
            got = g.dtype if isinstance(g, np.ndarray) else type(g).__name__
            raise TypeError(f"grads[{key!r}] must have the dtype of params[{key!r}] ({p.dtype}) (an ndarray), "
                            f"got {got}")
        lo, hi = (g.min(), g.max()) if g.size else (0.0, 0.0)  # one pass each: NaN propagates
        if not (np.isfinite(lo) and np.isfinite(hi)):
            check_finite(g, f"grads[{key!r}]")  # raises, naming the first NaN or inf
        if limit is not None and max(-lo, hi) > limit:
            raise ValueError(f"grads[{key!r}] must be at most {limit:.3g} in magnitude for {p.dtype} (Adam's "
                             f"second moment holds g^2), got {max(-lo, hi):.3g}; clip the gradients")


def _scalar(value):
    """A 0-d array (as saved in an .npz) as its Python scalar; anything else as is."""
    return value.item() if isinstance(value, np.ndarray) and value.ndim == 0 else value


def load_state_dict(a):
    """Replaces ``state`` by its checked values: Python numbers, and arrays of the parameters' shapes."""
    opt, state = a["self"], a["state"]
    if not hasattr(state, "keys") or not hasattr(state, "__getitem__"):
        raise TypeError(f"state must be a dict from {type(opt).__name__}.state_dict(), got {describe(state)}")
    slot_keys = [f"{slot}/{key}" for slot in opt.slots for key in opt.params]
    for name in opt.hyper + opt.flags + ("t",) + tuple(slot_keys):
        if name not in state:
            raise ValueError(f"state is missing {name!r}; expected keys from {type(opt).__name__}.state_dict()")
    checked = {}
    for slot in opt.slots:
        for key, p in opt.params.items():
            name = f"state[{slot + '/' + key!r}]"
            arr = checked[f"{slot}/{key}"] = check_float(state[f"{slot}/{key}"], name, f"{p.shape}")
            if arr.shape != p.shape:
                raise ValueError(f"{name} must have shape {p.shape}, got {arr.shape}")
    for name in opt.hyper:
        checked[name] = check_number(_scalar(state[name]), f"state[{name!r}]", 0,
                                     1 if name in ("momentum", "beta1", "beta2") else None, high_open=True)
    for name in opt.flags:
        checked[name] = check_bool(_scalar(state[name]), f"state[{name!r}]")
    checked["t"] = check_int(_scalar(state["t"]), "state['t']", 0)
    a["state"] = checked


def clip_grad_norm(a):
    a["max_norm"] = check_number(a["max_norm"], "max_norm", 0, low_open=True)
    grads = a["grads"]
    if not isinstance(grads, dict):
        raise TypeError(f"grads must be a dict name -> ndarray, got {type(grads).__name__}")
    for key, g in grads.items():
        _writeable(key, g, "grads", "scaled", note=" (it is scaled in place)")
        largest = float(max(-g.min(), g.max())) if g.size else 0.0  # NaN propagates
        safe = math.sqrt(float(np.finfo(np.float64).max) / max(g.size, 1))  # below it, g's squares add up finite
        if not np.isfinite(largest) or (largest > safe and not np.isfinite(np.square(g, dtype=np.float64).sum())):
            raise ValueError(f"grads[{key!r}] is not finite (NaN, inf or overflow); cannot clip")


def _initializer(a):
    shape = a["shape"]
    if not isinstance(shape, (tuple, list)) or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) for s in shape):
        raise TypeError(f"shape must be a tuple of ints, got {shape!r}")
    shape = a["shape"] = tuple(int(s) for s in shape)
    if not shape or min(shape) < 1:
        raise ValueError(f"shape must have at least one axis and no zero axis, got {shape}")
    if np.prod(shape, dtype=float) > MAX_SIZE:
        raise ValueError(f"shape must hold at most {MAX_SIZE} entries, got {shape}")
    if not isinstance(a["rng"], np.random.Generator):
        raise TypeError(f"rng must be a np.random.Generator (np.random.default_rng(seed)), got "
                        f"{type(a['rng']).__name__}")
    a["dtype"] = check_float_dtype(a["dtype"])


glorot_uniform = he_uniform = _initializer
