"""Symmetric InfoNCE with a margin on the positives: the MMS retrieval loss (METHOD.md MMS).

For a (B, B) similarity matrix S whose diagonal holds the matched pairs,
sample i of modality a should pick sample i of modality b among all B
(rows, a -> b), and sample j of b should pick j of a (columns, b -> a):

    L = 1/2 [ -(1/B) sum_i log softmax_j(Z_ij)|_{j=i} - (1/B) sum_j log softmax_i(Z_ij)|_{i=j} ],
    Z = S - delta I.

delta = 0 is the symmetric InfoNCE of CLIP; the same loss on S^code is
(CM-4), see :mod:`minivq.matching`. Every log-softmax is computed with
log-sum-exp. Argument checks: :mod:`minivq.checks.losses`. Derivation:
notebooks/04_cross_modal_code_matching.ipynb.
"""
import numpy as np

from .checks import checked
from .checks import losses as checks

__all__ = ["log_softmax", "info_nce_forward", "info_nce_backward", "mms_loss"]


@checked(checks.log_softmax)
def log_softmax(Z, axis):
    """log softmax of Z along ``axis``, by log-sum-exp (finite for any finite Z).

    Parameters
    ----------
    Z : array_like, float32 or float64, at least 1-D, non-empty along ``axis``
    axis : int

    Returns
    -------
    ndarray, Z's shape: Z - max - log sum exp(Z - max).
    """
    shifted = Z - Z.max(axis=axis, keepdims=True)  # the largest entry becomes 0
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


@checked(checks.info_nce_forward)
def info_nce_forward(S, margin=0.0):
    """Symmetric InfoNCE over a batch of pairs, margin delta on the positives (MMS, CM-4).

    Parameters
    ----------
    S : ndarray, (B, B), float32 or float64
        S_ij = similarity of sample i of modality a and sample j of
        modality b; the diagonal holds the matched pairs.
    margin : float
        delta, subtracted from the diagonal (default 0); max(S) - min(S) +
        |delta| must be finite in S's dtype.

    Returns
    -------
    loss : float
        The mean of the a -> b (rows) and b -> a (columns) cross-entropies.
    cache : tuple
        For :func:`info_nce_backward`.

    Notes
    -----
    (MMS) with Z = S - delta I,
    L = 1/2 [-(1/B) sum_i log softmax_j(Z_ij)|_{j=i} - (1/B) sum_j log softmax_i(Z_ij)|_{i=j}].
    """
    B = S.shape[0]
    Z = S - margin * np.eye(B, dtype=S.dtype)  # (B, B)
    logp_rows = log_softmax(Z, axis=1)  # a -> b: each row i over the candidates j
    logp_cols = log_softmax(Z, axis=0)  # b -> a: each column j over the candidates i
    loss = 0.5 * (-float(logp_rows.trace()) / B - float(logp_cols.trace()) / B)  # each direction's mean, averaged
    return loss, (np.exp(logp_rows), np.exp(logp_cols))


@checked(checks.info_nce_backward)
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
    p_rows, p_cols = cache  # (B, B) each
    ### BEGIN SOLUTION info_nce_backward
    B = p_rows.shape[0]
    eye = np.eye(B, dtype=p_rows.dtype)
    dZ = (p_rows - eye) + (p_cols - eye)  # (B, B)
    return dZ * (float(dloss) / (2 * B))
    ### END SOLUTION


@checked(checks.mms_loss)
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
        :func:`info_nce_backward` with dloss = 1.
    """
    loss, cache = info_nce_forward(S, margin)
    return loss, info_nce_backward(1.0, cache)
