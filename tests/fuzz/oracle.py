"""The contract side of the fuzz: Invalid, Either, argument contracts and result checks.

Written independently of minivq.checks: an ``expect`` function reads its
arguments through these helpers, which raise :class:`Invalid` naming the
argument when the documented contract is broken.
"""
import numbers

import numpy as np

FLOATS = (np.float32, np.float64)


class Invalid(Exception):
    """The arguments break the contract; a ValueError/TypeError must name one of ``names``."""

    def __init__(self, *names, why=""):
        super().__init__(f"{names}: {why}")
        self.names, self.why = names, why


class Either:
    """Either outcome is right: a result that passes ``checker``, or an error naming one of ``names``.

    For inputs at the edge of the dtype's range (huge values): an answer
    that fits, or a ValueError saying that it does not.
    """

    def __init__(self, checker, *names):
        self.checker, self.names = checker, names


class WrongResult(AssertionError):
    """The function returned, but not the documented result."""


class NonFinite(WrongResult):
    """NaN or inf returned where the exact result is finite and fits the dtype."""


def _is_bool(v):
    return isinstance(v, (bool, np.bool_))


def need(cond, *names, why=""):
    """Invalid(names) unless cond."""
    if not cond:
        raise Invalid(*names, why=why)


def arr(a, name, kind="f", *, coerce=True, ndim=None, min_ndim=None, shape=None, finite=True, dtype=None,
        also=(), writeable=False):
    """``a`` as an ndarray meeting the contract, or Invalid(name, *also).

    kind: "f" float32/float64; "r" any integer or float (not bool, not
    complex); "i" integer (not bool); "b" bool. ``dtype``: the exact dtype
    required (an error may name ``also``, e.g. the argument it must match).
    """
    names = (name,) + tuple(also)
    if isinstance(a, np.ndarray):
        x = a
    elif not coerce:
        raise Invalid(name, why=f"not an ndarray: {type(a).__name__}")
    else:
        try:
            x = np.asarray(a)
        except Exception:
            raise Invalid(name, why="not array-like") from None
    k = x.dtype.kind
    ok = {"f": x.dtype in FLOATS, "r": k in "iuf", "i": k in "iu", "b": k == "b"}[kind]
    need(ok, name, why=f"dtype {x.dtype}")
    need(dtype is None or x.dtype == dtype, *names, why=f"dtype {x.dtype} != {dtype}")
    need(ndim is None or x.ndim == ndim, name, why=f"ndim {x.ndim}")
    need(min_ndim is None or x.ndim >= min_ndim, name, why=f"ndim {x.ndim}")
    need(shape is None or x.shape == tuple(shape), *names, why=f"shape {x.shape} != {shape}")
    if finite and k == "f" and x.size:
        need(bool(np.isfinite(x).all()), name, why="not finite")
    need(not writeable or x.flags.writeable, name, why="read-only")
    return x


def num(v, name, low=None, high=None, *, low_open=False, high_open=False):
    """A finite real number (not bool) within the bounds, as float."""
    need(isinstance(v, numbers.Real) and not _is_bool(v), name, why=f"not a number: {type(v).__name__}")
    x = float(v)
    need(np.isfinite(x), name, why="not finite")
    need(low is None or (x > low if low_open else x >= low), name, why=f"{x} below {low}")
    need(high is None or (x < high if high_open else x <= high), name, why=f"{x} above {high}")
    return x


def integer(v, name, low=None, high=None):
    """A Python or NumPy int (not bool) within [low, high]."""
    need(isinstance(v, (int, np.integer)) and not _is_bool(v), name, why=f"not an int: {type(v).__name__}")
    need(low is None or v >= low, name, why=f"{v} < {low}")
    need(high is None or v <= high, name, why=f"{v} > {high}")
    return int(v)


def boolean(v, name):
    need(_is_bool(v), name, why=f"not a bool: {type(v).__name__}")
    return bool(v)


def generator(v, name="rng", seeds=True):
    """A np.random.Generator (or, with ``seeds``, an int >= 0); returns a fresh equivalent for the reference."""
    if isinstance(v, np.random.Generator):
        return v
    need(seeds and isinstance(v, (int, np.integer)) and not _is_bool(v) and v >= 0, name, why="not a rng")
    return np.random.default_rng(int(v))


def float_dtype(v, name="dtype"):
    try:
        dt = np.dtype(v)
    except Exception:
        raise Invalid(name, why="not a dtype") from None
    need(v is not None and dt in FLOATS, name, why=f"dtype {dt}")
    return dt


