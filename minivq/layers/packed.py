"""A stack of strided convolutions over packed sequences: the speech encoder's fast path (METHOD.md ENC).

A batch of spoken captions is mostly padding: the longest caption sets T and
the others are zeros after their end (on the demo's batches, half the rows).
Packing lays the B sequences end to end in ONE long sequence, each cut after
its last valid frame and followed by a gap of zeros, so the convolutions
compute on little more than the valid frames. The valid units come out
exactly as from :func:`minivq.layers.conv1d_forward` on the padded batch
(``tests/test_packed.py`` checks it), because:

- a unit reads the frames within ``k // 2`` of its window centre, and the
  centre of unit t is ``t * stride - padding + (k - 1) // 2`` in packed
  frames as in a sequence's own frames, shifted by the sequence's offset,
  when every offset is a multiple of the product of the strides;
- the gap after each sequence is at least the reach of the stack,
  ``sum_l (k_l // 2) * prod_{j < l} stride_j`` frames, so no valid unit reads a
  frame of a neighbour; the frames it reads there are zeros, as the padding
  of the batch would have been.

On one long sequence, a convolution needs no im2col copy either. Group the
k taps in blocks of ``stride`` consecutive taps; viewed as rows of ``stride``
frames, the padded input xv (T_out + n_q - 1, stride * C_in) is a free
reshape, and output t reads rows t, t + 1, ..., t + n_q - 1 of it:

    Y = sum_q xv[q : q + T_out] W_q + b,    W_q = W[q*s : (q+1)*s] (s C_in, C_out)

n_q = ceil(k / s) matrix products on views of the input (3 for the speech
encoder, k = 9, s = 3); the backward is the same sums transposed:
dW_q = xv[q : q + T_out]^T dY and dxv[q : q + T_out] += dY W_q^T.
"""
import numpy as np

__all__ = ["pack_layout", "pack", "unpack_index", "conv1d_long_forward", "conv1d_long_backward"]


