"""The EMA codebook (METHOD.md VQ-5) and the restart of dead codes (VQ-6).

The default way to train the ONE codebook shared by all modalities: no
gradient reaches E; instead every step moves each codeword toward the mean
of the units (of every modality) assigned to it,

    n_k <- g n_k + (1 - g) c_k,   m_k <- g m_k + (1 - g) s_k,   e_k = m_k / n~_k,

and a code whose count n_k falls below a threshold is moved onto a random
unit of the batch. :mod:`minivq.quantizer` re-exports every name here.
Argument checks: :mod:`minivq.checks.quantizer`. Derivations and plots:
notebooks/03_vector_quantization.ipynb.
"""
from dataclasses import dataclass

import numpy as np

from .checks import checked
from .checks import quantizer as checks
from .checks.arrays import per_modality

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


def pooled_units(H, M):
    """The valid units of every modality, one after the other: X (N, D). H, M: arrays or lists (one per modality)."""
    return np.concatenate([H_m.reshape(-1, H_m.shape[-1]) if M_m is None else H_m[M_m]
                           for H_m, M_m in zip(*per_modality(H, M))])


def _smoothed_counts(n, eps):
    """n~_k = (n_k + eps) / (sum_j n_j + K eps) * sum_j n_j (Laplace smoothing, VQ-5)."""
    total = n.sum()
    return (n + eps) / (total + len(n) * eps) * total


@checked(checks.ema_init)
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
    n_init = E.dtype.type(n_init)
    return EMAState(n=np.full(E.shape[0], n_init, dtype=E.dtype), m=E * n_init, E=E.copy())


@checked(checks.ema_update)
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
    K, D = state.E.shape
    ### BEGIN SOLUTION ema_update
    counts = np.zeros(K, dtype=state.n.dtype)  # c_k
    sums = np.zeros((K, D), dtype=state.m.dtype)  # s_k
    for H_m, idx_m, M_m in zip(*per_modality(H, idx, M)):
        valid = np.ones(H_m.shape[:-1], dtype=bool) if M_m is None else M_m
        k = idx_m[valid]  # (N_m,) the codes of the valid units
        counts += np.bincount(k, minlength=K)
        onehot = np.eye(K, dtype=sums.dtype)[k]  # (N_m, K): C_uk = [k_u = k]
        sums += onehot.T @ H_m[valid]  # C^T X: the sum of the units of each code
    n = decay * state.n + (1 - decay) * counts
    m = decay * state.m + (1 - decay) * sums
    E = m / _smoothed_counts(n, eps)[:, None]
    ### END SOLUTION
    ### BEGIN SOLUTION bug_ema_smoothed_count
    return EMAState(n=n, m=m, E=E.astype(state.E.dtype, copy=False))
    ### END SOLUTION


@checked(checks.restart_dead_codes)
def restart_dead_codes(state, H, M, threshold, rng):
    """Move every code with n_k < threshold onto a random unit of the batch (VQ-6).

    Parameters
    ----------
    state : EMAState
        After this step's :func:`ema_update`.
    H : ndarray (..., D), or a list (one per modality)
    M : ndarray of bool (...) or None, or a list
        At least one valid unit in all.
    threshold : float
        Codes whose raw EMA count n_k is below it are dead (> 0).
    rng : np.random.Generator or int

    Returns
    -------
    state : EMAState
        The same object when no code is dead; otherwise a new EMAState with
        new arrays where, for every restarted k, e_k = h, n_k = threshold and
        m_k = e_k * threshold, so the next EMA step keeps e_k near h.
    restarted : ndarray of int64
        The restarted codes (sorted).
    """
    X = pooled_units(H, M)  # (N, D) the valid units of every modality
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
