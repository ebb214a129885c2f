"""The EMA codebook (METHOD.md VQ-5) and the restart of dead codes (VQ-6).

The default way to train the ONE codebook shared by all modalities: no
gradient reaches E; instead every step moves each codeword toward the mean
of the units (of every modality) assigned to it,

    n_k <- g n_k + (1 - g) c_k,   m_k <- g m_k + (1 - g) s_k,   e_k = m_k / n~_k,

and a code whose count n_k falls below a threshold is moved onto a random
unit of the batch. :mod:`minivq.quantizer` re-exports every name here.
Derivations and plots: notebooks/03_vector_quantization.ipynb.
"""
from dataclasses import dataclass

import numpy as np

from ._checks import (check_float, check_indices, check_mask, check_number, check_rng, per_modality,
                      valid_units)
from .nearest import compiled_passes

# each code's rows summed by one compiled loop: the same bits as the NumPy passes
_fast = compiled_passes("_ema_fast")

__all__ = ["EMAState", "ema_init", "ema_update", "restart_dead_codes"]


@dataclass
class EMAState:
    """State of the EMA codebook (VQ-5).

    Attributes
    ----------
    n : ndarray, (K,)
        Raw EMA of the assignment counts (never the smoothed value).
    m : ndarray, (K, D)
        EMA of the per-code sums of assigned units.
    E : ndarray, (K, D)
        Codebook, e_k = m_k / n~_k.
    """

    n: np.ndarray
    m: np.ndarray
    E: np.ndarray


def _check_state(state):
    """An :class:`EMAState` (e.g. from :func:`ema_init`) of consistent, finite arrays, or raise."""
    if not isinstance(state, EMAState):
        raise TypeError(f"state must be an EMAState (see ema_init), got {type(state).__name__}")
    E = check_float(state.E, "state.E", "(K, D)", ndim=2, coerce=False)
    check_float(state.m, "state.m", "(K, D)", ndim=2, dtype=E.dtype, like="state.E", coerce=False)
    check_float(state.n, "state.n", "(K,)", ndim=1, dtype=E.dtype, like="state.E", coerce=False)
    if E.shape[0] == 0 or state.m.shape != E.shape or state.n.shape != E.shape[:1]:
        raise ValueError(f"state must hold n (K,), m (K, D) and E (K, D) with K >= 1, got {state.n.shape}, "
                         f"{state.m.shape}, {E.shape}")
    if state.n.min() <= 0:
        raise ValueError(f"state.n must hold counts > 0, got a minimum of {state.n.min()}")
    return state


def _smoothed_counts(n, eps):
    """n~_k = (n_k + eps) / (sum_j n_j + K eps) * sum_j n_j (Laplace smoothing, VQ-5)."""
    total = n.sum()
    return (n + eps) / (total + len(n) * eps) * total


def ema_init(E, *, n_init=1.0):
    """EMA state whose codebook is E (VQ-5).

    Parameters
    ----------
    E : ndarray, (K, D)
        Initial codebook (see :func:`init_codebook_uniform`).
    n_init : float, keyword-only
        Initial count of every code (> 0), **(choice)**: n = n_init,
        m = n_init E, so that E = m / n~ from the start and an unused code
        stays where it is instead of being divided by a near-zero count.

    Returns
    -------
    EMAState
        Fresh copies; E is not shared with the caller.
    """
    check_float(E, "E", "(K, D)", ndim=2, coerce=False)
    if E.shape[0] == 0:
        raise ValueError(f"E must hold at least one code (K >= 1), got shape {E.shape}")
    n_init = check_number(n_init, "n_init", 0, low_open=True)
    with np.errstate(over="ignore"):
        if not (np.isfinite(E.dtype.type(n_init)) and np.isfinite(np.abs(E).max(initial=0) * E.dtype.type(n_init))):
            raise ValueError(f"n_init must keep m = n_init E finite in {E.dtype}, got {n_init!r} "
                             f"(max |E| {np.abs(E).max(initial=0):.3g})")
    n = np.full(E.shape[0], n_init, dtype=E.dtype)
    return EMAState(n=n, m=E * E.dtype.type(n_init), E=E.copy())


def ema_update(state, H, idx, M, decay=0.99, eps=1e-5):
    """One EMA step of the shared codebook (VQ-5); returns a new state.

    Parameters
    ----------
    state : EMAState
    H : ndarray (..., D) of state.E's dtype, or a list of them (one per modality)
    idx : ndarray of int (...), or a list (codes from the codebook BEFORE this step)
    M : ndarray of bool (...) or None, or a list
    decay : float
        g in (0, 1), default 0.99.
    eps : float
        Laplace smoothing of the counts, default 1e-5, in [0, 1e30].

    Returns
    -------
    EMAState
        n <- g n + (1-g) c, m <- g m + (1-g) s, E = m / n~ (new arrays).

    Notes
    -----
    (VQ-5): c_k and s_k count and sum the valid units of ALL modalities
    assigned to k. The stored n is the raw EMA; n~ (:func:`_smoothed_counts`)
    is used only to divide. This step's Q was made with the old codebook.
    """
    K, D = _check_state(state).E.shape
    decay = check_number(decay, "decay", 0, 1, low_open=True, high_open=True)
    eps = check_number(eps, "eps", 0, 1e30)
    for H_m, idx_m, M_m in zip(*per_modality(H, idx, M, names=("H", "idx", "M"))):
        check_float(H_m, "H", "(..., D)", min_ndim=1, dtype=state.E.dtype, like="state.E", coerce=False)
        if H_m.shape[-1] != D:
            raise ValueError(f"H must have D = {D} features (state.E is {state.E.shape}), got shape {H_m.shape}")
        check_indices(idx_m, H_m.shape[:-1], K)
        check_mask(M_m, H_m.shape[:-1], "H.shape[:-1]", coerce=False, none_is_all=True)
    return _ema_update(state, H, idx, M, decay, eps)


