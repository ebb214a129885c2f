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
changes a gradient. Argument checks: :mod:`minivq.checks.quantizer`.
Derivations: notebooks/03_vector_quantization.ipynb.
"""
import numpy as np

from .checks import checked
from .checks import quantizer as checks
from .checks.arrays import per_modality
from .ema import EMAState, ema_init, ema_update, pooled_units, restart_dead_codes  # VQ-5, VQ-6, re-exported
from .nearest import nearest_code

__all__ = [
    "quantize_forward", "quantize_backward", "commitment_loss", "codebook_loss",
    "EMAState", "ema_init", "ema_update", "restart_dead_codes", "codebook_usage",
    "init_codebook_uniform", "init_codebook_kmeanspp",
]


# ------------------------------------------------------- VQ-2: STE quantizer
@checked(checks.quantize_forward)
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
        k*(h) = argmin_k ||h - e_k||^2 (:func:`minivq.nearest_code`).
    cache : tuple
        For :func:`quantize_backward`.

    Notes
    -----
    (VQ-2) forward q = e_{k*(h)}; the backward is the straight-through copy
    h + sg(q - h), so dL/dh = dL/dq.
    """
    idx = nearest_code(H.reshape(-1, H.shape[-1]), E)[0].reshape(H.shape[:-1])  # (...), VQ-1
    Q = np.take(E, idx, axis=0)  # (..., D), E[idx]
    return Q, idx, (H.shape, H.dtype)


@checked(checks.quantize_backward)
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
    ### BEGIN SOLUTION straight_through
    return dQ.copy()
    ### END SOLUTION


# ------------------------------------------- VQ-3, VQ-4: the two VQ losses
@checked(checks.commitment_loss)
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
    N, D = int(M.sum()), H.shape[-1]
    diff = (H - Q) * M[..., None]  # (..., D), zero on padding
    loss = beta * float(np.sum(diff * diff)) / (N * D)
    ### BEGIN SOLUTION vq_loss_gradients
    dH = (2.0 * beta / (N * D)) * diff
    ### END SOLUTION
    return loss, dH


@checked(checks.codebook_loss)
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
    X, k = H[M], idx[M]  # (N, D), (N,) the valid units and their codes
    N, D = X.shape
    diff = E[k] - X  # (N, D)
    loss = float(np.sum(diff * diff)) / (N * D)
    ### BEGIN SOLUTION vq_loss_gradients
    onehot = np.eye(len(E), dtype=E.dtype)[k]  # (N, K): C_uk = [idx_u = k]
    dE = (2.0 / (N * D)) * (onehot.T @ diff)  # C^T diff sums the rows of diff per code
    ### END SOLUTION
    return loss, dE


# --------------------------------------------------- VQ-7, VQ-8: usage, init
@checked(checks.codebook_usage)
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
    codes = np.concatenate([i.ravel() if m is None else i[m] for i, m in zip(*per_modality(idx, M))])  # (N,)
    counts = np.bincount(codes, minlength=K).astype(np.int64, copy=False)
    p = counts[counts > 0] / counts.sum()
    return dict(counts=counts, perplexity=float(np.exp(-(p * np.log(p)).sum())),
                fraction_used=np.count_nonzero(counts) / K)


@checked(checks.init_codebook_uniform)
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
    scale = 1.0 / K if scale is None else scale
    return rng.uniform(-scale, scale, size=(K, D)).astype(dtype)


@checked(checks.init_codebook_kmeanspp)
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
    X = pooled_units(H, M)  # (N, D)
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
