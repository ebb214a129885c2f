"""Symmetric InfoNCE with a margin on the positives: the MMS retrieval loss (METHOD.md MMS).

For a (B, B) similarity matrix S whose diagonal holds the matched pairs,
sample i of modality a should pick sample i of modality b among all B
(rows, a -> b), and sample j of b should pick j of a (columns, b -> a):

    L = 1/2 [ -(1/B) sum_i log softmax_j(Z_ij)|_{j=i} - (1/B) sum_j log softmax_i(Z_ij)|_{i=j} ],
    Z = S - delta I.

delta = 0 is the symmetric InfoNCE of CLIP; the same loss on S^code is
(CM-4), see :mod:`minivq.matching`. Every log-softmax is computed with
log-sum-exp. Derivation: notebooks/04_cross_modal_code_matching.ipynb.
"""
import numpy as np

from ._checks import check_cache, check_float, check_int, check_number

__all__ = ["log_softmax", "info_nce_forward", "info_nce_backward", "mms_loss"]


def log_softmax(Z, axis):
    """log softmax of Z along ``axis``, by log-sum-exp (finite for any finite Z).

    Parameters
    ----------
    Z : array_like, float32 or float64, at least 1-D, finite, non-empty along ``axis``
    axis : int
        An axis of Z (negative counts from the end).

    Returns
    -------
    ndarray, Z's shape: Z - max - log sum exp(Z - max).
    """
    Z = check_float(Z, "Z", "(..., n, ...)", min_ndim=1)
    axis = check_int(axis, "axis", -Z.ndim, Z.ndim - 1)
    if Z.shape[axis] == 0:
        raise ValueError(f"Z must have at least one entry along axis {axis}, got shape {Z.shape}")
    return _log_softmax(Z, axis)


def _log_softmax(Z, axis):
    """:func:`log_softmax` without the checks."""
    shifted = Z - Z.max(axis=axis, keepdims=True)  # the largest entry becomes 0
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def info_nce_forward(S, margin=0.0):
    """Symmetric InfoNCE over a batch of pairs, margin delta on the positives (MMS, CM-4).

    Parameters
    ----------
    S : ndarray, (B, B), float32 or float64
        S_ij = similarity of sample i of modality a and sample j of
        modality b; the diagonal holds the matched pairs.
    margin : float
        delta, subtracted from the diagonal before both softmaxes (default 0);
        max(S) - min(S) + |delta| must be finite in S's dtype.

    Returns
    -------
    loss : float
        The average of the a -> b (rows) and b -> a (columns) cross-entropies.
    cache : tuple
        For :func:`info_nce_backward`.

    Notes
    -----
    (MMS): with Z = S - delta I,
    L = 1/2 [-(1/B) sum_i log softmax_j(Z_ij)|_{j=i} - (1/B) sum_j log softmax_i(Z_ij)|_{i=j}].
    """
    check_float(S, "S", "(B, B)", ndim=2, coerce=False)
    B = S.shape[0]
    if S.shape != (B, B) or B == 0:
        raise ValueError(f"S must be a square (B, B) matrix with B >= 1, got shape {S.shape}")
    margin = check_number(margin, "margin")
    span = float(S.max()) - float(S.min()) + abs(margin)  # the largest |Z_ij - Z_kl|
    if span > float(np.finfo(S.dtype).max):
        raise ValueError(f"S and margin must span less than {np.finfo(S.dtype).max:.3g} ({S.dtype}), got "
                         f"max(S) - min(S) + |margin| = {span:.3g}; rescale S")
    return _info_nce_forward(S, margin)


def _info_nce_forward(S, margin=0.0):
    """:func:`info_nce_forward` without the checks."""
    B = S.shape[0]
    Z = S - margin * np.eye(B, dtype=S.dtype) if margin else S  # (B, B)
    logp_rows = _log_softmax(Z, axis=1)  # a -> b: each row i over the candidates j
    logp_cols = _log_softmax(Z, axis=0)  # b -> a: each column j over the candidates i
    loss_rows = -logp_rows.trace() / B
    loss_cols = -logp_cols.trace() / B
    loss = 0.5 * (float(loss_rows) + float(loss_cols))
    return loss, (np.exp(logp_rows), np.exp(logp_cols))


def info_nce_backward(dloss, cache):
    """Gradient of :func:`info_nce_forward` with respect to S.

    Parameters
    ----------
    dloss : float
        Upstream gradient of the scalar loss.
    cache : tuple
        From :func:`info_nce_forward`.

    Returns
    -------
    dS : ndarray, (B, B)
        dloss / (2B) [(softmax_rows(Z) - I) + (softmax_cols(Z) - I)].

    Notes
    -----
    d/dZ of -log softmax_j(Z_ij)|_{j=i} is softmax_j(Z_ij) - [i = j]; the
    margin is a constant shift, so dS = dZ.
    """
    p_rows, p_cols = check_cache(cache, ((np.ndarray, 2), (np.ndarray, 2)), "info_nce_forward")
    dloss = check_number(dloss, "dloss")
    if abs(dloss) / (2 * len(p_rows)) > float(np.finfo(p_rows.dtype).max):
        raise ValueError(f"dloss must keep dloss / (2B) within {p_rows.dtype}, got {dloss!r}")
    return _info_nce_backward(dloss, cache)


def _info_nce_backward(dloss, cache):
    """:func:`info_nce_backward` without the checks."""
    p_rows, p_cols = cache  # (B, B) each
    ### BEGIN SOLUTION info_nce_backward
    B = p_rows.shape[0]
    eye = np.eye(B, dtype=p_rows.dtype)
    dZ = (p_rows - eye) + (p_cols - eye)  # (B, B)
    return dZ * (float(dloss) / (2 * B))
    ### END SOLUTION


def mms_loss(S, margin=0.0):
    """Masked Margin Softmax loss and its gradient in one call (MMS).

    Parameters
    ----------
    S : ndarray, (B, B)
        Similarities; matched pairs on the diagonal.
    margin : float
        delta on the positives (0: symmetric InfoNCE).

    Returns
    -------
    loss : float
    dS : ndarray, (B, B)

    Notes
    -----
    :func:`info_nce_forward` then :func:`info_nce_backward` with dloss = 1.
    """
    loss, cache = info_nce_forward(S, margin)
    return loss, info_nce_backward(1.0, cache)