def _add_rows_by_code(sums, k, X):
    """sums[k_i] += X[i] for every row i: each code's rows summed by one ``np.add.reduceat`` (10-20x faster
    than ``np.add.at``; equal to it up to rounding, since reduceat adds a long segment pairwise).

    With int64 codes and X of sums' dtype, the compiled
    :func:`minivq._ema_fast.add_rows_by_code` does the same additions in one
    loop: the same bits (``tests/test_compiled_step.py``)."""
    if len(k) == 0:
        return
    if _fast is not None and X.dtype == sums.dtype and k.dtype == np.int64 and sums.flags.c_contiguous:
        _fast.add_rows_by_code(sums, np.ascontiguousarray(k), np.ascontiguousarray(X))  # :mod:`minivq._ema_fast`
        return
    K = len(sums)
    small = np.uint8 if K <= 1 << 8 else np.uint16 if K <= 1 << 16 else k.dtype  # codes as small ints: radix sort
    order = np.argsort(k.astype(small, copy=False), kind="stable")  # rows grouped by code, in their order
    n = np.bincount(k, minlength=K)  # rows per code
    present = np.flatnonzero(n)
    starts = (np.cumsum(n) - n)[present]  # first sorted row of each code present
    rows = np.take(X, order, axis=0).astype(sums.dtype, copy=False)  # X[order]
    sums[present] += np.add.reduceat(rows, starts, axis=0)


def _ema_update(state, H, idx, M, decay=0.99, eps=1e-5):
    """:func:`ema_update` without the checks."""
    K, D = state.E.shape
    ### BEGIN SOLUTION ema_update
    counts = np.zeros(K, dtype=state.n.dtype)
    sums = np.zeros((K, D), dtype=state.m.dtype)
    for H_m, idx_m, M_m in zip(*per_modality(H, idx, M)):
        valid = np.ones(H_m.shape[:-1], dtype=bool) if M_m is None else M_m
        k = idx_m[valid]  # (N_m,)
        counts += np.bincount(k, minlength=K)
        _add_rows_by_code(sums, k, H_m[valid])
    n = decay * state.n + (1 - decay) * counts
    m = decay * state.m + (1 - decay) * sums
    E = m / _smoothed_counts(n, eps)[:, None]
    ### END SOLUTION
    ### BEGIN SOLUTION bug_ema_smoothed_count
    return EMAState(n=n, m=m, E=E.astype(state.E.dtype, copy=False))
    ### END SOLUTION


def restart_dead_codes(state, H, M, threshold, rng):
    """Move every code with n_k < threshold onto a random unit of the batch (VQ-6).

    Parameters
    ----------
    state : EMAState
        After this step's :func:`ema_update`.
    H : ndarray (..., D), or a list (one per modality)
    M : ndarray of bool (...) or None, or a list
    threshold : float
        Codes whose raw EMA count n_k is below it are dead (> 0).
    rng : np.random.Generator or int

    Returns
    -------
    state : EMAState
        New arrays; for every restarted k: e_k = h, n_k = threshold,
        m_k = e_k * threshold, so the next EMA step keeps e_k near h.
    restarted : ndarray of int64
        The restarted codes (sorted).
    """
    _check_state(state)
    threshold = check_number(threshold, "threshold", 0, float(np.finfo(state.E.dtype).max), low_open=True)
    X = valid_units(H, M, D=state.E.shape[1], dtype=state.E.dtype, like="state.E")  # (N, D)
    with np.errstate(over="ignore"):
        if not np.isfinite(np.abs(X).max() * state.E.dtype.type(threshold)):
            raise ValueError(f"threshold must keep m = e threshold finite in {state.E.dtype}, got {threshold!r} "
                             f"(max |H| {np.abs(X).max():.3g})")
    return _restart_dead_codes(state, X, threshold, check_rng(rng))


def _restart_dead_codes(state, X, threshold, rng):
    """:func:`restart_dead_codes` on the pooled valid units X (N, D), without the checks."""
    ### BEGIN SOLUTION restart_dead_codes
    dead = np.flatnonzero(state.n < threshold)
    if dead.size == 0:
        return state, dead
    rows = rng.choice(len(X), size=dead.size, replace=dead.size > len(X))
    E, n, m = state.E.copy(), state.n.copy(), state.m.copy()
    E[dead] = X[rows]
    ### END SOLUTION
    ### BEGIN SOLUTION bug_restart_keeps_ema_state
    n[dead] = threshold
    m[dead] = E[dead] * threshold
    ### END SOLUTION
    return EMAState(n=n, m=m, E=E), dead
