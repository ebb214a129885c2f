"""The primitives every check is built from (STYLE.md "Errors").

Each returns the checked (possibly converted) value or raises TypeError
(wrong kind: a str for a number, an int array for a float one) or ValueError
(right kind, wrong value: a shape, a NaN, a number out of range), naming the
argument as the caller spelled it, the expected and the actual.
``coerce=True``: anything ``np.asarray`` accepts (e.g. a list); ``coerce=False``:
an ndarray or a TypeError.
"""
import numbers

import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)


def describe(value):
    """A short description of a value for an error message: its type and, if small, its repr."""
    if isinstance(value, np.ndarray):
        return f"ndarray of dtype {value.dtype} and shape {value.shape}"
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def as_array(a, name, hint):
    """``np.asarray(a)``, or a ValueError naming ``name`` when ``a`` is ragged or not array-like."""
    if isinstance(a, np.ndarray):
        return a
    try:
        return np.asarray(a)
    except (ValueError, TypeError) as err:  # ragged nested lists, objects numpy cannot read
        raise ValueError(f"{name} must be an array {hint}, got a {type(a).__name__} numpy cannot read as one "
                         f"(ragged nested lists?): {err}") from None


def check_finite(a, name):
    """ValueError naming the first NaN or inf of ``a`` (a float ndarray)."""
    if a.size and not (np.isfinite(a.min()) and np.isfinite(a.max())):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise ValueError(f"{name} must be finite, got {a[bad]} at index {bad}")
    return a


def check_float(a, name, shape_hint, *, ndim=None, min_ndim=None, dtype=None, like=None, coerce=True,
                finite=True):
    """Return ``a`` as a finite float32/float64 ndarray, or raise.

    ``shape_hint`` is the expected shape in words, e.g. "(B, T, C_in)";
    ``dtype``/``like`` name the dtype ``a`` must share (with the argument
    called ``like``); ``coerce=False`` rejects anything but an ndarray.
    """
    if coerce:
        a = as_array(a, name, shape_hint)
    elif not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a float32 or float64 ndarray {shape_hint}, got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64 {shape_hint}, got {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise TypeError(
            f"{name} must have the dtype of {like} ({np.dtype(dtype)}), got {a.dtype}; cast one with .astype()"
        )
    check_ndim(a, name, shape_hint, ndim=ndim, min_ndim=min_ndim)
    return check_finite(a, name) if finite else a


def check_ndim(a, name, shape_hint, *, ndim=None, min_ndim=None):
    """ValueError unless ``a.ndim == ndim`` (or ``>= min_ndim``)."""
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {shape_hint}, got shape {a.shape} ({a.ndim}-D)")
    if min_ndim is not None and a.ndim < min_ndim:
        raise ValueError(f"{name} must be at least {min_ndim}-D {shape_hint}, got shape {a.shape}")
    return a


def check_real(a, name, shape_hint, *, ndim=None, coerce=True, finite=True, nonnegative=False):
    """A real-valued array (bool excluded: any integer or float dtype), finite; e.g. scores or counts."""
    a = as_array(a, name, shape_hint) if coerce else a
    if not isinstance(a, np.ndarray) or a.dtype == np.bool_ or a.dtype.kind not in "iuf":
        got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise TypeError(f"{name} must be a real-valued (integer or float) array {shape_hint}, got {got}")
    check_ndim(a, name, shape_hint, ndim=ndim)
    if finite and a.dtype.kind == "f":
        check_finite(a, name)
    if nonnegative and a.size and a.min() < 0:
        raise ValueError(f"{name} must be >= 0 {shape_hint}, got a minimum of {a.min()}")
    return a


def check_shape(a, name, expected, hint):
    """Raise ValueError unless ``a.shape == expected``."""
    if a.shape != tuple(expected):
        raise ValueError(f"{name} must have shape {hint} = {tuple(expected)}, got {a.shape}")


def check_dout(dout, shape, dtype=None, name="dout"):
    """The upstream gradient must match the forward output in shape and dtype, and be finite.

    ``dtype=None`` accepts float32 or float64.
    """
    dout = as_array(dout, name, f"of the forward output's shape {tuple(shape)}")
    if dtype is None:
        if dout.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name} must have dtype float32 or float64, got {dout.dtype}")
    elif dout.dtype != dtype:
        raise TypeError(f"{name} must have the forward output's dtype {np.dtype(dtype)}, got {dout.dtype}")
    if dout.shape != tuple(shape):
        raise ValueError(f"{name} must have the forward output's shape {tuple(shape)}, got {dout.shape}")
    return check_finite(dout, name)


