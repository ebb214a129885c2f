"""Argument checks shared by the whole package (STYLE.md "Errors").

Used by the layers (:mod:`minivq.layers.dense`, ``.conv``, ``.sequence``),
the quantizer (:mod:`minivq.quantizer`), code matching
(:mod:`minivq.matching`) and the contrastive losses
(:mod:`minivq.contrastive`). Each helper returns the checked value or raises
a TypeError/ValueError whose message names the argument, the expected shape
or dtype, and what it got. The checks are cheap next to the work they guard:
a dtype and shape comparison, and one min and one max reduction for
finiteness (NaN propagates through both).

Two conventions meet here, chosen per call by keyword:

- ``coerce=True`` (the layers): anything ``np.asarray`` accepts, e.g. a list;
  ``coerce=False`` (quantizer, matching, contrastive): an ndarray or a TypeError.
- :func:`check_mask` with ``none_is_all=True`` reads ``M=None`` as "all
  valid", and with ``allow_empty=False`` wants at least one valid unit.
"""
import numpy as np

FLOAT_DTYPES = (np.float32, np.float64)


def check_float(a, name, shape_hint, *, ndim=None, min_ndim=None, dtype=None, like=None, coerce=True):
    """Return ``a`` as a finite float32/float64 ndarray, or raise.

    ``shape_hint`` is the expected shape in words, e.g. "(B, T, C_in)";
    ``dtype``/``like`` name the dtype ``a`` must share (with the argument
    called ``like``); ``coerce=False`` rejects anything but an ndarray.
    """
    if coerce:
        a = np.asarray(a)
    elif not isinstance(a, np.ndarray):
        raise TypeError(f"{name} must be a float32 or float64 ndarray {shape_hint}, got {type(a).__name__}")
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


def check_mask(M, shape, hint, name="M", *, coerce=True, none_is_all=False, allow_empty=True):
    """A boolean mask of ``shape`` (``hint`` says it in words, e.g. "(B, T)").

    ``none_is_all``: None means every unit is valid. ``coerce=False``: an
    ndarray or a TypeError. ``allow_empty=False``: at least one True.
    """
    if none_is_all and M is None:
        M = np.ones(shape, dtype=bool)
    if coerce:
        M = np.asarray(M)
    elif not isinstance(M, np.ndarray):
        raise TypeError(f"{name} must be a bool ndarray of shape {hint}, got {type(M).__name__}")
    if M.dtype != np.bool_:
        raise TypeError(f"{name} must be a bool mask {hint}, got dtype {M.dtype}; use {name}.astype(bool)")
    check_shape(M, name, shape, hint)
    if not allow_empty and not M.any():
        raise ValueError(f"{name} must mark at least one valid unit, got an all-False mask")
    return M


def check_codebook(E, D, dtype):
    """E (K, D) with K >= 1, the units' D and dtype."""
    check_float(E, "E", "(K, D)", ndim=2, coerce=False)
    if E.shape[0] == 0 or E.shape[1] != D:
        raise ValueError(f"E must have shape (K >= 1, D = {D}), got {E.shape}")
    if E.dtype != dtype:
        raise TypeError(f"E must have the features' dtype {dtype}, got {E.dtype}")
    return E


def check_indices(idx, shape, K, name="idx"):
    """Integer code indices of ``shape`` with values in [0, K)."""
    if not isinstance(idx, np.ndarray) or not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"{name} must be an integer ndarray of shape {shape}, got {type(idx).__name__}")
    if idx.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= K):
        raise ValueError(f"{name} must hold codes in [0, K={K}), got [{idx.min()}, {idx.max()}]")
    return idx


def check_int(value, name, minimum):
    """A Python or NumPy integer (not bool) >= minimum; TypeError if not an integer."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def check_count(K, name):
    """A positive int (a size such as K or D); ValueError for anything else."""
    if isinstance(K, (bool, np.bool_)) or not isinstance(K, (int, np.integer)) or K < 1:
        raise ValueError(f"{name} must be a positive int, got {K!r}")
    return int(K)


def check_positive(value, name):
    """A finite float > 0 (e.g. eps)."""
    if not (isinstance(value, (int, float, np.floating, np.integer)) and np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def per_modality(first, *others):
    """Parallel lists, one entry per modality, of arguments given as one array or a list.

    ``first`` fixes the number of modalities; an ``other`` that is not a
    list (e.g. a mask of None) is repeated for every modality.
    """
    firsts = list(first) if isinstance(first, (list, tuple)) else [first]
    lists = [firsts]
    for other in others:
        items = list(other) if isinstance(other, (list, tuple)) else [other] * len(firsts)
        if len(items) != len(firsts):
            raise ValueError(f"expected one entry per modality ({len(firsts)}), got {len(items)}")
        lists.append(items)
    return lists


def valid_units(H, M, D=None, name="H"):
    """Valid rows of every modality, pooled: X (N, D)."""
    Hs, Ms = per_modality(H, M)
    rows = []
    for H_m, M_m in zip(Hs, Ms):
        check_float(H_m, name, "(..., D)", min_ndim=1, coerce=False)
        if D is not None and H_m.shape[-1] != D:
            raise ValueError(f"{name} must have D = {D} features, got shape {H_m.shape}")
        mask = check_mask(M_m, H_m.shape[:-1], f"{name}.shape[:-1]", coerce=False, none_is_all=True)
        rows.append(H_m[mask])
    X = np.concatenate(rows, axis=0)  # (N, D)
    if len(X) == 0:
        raise ValueError("M must mark at least one valid unit, got no valid unit in any modality")
    return X
