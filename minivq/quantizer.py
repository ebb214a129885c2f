"""Vector quantization against one codebook shared by every modality (METHOD.md VQ-2..8).

The assignment itself (VQ-1) is :func:`minivq.nearest_code`. Here:

- :func:`quantize_forward` / :func:`quantize_backward`: q = e_{k*(h)} and the
  straight-through estimator (VQ-2);
- :func:`commitment_loss` (VQ-3, gradient to H, times beta) and
  :func:`codebook_loss` (VQ-4, gradient to E, never times beta);
- :func:`ema_init`, :func:`ema_update` (VQ-5) and :func:`restart_dead_codes`
  (VQ-6): the default, gradient-free codebook update, defined in
  :mod:`minivq.ema` and re-exported here;
- :func:`codebook_usage` (VQ-7); :func:`init_codebook_uniform` and
  :func:`init_codebook_kmeanspp` (VQ-8).

Units are rows h of H (..., D); a boolean mask M (...) marks the valid ones
(None: all valid). Losses are means over valid units and D, so padding never
changes a gradient. Derivations: notebooks/03_vector_quantization.ipynb.
"""
import numpy as np

from ._checks import (MAX_SIZE, check_cache, check_codebook, check_count, check_float, check_float_dtype,
                      check_indices, check_mask, check_number, check_rng, check_shape, per_modality, valid_units)
from .ema import EMAState, ema_init, ema_update, restart_dead_codes  # VQ-5, VQ-6, re-exported
from .nearest import _search, nearest_code

__all__ = [
    "quantize_forward", "quantize_backward", "commitment_loss", "codebook_loss",
    "EMAState", "ema_init", "ema_update", "restart_dead_codes", "codebook_usage",
    "init_codebook_uniform", "init_codebook_kmeanspp",
]


# ------------------------------------------------------- VQ-2: STE quantizer
def quantize_forward(H, E):
    """Quantize every unit to its nearest codeword (VQ-1, VQ-2).

    Parameters
    ----------
    H : ndarray, (..., D), float32 or float64
        Features, e.g. (B, T, D). Padded units are quantized too (harmless).
    E : ndarray, (K, D), H's dtype
        Codebook.

    Returns
    -------
    Q : ndarray, (..., D)
        q = e_{k*(h)}, i.e. ``E[idx]``.
    idx : ndarray, (...), int64
        k*(h) = argmin_k ||h - e_k||^2, ties to the lowest index.
    cache : tuple
        For :func:`quantize_backward`.

    Notes
    -----
    (VQ-2) forward q = e_{k*(h)}; the backward is the straight-through copy
    h + sg(q - h), so dL/dh = dL/dq. The search is :func:`minivq.nearest_code`.
    """
    check_float(H, "H", "(..., D)", min_ndim=1, coerce=False)
    check_codebook(E, H.shape[-1], H.dtype, units="H")
    idx, _ = _search(H.reshape(-1, H.shape[-1]), E, None, ("H", "E"))  # errors name H, not X
    return _quantize_output(H, E, idx)


def _quantize_forward(H, E):
    """:func:`quantize_forward` without the checks.

    Units with no nearest code (NaN, inf, or a squared norm that overflows:
    the features of a diverged model) get code 0, so the loss they feed is
    NaN or inf, not an exception in the middle of a training step.
    """
    D = H.shape[-1]
    X = H.reshape(-1, D)  # (N, D)
    try:
        idx, _ = nearest_code(X, E)
    except ValueError:  # only non-finite (or overflowing) units or codes can fail here
        idx = np.zeros(len(X), dtype=np.int64)
    return _quantize_output(H, E, idx)


def _quantize_output(H, E, idx):
    """Q = E[idx], idx in H's unit shape, and the cache."""
    idx = idx.reshape(H.shape[:-1])
    Q = np.take(E, idx, axis=0)  # (..., D), E[idx] (np.take: the same rows, 3x faster than fancy indexing)
    return Q, idx, (H.shape, H.dtype)


def quantize_backward(dQ, cache):
    """Straight-through estimator (VQ-2): dH = dQ.

    Parameters
    ----------
    dQ : ndarray, (..., D)
        Upstream gradient with respect to Q.
    cache : tuple
        From :func:`quantize_forward`.

    Returns
    -------
    dH : ndarray, (..., D)
        A copy of dQ (no gradient reaches E through the argmin).
    """
    shape, dtype = check_cache(cache, (tuple, np.dtype), "quantize_forward")
    dQ = check_float(dQ, "dQ", "(..., D), H's shape", dtype=dtype, like="H")
    check_shape(dQ, "dQ", shape, "H.shape")
    return _quantize_backward(dQ, cache)