def check_cache(cache, kinds, producer, name="cache"):
    """A cache tuple as ``producer`` returns it: one item per type in ``kinds``; a TypeError otherwise.

    ``kinds`` holds a type (or a tuple of types) per item, None for any; an
    ``np.ndarray`` item may be given as ``(np.ndarray, ndim)``.
    """
    ok = isinstance(cache, tuple) and len(cache) == len(kinds)
    for item, kind in zip(cache if ok else (), kinds):
        if isinstance(kind, tuple) and len(kind) == 2 and kind[0] is np.ndarray:
            ok = ok and isinstance(item, np.ndarray) and item.ndim == kind[1]
        elif kind is not None:
            ok = ok and isinstance(item, kind)
    if not ok:
        raise TypeError(f"{name} must be the cache tuple returned by {producer} ({len(kinds)} items), "
                        f"got {describe(cache)}")
    return cache


def check_mask(M, shape, hint, name="M", *, coerce=True, none_is_all=False, allow_empty=True):
    """A boolean mask of ``shape`` (``hint`` says it in words, e.g. "(B, T)").

    ``none_is_all``: None means every unit is valid. ``coerce=False``: an
    ndarray or a TypeError. ``allow_empty=False``: at least one True.
    """
    if none_is_all and M is None:
        return np.ones(shape, dtype=bool)
    if coerce:
        M = as_array(M, name, hint)
    elif not isinstance(M, np.ndarray):
        raise TypeError(f"{name} must be a bool ndarray of shape {hint}, got {type(M).__name__}")
    if M.dtype != np.bool_:
        raise TypeError(f"{name} must be a bool mask {hint}, got dtype {M.dtype}; use {name}.astype(bool)")
    check_shape(M, name, shape, hint)
    if not allow_empty and not M.any():
        raise ValueError(f"{name} must mark at least one valid unit, got an all-False mask")
    return M


def check_codebook(E, D, dtype, name="E", units=None):
    """E (K, D) with K >= 1, the units' D >= 1 and dtype (``units`` names the units' argument)."""
    if units is not None and D == 0:
        raise ValueError(f"{units} must have at least one feature (D >= 1), got D = 0")
    check_float(E, name, "(K, D)", ndim=2, coerce=False)
    if E.shape[0] == 0 or E.shape[1] != D:
        raise ValueError(f"{name} must have shape (K >= 1, D = {D}), got {E.shape}")
    if E.dtype != dtype:
        raise TypeError(f"{name} must have the features' dtype {dtype}, got {E.dtype}")
    return E


def check_int_array(a, name, hint, *, coerce=True, ndim=None):
    """An integer ndarray (bool excluded); ``coerce`` converts lists first."""
    a = as_array(a, name, hint) if coerce else a
    if not isinstance(a, np.ndarray) or a.dtype == np.bool_ or a.dtype.kind not in "iu":
        got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise TypeError(f"{name} must have an integer dtype {hint}, got {got}")
    return check_ndim(a, name, hint, ndim=ndim)


def check_indices(idx, shape, K, name="idx"):
    """Integer code indices of ``shape`` with values in [0, K)."""
    check_int_array(idx, name, f"of shape {tuple(shape)}", coerce=False)
    if idx.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= K):
        raise ValueError(f"{name} must hold codes in [0, K={K}), got [{idx.min()}, {idx.max()}]")
    return idx


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_int(value, name, minimum, maximum=None):
    """A Python or NumPy integer (not bool) in [minimum, maximum]; TypeError if not an integer."""
    bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if not _is_int(value):
        raise TypeError(f"{name} must be an int {bounds}, got {describe(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an int {bounds}, got {value}")
    return int(value)


#: The largest size (K, D, a number of samples) a function allocates from one integer argument:
#: larger is a ValueError naming the argument, not a MemoryError from inside NumPy.
MAX_SIZE = 1 << 24