def _tap_groups(W, stride):
    """W (k, C_in, C_out) as n_q blocks of ``stride`` taps: (n_q, stride * C_in, C_out)."""
    k, C_in, C_out = W.shape
    n_q = -(-k // stride)
    if n_q * stride != k:  # pad with zero taps up to a whole block
        W = np.concatenate([W, np.zeros((n_q * stride - k, C_in, C_out), W.dtype)])
    return W.reshape(n_q, stride * C_in, C_out)


def pack_layout(mask, kernels, strides):
    """Where each sequence starts in the packed sequence, for a stack of convolutions.

    Parameters
    ----------
    mask : ndarray of bool, (B, T)
        Valid input frames.
    kernels, strides : sequences of int
        k and stride of each convolution of the stack, in order.

    Returns
    -------
    offsets : ndarray of int64, (B,)
        First packed frame of each sequence; multiples of prod(strides).
    length : int
        Frames in the packed sequence (each sequence, its gap, rounded up).
    """
    offsets, length, _ = _pack_layout(mask, kernels, strides)
    return offsets, length


def _pack_layout(mask, kernels, strides):
    """:func:`pack_layout` and the extent (last valid frame + 1, 0 if none) of each sequence."""
    extent = _extents(mask)
    reach, scale = 0, 1
    for k, s in zip(kernels, strides):
        reach += (k // 2) * scale
        scale *= s
    seg = -(-(extent + reach) // scale) * scale  # (B,) whole multiples of the total stride
    offsets = np.zeros(len(seg), dtype=np.int64)
    np.cumsum(seg[:-1], out=offsets[1:])
    return offsets, int(seg.sum()), extent


def _extents(mask):
    """(B,) last valid frame + 1 of each sequence (0 for a sequence with no valid frame)."""
    T = mask.shape[1]
    last = T - np.argmax(mask[:, ::-1], axis=1)  # T - (index of the last True): T if none
    return np.where(mask[np.arange(len(mask)), last - 1], last, 0)


def pack(x, mask, offsets, length, padding, out):
    """Write the valid frames of x end to end into a zero buffer, for :func:`conv1d_long_forward`.

    Parameters
    ----------
    x : ndarray, (B, T, C)
        Cast to ``out``'s dtype as it is written (no copy of x first).
    mask : ndarray of bool, (B, T)
    offsets, length : from :func:`pack_layout`
    padding : int
        Zero frames before packed frame 0 (the first convolution's padding).
    out : ndarray, (rows, C), zeros
        The buffer, rows >= padding + length; out[padding + offsets[b] + t]
        receives x[b, t] for every valid (b, t).

    Returns
    -------
    packed_mask : ndarray of bool, (1, length)
        The valid packed frames.

    Notes
    -----
    One slice copy per sequence, frames 0 .. extent - 1 (its last valid
    frame); invalid frames inside that span (holes in the mask) are then set
    back to zero. :func:`_pack_reference` is the same by fancy indexing
    (``tests/test_packed.py`` checks them against each other).
    """
    return _pack(x, mask, offsets, _extents(mask), length, padding, out)


def _pack(x, mask, offsets, extent, length, padding, out):
    """:func:`pack` with the extents of :func:`_pack_layout`."""
    packed_mask = np.zeros((1, length), dtype=bool)
    valid, dest = packed_mask[0], out[padding:padding + length]
    for b, (o, n) in enumerate(zip(offsets.tolist(), extent.tolist())):
        dest[o:o + n] = x[b, :n]
        valid[o:o + n] = mask[b, :n]
    if int(np.count_nonzero(mask)) != int(extent.sum()):  # holes: invalid frames read as zeros
        dest[~valid] = 0
    return packed_mask


def _pack_reference(x, mask, offsets, length, padding, out):
    """:func:`pack` by fancy indexing: every valid frame to its packed row (the reference)."""
    T = x.shape[1]
    dest = offsets[:, None] + np.arange(T)  # (B, T) packed frame of each input frame
    out[padding + dest[mask]] = x[mask]
    packed_mask = np.zeros((1, length), dtype=bool)
    packed_mask[0, dest[mask]] = True
    return packed_mask


def unpack_index(offsets, total_stride, T_out):
    """(B, T_out) row of the packed output that holds unit t of sequence b."""
    return offsets[:, None] // total_stride + np.arange(T_out)


def conv1d_long_forward(xp, W, b, stride, T_out, out=None):
    """Convolution over one long, already padded sequence, by tap blocks (no im2col copy).

    Parameters
    ----------
    xp : ndarray, (L, C_in), C-contiguous
        The input with ``padding`` zero frames in front and at least
        ``(T_out + n_q - 1) * stride`` frames in all, n_q = ceil(k / stride).
    W : ndarray, (k, C_in, C_out)
    b : ndarray, (C_out,)
    stride, T_out : int
    out : ndarray, (T_out, C_out), C-contiguous, or None
        Where to write y (e.g. the rows of the next layer's padded input).

    Returns
    -------
    y : ndarray, (T_out, C_out)
        ``out`` when given.
    cache : tuple
        For :func:`conv1d_long_backward`.

    Notes
    -----
    (ENC) y[t] = sum_j xp[t * stride + j] W[j] + b, grouped as
    sum_q xv[t + q] W_q with xv = xp viewed as rows of ``stride`` frames.
    """
    k, C_in, C_out = W.shape
    Wq = _tap_groups(W, stride)  # (n_q, stride * C_in, C_out)
    n_q = Wq.shape[0]
    xv = xp[:(T_out + n_q - 1) * stride].reshape(T_out + n_q - 1, stride * C_in)  # a view
    y = np.matmul(xv[:T_out], Wq[0], out=out)
    if n_q > 1:
        tmp = np.empty_like(y)
        for q in range(1, n_q):
            y += np.matmul(xv[q:q + T_out], Wq[q], out=tmp)
    y += b
    return y, (xv, Wq, k, stride, T_out)


def conv1d_long_backward(dy, cache, need_dx=True):
    """Gradients of :func:`conv1d_long_forward`: (dxp, dW, db); dxp is None unless ``need_dx``.

    The first layer of an encoder has no use for the gradient of its input:
    ``need_dx=False`` skips that matrix product and its adds.

    Returns
    -------
    dxp : ndarray, (rows, C_in) or None
        Gradient for the first ``(T_out + n_q - 1) * stride`` frames of xp.
    dW : ndarray, (k, C_in, C_out)
    db : ndarray, (C_out,)
    """
    xv, Wq, k, stride, T_out = cache
    n_q, sC, C_out = Wq.shape
    dWq = np.empty_like(Wq)
    for q in range(n_q):
        np.matmul(xv[q:q + T_out].T, dy, out=dWq[q])  # dW_q = xv[q : q + T_out]^T dY
    dW = dWq.reshape(n_q * stride, sC // stride, C_out)[:k]
    db = dy.sum(axis=0)
    if not need_dx:
        return None, dW, db
    dxv = np.empty((T_out + n_q - 1, sC), dtype=dy.dtype)  # dxv[q : q + T_out] += dY W_q^T
    np.matmul(dy, Wq[0].T, out=dxv[:T_out])
    dxv[T_out:] = 0
    if n_q > 1:
        tmp = np.empty((T_out, sC), dtype=dy.dtype)
        for q in range(1, n_q):
            dxv[q:q + T_out] += np.matmul(dy, Wq[q].T, out=tmp)
    return dxv.reshape(-1, sC // stride), dW, db