def _quantize_backward(dQ, cache):
    """:func:`quantize_backward` without the checks."""
    ### BEGIN SOLUTION straight_through
    return dQ.copy()
    ### END SOLUTION


# ------------------------------------------- VQ-3, VQ-4: the two VQ losses
def commitment_loss(H, Q, M, beta=0.25):
    """Commitment loss L = beta/(N D) sum_valid ||h - sg(q)||^2 (VQ-3).

    Parameters
    ----------
    H, Q : ndarray, (..., D), same shape and dtype
        Features and their quantized values (Q is a constant: stop-gradient).
    M : ndarray of bool, (...), or None
        Valid units; N = M.sum() >= 1.
    beta : float
        Weight of this loss, default 0.25. It multiplies (VQ-3) only.

    Returns
    -------
    loss : float
    dH : ndarray, (..., D)
        2 beta/(N D) M (h - q); zero on padded units.
    """
    check_float(H, "H", "(..., D)", min_ndim=1, coerce=False)
    check_float(Q, "Q", "(..., D)", min_ndim=1, dtype=H.dtype, like="H", coerce=False)
    if Q.shape != H.shape:
        raise ValueError(f"Q must have the shape of H {H.shape}, got {Q.shape}")
    M = check_mask(M, H.shape[:-1], "H.shape[:-1]", coerce=False, none_is_all=True, allow_empty=False)
    if H.shape[-1] == 0:
        raise ValueError(f"H must have at least one feature (D >= 1), got shape {H.shape}")
    beta = check_number(beta, "beta", 0)
    if 2 * beta / (M.sum() * H.shape[-1]) > float(np.finfo(H.dtype).max):
        raise ValueError(f"beta must keep 2 beta / (N D) within {H.dtype}, got {beta!r}")
    with np.errstate(over="ignore", invalid="ignore"):
        loss, dH = _commitment_loss(H, Q, M, beta)
    if not np.isfinite(loss):  # the sum of squares overflowed H's dtype: add up in float64
        diff = (H - Q)[M].astype(np.float64)
        loss = beta * float(np.sum(diff * diff)) / (int(M.sum()) * H.shape[-1])
    return loss, dH


def _commitment_loss(H, Q, M, beta=0.25):
    """:func:`commitment_loss` without the checks; M a bool mask with a True."""
    N, D = int(M.sum()), H.shape[-1]
    diff = H - Q  # (..., D)
    if N < M.size:  # zero on padding (by a mask in H's dtype: a bool mask would be cast on every pass, 2x slower)
        diff *= M[..., None].astype(H.dtype)
    flat = diff.reshape(-1)
    loss = beta * float(np.einsum("i,i->", flat, flat)) / (N * D)  # sum of squares, without a temporary
    ### BEGIN SOLUTION vq_loss_gradients
    dH = (2.0 * beta / (N * D)) * diff
    ### END SOLUTION
    return loss, dH.astype(H.dtype, copy=False)


def codebook_loss(H, idx, M, E):
    """Codebook loss L = 1/(N D) sum_valid ||sg(h) - e_idx||^2 (VQ-4).

    Parameters
    ----------
    H : ndarray, (..., D)
        Features (a constant here: stop-gradient).
    idx : ndarray of int, (...)
        Assigned codes, from :func:`quantize_forward`.
    M : ndarray of bool, (...), or None
        Valid units; N = M.sum() >= 1.
    E : ndarray, (K, D)
        Codebook.

    Returns
    -------
    loss : float
    dE : ndarray, (K, D)
        dE_k = 2/(N D) sum_{valid u: idx_u = k} (e_k - h_u).

    Notes
    -----
    No beta here: beta weights (VQ-3). Used when the codebook is trained by
    gradient instead of the EMA of (VQ-5).
    """
    check_float(H, "H", "(..., D)", min_ndim=1, coerce=False)
    K, D = check_codebook(E, H.shape[-1], H.dtype, units="H").shape
    check_indices(idx, H.shape[:-1], K)
    M = check_mask(M, H.shape[:-1], "H.shape[:-1]", coerce=False, none_is_all=True, allow_empty=False)
    with np.errstate(over="ignore"):
        loss, dE = _codebook_loss(H, idx, M, E)
        if not np.isfinite(dE).all():  # a code's sum of differences overflowed before the 2 / (N D)
            loss, dE = _codebook_loss(H, idx, M, E, prescale=True)
    return loss, dE


