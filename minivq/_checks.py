"""Argument checks shared by the quantizer, the contrastive loss and code matching.

Each helper returns the checked value or raises a TypeError/ValueError whose
message names the argument, the expected shape or dtype, and what it got
(STYLE.md "Errors").
"""
import numpy as np


def check_float(X, name, shape_hint, ndim=None):
    """X as a finite float32/float64 ndarray, else a TypeError/ValueError naming it."""
    if not isinstance(X, np.ndarray) or X.dtype not in (np.float32, np.float64):
        got = X.dtype if isinstance(X, np.ndarray) else type(X).__name__
        raise TypeError(f"{name} must be a float32 or float64 ndarray {shape_hint}, got {got}")
    if (ndim is not None and X.ndim != ndim) or X.ndim == 0:
        raise ValueError(f"{name} must have shape {shape_hint}, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError(f"{name} {shape_hint} must be finite, got NaN or inf")
    return X


def check_codebook(E, D, dtype):
    """E (K, D) with K >= 1, the units' D and dtype."""
    check_float(E, "E", "(K, D)", ndim=2)
    if E.shape[0] == 0 or E.shape[1] != D:
        raise ValueError(f"E must have shape (K >= 1, D = {D}), got {E.shape}")
    if E.dtype != dtype:
        raise TypeError(f"E must have the features' dtype {dtype}, got {E.dtype}")
    return E


def check_mask(M, shape, name="M", allow_empty=False):
    """Boolean mask of ``shape`` (None: all valid) with at least one valid unit."""
    if M is None:
        M = np.ones(shape, dtype=bool)
    if not isinstance(M, np.ndarray) or M.dtype != np.bool_:
        got = M.dtype if isinstance(M, np.ndarray) else type(M).__name__
        raise TypeError(f"{name} must be a bool ndarray of shape {shape}, got {got}")
    if M.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {M.shape}")
    if not allow_empty and not M.any():
        raise ValueError(f"{name} must mark at least one valid unit, got an all-False mask")
    return M


def check_indices(idx, shape, K, name="idx"):
    """Integer code indices of ``shape`` with values in [0, K)."""
    if not isinstance(idx, np.ndarray) or not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"{name} must be an integer ndarray of shape {shape}, got {type(idx).__name__}")
    if idx.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {idx.shape}")
    if idx.size and (idx.min() < 0 or idx.max() >= K):
        raise ValueError(f"{name} must hold codes in [0, K={K}), got [{idx.min()}, {idx.max()}]")
    return idx


def check_count(K, name):
    """A positive int (a size such as K or D)."""
    if isinstance(K, (bool, np.bool_)) or not isinstance(K, (int, np.integer)) or K < 1:
        raise ValueError(f"{name} must be a positive int, got {K!r}")
    return int(K)


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
        check_float(H_m, name, "(..., D)")
        if D is not None and H_m.shape[-1] != D:
            raise ValueError(f"{name} must have D = {D} features, got shape {H_m.shape}")
        rows.append(H_m[check_mask(M_m, H_m.shape[:-1], allow_empty=True)])
    X = np.concatenate(rows, axis=0)  # (N, D)
    if len(X) == 0:
        raise ValueError("M must mark at least one valid unit, got no valid unit in any modality")
    return X