def cache(a, name="cache"):
    """The cache argument must be exactly the forward's cache (kept as ``a["_cache"]``); returns it."""
    c, orig = a[name], a["_" + name]
    need(type(c) is type(orig) and len(c) == len(orig) and all(_same(x, y) for x, y in zip(c, orig)), name,
         why="not the forward's cache")
    return c


def _same(x, y):
    if isinstance(y, np.ndarray):
        return isinstance(x, np.ndarray) and x.dtype == y.dtype and x.shape == y.shape and np.array_equal(
            x, y, equal_nan=True)
    if isinstance(y, (tuple, list)):
        return type(x) is type(y) and len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    if isinstance(y, dict):
        return isinstance(x, dict) and x.keys() == y.keys() and all(_same(x[k], y[k]) for k in y)
    return type(x) is type(y) and x == y


def within(size, limit, check, *names):
    """Near a limit both outcomes are right: above it, Invalid; above limit / 4, Either; below, check."""
    need(size <= limit, *names, why=f"{size:.3g} > {limit:.3g}")
    return Either(check, *names) if size > limit / 4 else check


# ------------------------------------------------------------------ result checks
def close(out, ref, scale, dtype, what="out", k=64, allow_overflow=True, may_overflow=False):
    """``out`` equals ``ref`` (float64 or longer) up to k ulps of ``dtype`` times ``scale``.

    NaN or inf in ``out`` where ``ref`` is finite and fits the dtype is a
    :class:`NonFinite`; where the exact value is beyond the dtype, inf is the
    documented overflow (``allow_overflow``). ``may_overflow`` (a bool, or an
    array broadcast to ref's shape) marks where an intermediate of the
    computation can exceed the dtype; so does a ``scale`` (a bound of the
    intermediate sums) beyond half the dtype's range. NaN or inf there is
    NumPy's overflow, the documented policy (never a wrong finite number:
    finite entries are still checked).
    """
    if not isinstance(out, np.ndarray) or out.dtype != np.dtype(dtype):
        raise WrongResult(f"{what}: expected an ndarray of {np.dtype(dtype)}, got {type(out).__name__} "
                          f"{getattr(out, 'dtype', '')}")
    ref = np.asarray(ref, dtype=np.float64)
    if out.shape != ref.shape:
        raise WrongResult(f"{what}: shape {out.shape}, expected {ref.shape}")
    big = float(np.finfo(dtype).max)
    bad = ~np.isfinite(out)
    fits = np.isfinite(ref) & (np.abs(ref) <= big * (0.5 if allow_overflow else 2))
    with np.errstate(all="ignore"):
        inside = np.broadcast_to(np.abs(np.asarray(scale, dtype=np.float64)) <= big * 0.5, ref.shape)
    unexplained = bad & fits & inside & ~np.broadcast_to(np.asarray(may_overflow, dtype=bool), ref.shape)
    if unexplained.any():
        raise NonFinite(f"{what}: NaN/inf at {np.argwhere(unexplained)[0]} where the exact value and every "
                        "intermediate are finite")
    eps, tiny = float(np.finfo(dtype).eps), float(np.finfo(dtype).tiny)
    ok = ~bad
    with np.errstate(all="ignore"):
        err = np.abs(out.astype(np.float64) - ref)
        tol = k * eps * np.asarray(scale, dtype=np.float64) + k * tiny
        tol = np.where(np.isnan(tol), np.inf, tol)  # an unbounded scale: no claim on the value
    wrong = ok & fits & ~(err <= tol)
    if wrong.any():
        i = tuple(np.argwhere(wrong)[0])
        raise WrongResult(f"{what}: {out[i]!r} at {i}, expected {ref[i]!r} "
                          f"(tolerance {np.broadcast_to(tol, ref.shape)[i]:.3g})")


def equal(out, ref, what="out"):
    """Exact equality (shape, values) of arrays or nested results."""
    if type(ref) in (int, float, str):
        if not (isinstance(out, (int, float, np.integer, np.floating)) and out == ref):
            raise WrongResult(f"{what}: {out!r} != expected {ref!r}")
        return
    out_a, ref_a = np.asarray(out), np.asarray(ref)
    if out_a.shape != ref_a.shape or out_a.dtype.kind != ref_a.dtype.kind or not np.array_equal(
            out_a, ref_a, equal_nan=ref_a.dtype.kind in "fc"):
        raise WrongResult(f"{what}: {out!r} != expected {ref!r}")


def f64(a):
    return np.asarray(a, dtype=np.float64)