def _codebook_loss(H, idx, M, E, prescale=False):
    """:func:`codebook_loss` without the checks; M a bool mask with a True.

    ``prescale``: multiply by 2 / (N D) before summing per code (no overflow of
    the sum when the differences are near the dtype's limit).
    """
    D = E.shape[1]
    X, k = H[M], idx[M]  # (N, D), (N,)
    N = len(k)
    diff = E[k] - X  # (N, D)
    loss = float(np.sum(diff * diff)) / (N * D)
    ### BEGIN SOLUTION vq_loss_gradients
    dE = np.zeros_like(E)
    if prescale:
        np.add.at(dE, k, diff * E.dtype.type(2.0 / (N * D)))
        return loss, dE
    np.add.at(dE, k, diff)  # sum the rows of diff per code
    return loss, dE * (2.0 / (N * D))
    ### END SOLUTION


# --------------------------------------------------- VQ-7, VQ-8: usage, init
def codebook_usage(idx, M, K):
    """Assignment histogram, perplexity and fraction of codes used (VQ-7).

    Parameters
    ----------
    idx : ndarray of int (...), or a list (pooled over modalities)
    M : ndarray of bool (...) or None, or a list
    K : int
        Codebook size.

    Returns
    -------
    dict
        counts (K,) int64; perplexity exp(-sum_k p_k log p_k) with p = counts / N
        (1 = one code, K = uniform); fraction_used = #{k: counts_k > 0} / K.
    """
    K = check_count(K, "K")
    codes = []
    for idx_m, M_m in zip(*per_modality(idx, M, names=("idx", "M"))):
        check_indices(idx_m, getattr(idx_m, "shape", ()), K)
        codes.append(idx_m[check_mask(M_m, idx_m.shape, "idx.shape", coerce=False, none_is_all=True)])
    codes = np.concatenate(codes)
    if codes.size == 0:
        raise ValueError("M must mark at least one valid unit, got none")
    return _codebook_usage(codes, K)


def _codebook_usage(codes, K):
    """:func:`codebook_usage` of the valid units' codes (N,), N >= 1, without the checks."""
    counts = np.bincount(codes, minlength=K).astype(np.int64, copy=False)
    p = counts[counts > 0] / counts.sum()
    return dict(counts=counts, perplexity=float(np.exp(-(p * np.log(p)).sum())),
                fraction_used=np.count_nonzero(counts) / K)


def init_codebook_uniform(K, D, rng, scale=None, dtype=np.float64):
    """Codebook drawn from U(-scale, scale), scale = 1/K by default (VQ-8).

    Parameters
    ----------
    K, D : int
        Codebook size and code dimension.
    rng : np.random.Generator or int
    scale : float in (0, max/2] of the dtype, or None
        Half-width of the interval; None: 1/K (small values).
    dtype : np.float32 or np.float64

    Returns
    -------
    E : ndarray, (K, D), ``dtype``
    """
    K, D = check_count(K, "K"), check_count(D, "D")
    if K * D > MAX_SIZE:
        raise ValueError(f"K and D must make a codebook of at most {MAX_SIZE} entries, got K * D = {K * D}")
    dtype = check_float_dtype(dtype)
    largest = float(np.finfo(dtype).max) / 2  # the width 2 scale must stay finite
    scale = 1.0 / K if scale is None else check_number(scale, "scale", 0, largest, low_open=True)
    rng = check_rng(rng)
    return rng.uniform(-scale, scale, size=(K, D)).astype(dtype)


def init_codebook_kmeanspp(H, M, K, rng):
    """k-means++ seeding of the codebook from the valid units of a batch (VQ-8).

    Parameters
    ----------
    H : ndarray (..., D), or a list (units pooled over modalities)
    M : ndarray of bool (...) or None, or a list
    K : int, at most 65536 (one pass over the units per code)
    rng : np.random.Generator or int

    Returns
    -------
    E : ndarray, (K, D), H's dtype

    Notes
    -----
    The first code is a uniformly drawn unit; each next one a unit drawn
    with probability proportional to its squared distance to the nearest
    code chosen so far (uniformly once every unit is a code).
    """
    K = check_count(K, "K", 1 << 16)
    X = valid_units(H, M)  # (N, D)
    if X.shape[1] == 0:
        raise ValueError("H must have at least one feature (D >= 1), got D = 0")
    rng = check_rng(rng)
    E = np.empty((K, X.shape[1]), dtype=X.dtype)
    E[0] = X[rng.integers(len(X))]
    d2 = np.sum((X - E[0]) ** 2, axis=1)  # (N,) squared distance to nearest code
    for k in range(1, K):
        total = d2.sum()
        if total > 0:
            j = np.searchsorted(np.cumsum(d2), rng.random() * total, side="right")
        else:
            j = rng.integers(len(X))
        E[k] = X[min(j, len(X) - 1)]
        d2 = np.minimum(d2, np.sum((X - E[k]) ** 2, axis=1))
    return E