def check_count(K, name, maximum=MAX_SIZE):
    """A positive int (a size such as K or D), at most ``maximum``."""
    return check_int(K, name, 1, maximum)


def check_number(value, name, low=None, high=None, *, low_open=False, high_open=False):
    """A finite real number (not bool) in [low, high] (open ends with ``low_open``/``high_open``); a float."""
    lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
    hi = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
    wanted = "a finite number" + (f" {lo}" if lo else "") + (" and" if lo and hi else "") + (f" {hi}" if hi else "")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {wanted}, got {describe(value)}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not np.isfinite(value) or too_low or too_high:
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return value


def check_positive(value, name):
    """A finite number > 0 (e.g. a temperature or a step)."""
    return check_number(value, name, 0, low_open=True)


def check_eps(eps, name, dtype, default=None):
    """A finite eps > 0 that stays a normal number in ``dtype`` (x / eps, log(eps) finite), at most half its max."""
    tiny, big = float(np.finfo(dtype).tiny), float(np.finfo(dtype).max)
    eps = check_number(eps, name, 0, big / 2, low_open=True)
    if eps < tiny:
        raise ValueError(f"{name} must be >= {tiny:.3g} (the smallest normal {np.dtype(dtype)}; smaller "
                         f"underflows), got {eps!r}" + (f"; the default is {default}" if default else ""))
    return eps


def check_bool(value, name):
    """True or False (a NumPy bool too); TypeError for anything else (e.g. "no" or 1)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {describe(value)}")
    return bool(value)


def check_rng(rng, name="rng"):
    """A np.random.Generator, or a non-negative int seed for one; returns a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if _is_int(rng) and rng >= 0:
        return np.random.default_rng(int(rng))
    raise TypeError(f"{name} must be a np.random.Generator or a non-negative int seed, got {describe(rng)}")


def check_float_dtype(dtype, name="dtype"):
    """float32 or float64 (as a type, a dtype or its name); returns the np.dtype."""
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        dt = None
    if dtype is None or dt not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {describe(dtype)}")
    return dt


def per_modality(first, *others, names=None):
    """Parallel lists, one entry per modality: ``first`` a list (each ``other`` a list of its length, or one
    value repeated) or one array (one modality, every ``other`` taken whole); ``names`` spell them."""
    names = names or ("first",) + tuple(f"argument {i + 2}" for i in range(len(others)))
    if not isinstance(first, (list, tuple)):
        return [[first]] + [[other] for other in others]
    firsts = list(first)
    if not firsts:
        raise ValueError(f"{names[0]} must be an array or a non-empty list of arrays (one per modality), got []")
    lists = [firsts]
    for name, other in zip(names[1:], others):
        items = list(other) if isinstance(other, (list, tuple)) else [other] * len(firsts)
        if len(items) != len(firsts):
            raise ValueError(f"{name} must have one entry per modality of {names[0]} ({len(firsts)}), "
                             f"got {len(items)}")
        lists.append(items)
    return lists


def valid_units(H, M, D=None, name="H", mask_name="M", dtype=None, like=None):
    """Valid rows of every modality, pooled: X (N, D)."""
    Hs, Ms = per_modality(H, M, names=(name, mask_name))
    rows = []
    for H_m, M_m in zip(Hs, Ms):
        check_float(H_m, name, "(..., D)", min_ndim=1, coerce=False, dtype=dtype, like=like)
        if D is not None and H_m.shape[-1] != D:
            raise ValueError(f"{name} must have D = {D} features, got shape {H_m.shape}")
        if rows and H_m.dtype != rows[0].dtype:
            raise TypeError(f"{name} must have one dtype in every modality, got {rows[0].dtype} and {H_m.dtype}")
        if rows and H_m.shape[-1] != rows[0].shape[-1]:
            raise ValueError(f"{name} must have one D in every modality, got {rows[0].shape[-1]} and {H_m.shape[-1]}")
        mask = check_mask(M_m, H_m.shape[:-1], f"{name}.shape[:-1]", mask_name, coerce=False, none_is_all=True)
        rows.append(H_m[mask])
    X = np.concatenate(rows, axis=0)  # (N, D)
    if len(X) == 0:
        raise ValueError(f"{mask_name} must mark at least one valid unit, got no valid unit in any modality")
    return X
