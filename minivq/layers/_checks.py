"""Argument checks shared by the layers (STYLE.md "Errors").

Every message names the argument, what was expected and what it got. The
checks are cheap next to the layer itself: a dtype and shape comparison, and
one min and one max reduction for finiteness (NaN propagates through both).
"""
import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)


def check_float(a, name, shape_hint, *, ndim=None, min_ndim=None, dtype=None, like=None):
    """Return ``a`` as a finite float32/float64 ndarray, or raise.

    ``shape_hint`` is the expected shape in words, e.g. "(B, T, C_in)";
    ``dtype``/``like`` name the dtype ``a`` must share (with the argument
    called ``like``).
    """
    a = np.asarray(a)
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64 {shape_hint}, got {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(
            f"{name} must have the dtype of {like} ({np.dtype(dtype)}), got {a.dtype}; cast one with .astype()"
        )
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {shape_hint}, got shape {a.shape} ({a.ndim}-D)")
    if min_ndim is not None and a.ndim < min_ndim:
        raise ValueError(f"{name} must be at least {min_ndim}-D {shape_hint}, got shape {a.shape}")
    if a.size and not (np.isfinite(a.min()) and np.isfinite(a.max())):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise ValueError(f"{name} must be finite, got {a[bad]} at index {bad}")
    return a


def check_shape(a, name, expected, hint):
    """Raise ValueError unless ``a.shape == expected``."""
    if a.shape != tuple(expected):
        raise ValueError(f"{name} must have shape {hint} = {tuple(expected)}, got {a.shape}")


def check_dout(dout, shape, dtype=None):
    """The upstream gradient must match the forward output in shape and dtype.

    ``dtype=None`` accepts float32 or float64 (for layers whose cache holds
    no floating array, e.g. the ReLU mask).
    """
    dout = np.asarray(dout)
    if dout.shape != tuple(shape):
        raise ValueError(f"dout must have the forward output's shape {tuple(shape)}, got {dout.shape}")
    if dtype is None:
        if dout.dtype not in FLOAT_DTYPES:
            raise TypeError(f"dout must have dtype float32 or float64, got {dout.dtype}")
    elif dout.dtype != dtype:
        raise TypeError(f"dout must have the forward output's dtype {np.dtype(dtype)}, got {dout.dtype}")
    return dout


def check_mask(M, name, shape, hint):
    """A boolean mask of the given shape."""
    M = np.asarray(M)
    if M.dtype != np.bool_:
        raise TypeError(f"{name} must be a bool mask {hint}, got dtype {M.dtype}; use {name}.astype(bool)")
    check_shape(M, name, shape, hint)
    return M


def check_int(value, name, minimum):
    """A Python or NumPy integer (not bool) >= minimum."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def check_positive(value, name):
    """A finite float > 0 (e.g. eps)."""
    if not (isinstance(value, (int, float, np.floating, np.integer)) and np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)
