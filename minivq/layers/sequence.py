"""Layers that turn inputs into sequences of units and pool them back.

``patchify`` (images to patch rows), ``embedding_forward`` (token ids to
vectors) and ``masked_mean_forward`` (the masked mean pooling of METHOD.md
SUM-1 and CM-2). Tested in ``tests/test_layers.py``.
"""
import numpy as np

from ..checks import checked
from ..checks import layers as check

__all__ = [
    "patchify", "embedding_forward", "embedding_backward",
    "masked_mean_forward", "masked_mean_backward",
]


@checked(check.patchify)
def patchify(images, patch):
    """Cut images into non-overlapping square patches, one row per patch.

    Parameters
    ----------
    images : ndarray, (B, H, W), float32 or float64
        H and W positive multiples of ``patch``.
    patch : int >= 1
        Side of a patch in pixels.

    Returns
    -------
    patches : ndarray, (B, T, patch * patch), images' dtype
        T = (H // patch) * (W // patch); patch t = r * (W // patch) + c
        (row-major over the grid), each patch flattened row-major.
    mask : ndarray, (B, T), bool
        All True (every patch of an image is a valid unit).

    Notes
    -----
    (ENC) The image encoder's units; an affine layer on the rows is then the
    patch embedding. No parameters, so no backward.
    """
    B, H, W = images.shape
    rows, cols = H // patch, W // patch
    grid = images.reshape(B, rows, patch, cols, patch).transpose(0, 1, 3, 2, 4)  # (B, r, c, p, p)
    patches = grid.reshape(B, rows * cols, patch * patch)
    return patches, np.ones((B, rows * cols), dtype=bool)


@checked(check.embedding_forward)
def embedding_forward(ids, W):
    """Look up one row of W per token id.

    Parameters
    ----------
    ids : ndarray of int, (B, T) (any shape works), values in [0, V)
    W : ndarray, (V, D), float32 or float64

    Returns
    -------
    out : ndarray, ids.shape + (D,), W's dtype
    cache : tuple (ids, W.shape, W.dtype)

    Notes
    -----
    (ENC) out[b, t] = W[ids[b, t]], the product of a one-hot row with W.
    """
    return W[ids], (ids, W.shape, W.dtype)


@checked(check.embedding_backward)
def embedding_backward(dout, cache):
    """dW only (ids are not differentiable): dW[v] = sum of dout over units with id v.

    Notes
    -----
    A scatter-add (``np.add.at``): a row used twice receives both gradients.
    """
    ids, W_shape, dtype = cache
    V, D = W_shape
    dW = np.zeros(W_shape, dtype=dtype)
    np.add.at(dW, ids.reshape(ids.size), dout.reshape(ids.size, D))
    return dW


@checked(check.masked_mean_forward)
def masked_mean_forward(H, M):
    """Mean over the valid units of each sample.

    Parameters
    ----------
    H : ndarray, (B, T, D), float32 or float64
    M : ndarray, (B, T), bool
        True for valid units; every row needs at least one.

    Returns
    -------
    out : ndarray, (B, D), H's dtype
    cache : tuple (weights, D), weights (B, T) = M / sum_t M

    Notes
    -----
    (SUM-1, CM-2) pool(H_b) = sum_t M_bt h_bt / sum_t M_bt: a weighted sum with
    weights w_bt = M_bt / n_b, so padding never reaches the output or the
    gradient.
    """
    D = H.shape[2]
    counts = M.sum(axis=1)  # (B,)
    weights = M / counts[:, None].astype(H.dtype)  # (B, T), H's dtype
    out = np.matmul(weights[:, None, :], H)[:, 0]  # (B, D): sum_t w_bt h_bt, one (1, T) @ (T, D) per sample
    return out, (weights, D)


@checked(check.masked_mean_backward)
def masked_mean_backward(dout, cache):
    """dH[b, t] = w_bt dout[b] (zero at padded units)."""
    weights, D = cache
    ### BEGIN SOLUTION masked_mean_backward
    return weights[:, :, None] * dout[:, None, :]  # (B, T, D)
    ### END SOLUTION
