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

from ..nearest import _BlasOneThread, compiled_passes

# the packed convolutions' pack, GEMM accumulation, bias-ReLU and bias gradients: the same bits as NumPy's
_fast = compiled_passes("_packed_fast")

#: Longest inner dimension for which :func:`_matmul_add` lets BLAS add the product to ``out``: up to
#: there, OpenBLAS sums each product over k in one block, then adds it to ``out``, which is what the
#: NumPy product and add do. Beyond it, BLAS would add partial sums to ``out`` block by block (other
#: bits), so the NumPy passes run (OpenBLAS's blocks on x86-64 hold 256 doubles or 320 floats).
GEMM_ADD_MAX_K = 256

__all__ = ["pack_layout", "pack", "pack_zeroes_gaps", "unpack_index", "bias_relu", "conv1d_long_forward",
           "conv1d_long_backward"]


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


def pack_zeroes_gaps(x, mask, dtype):
    """True when :func:`pack` of x into a C-contiguous buffer of ``dtype`` zeroes the gaps between sequences itself.

    It does when it runs compiled (:func:`minivq._packed_fast.pack_frames`:
    x of that dtype, frames contiguous); then only the rows outside
    ``padding : padding + length`` of the buffer need to be zeros beforehand.
    """
    return (_fast is not None and x.dtype == dtype and x.ndim == 3 and x.strides[2] == x.itemsize
            and x.dtype in (np.float32, np.float64) and mask.dtype == bool)


def _pack(x, mask, offsets, extent, length, padding, out):
    """:func:`pack` with the extents of :func:`_pack_layout`."""
    if pack_zeroes_gaps(x, mask, out.dtype) and out.flags.c_contiguous:
        packed_mask = np.empty((1, length), dtype=bool)
        _fast.pack_frames(x, mask.view(np.uint8), offsets.astype(np.int64, copy=False),
                          extent.astype(np.int64, copy=False), padding, out, packed_mask[0].view(np.uint8))
        return packed_mask
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


_AGREES = None  # whether SciPy's GEMM adds a product as NumPy's product and add do, on this machine


def _gemm_add_agrees():
    """Once per process (at one BLAS thread): :func:`minivq._packed_fast.gemm_add` against ``out += a @ b``.

    The two BLAS libraries (SciPy's and NumPy's) are both OpenBLAS in the
    wheels, with the same kernels for a CPU; a build where they are not (or
    where one splits k into smaller blocks) fails this probe, and
    :func:`_matmul_add` keeps NumPy's passes there (``tests/test_compiled_step.py``
    checks more shapes, those of the training step among them).
    """
    global _AGREES
    if _AGREES is None:
        rng = np.random.default_rng(0)
        agrees = True
        for dtype in (np.float32, np.float64):
            for m, k, n in ((37, GEMM_ADD_MAX_K, 19), (130, 120, 64), (2, 1, 2), (64, 33, 5)):
                a, b = rng.normal(size=(m, k)).astype(dtype), rng.normal(size=(k, n)).astype(dtype)
                c = rng.normal(size=(m, n)).astype(dtype)
                for b_ in (b, np.asfortranarray(b)):  # rows contiguous; columns, as the backward's W_q^T
                    out, expected = c.copy(), c.copy()
                    _fast.gemm_add(a, b_, out)
                    expected += a @ b_
                    agrees &= np.array_equal(out, expected)
        _AGREES = bool(agrees)
    return _AGREES


def _matmul_add(a, b, out):
    """out += a @ b; out C-contiguous, a and b with contiguous rows or columns.

    One GEMM with beta = 1 (:mod:`minivq._packed_fast`, SciPy's BLAS) when it is
    compiled, ``a.shape[1] <= GEMM_ADD_MAX_K``, out has two rows and two
    columns at least (NumPy multiplies by a vector with GEMV, another
    kernel) and BLAS runs on one thread (as in training), else NumPy's
    product and an add: the same bits either way
    (``tests/test_compiled_step.py``). With more threads NumPy's BLAS
    does it all: two BLAS libraries' thread pools, each waiting for work on
    the same cores, made a 2-thread step six times slower.
    """
    m, n = out.shape
    if (_fast is not None and a.shape[1] <= GEMM_ADD_MAX_K and m > 1 and n > 1
            and out.dtype in (np.float32, np.float64) and _BlasOneThread.holds() and _gemm_add_agrees()):
        _fast.gemm_add(a, b, out)
    else:
        out += a @ b


def bias_relu(h, b, rows):
    """h <- max(h + b, 0) on the rows marked in ``rows``, 0 on the others, in place; returns the mask (ENC).

    Parameters
    ----------
    h : ndarray, (T, C), C-contiguous
    b : ndarray, (C,)
    rows : ndarray of bool, (T,)

    Returns
    -------
    keep : ndarray, (T, C), h's dtype
        1 where the ReLU passes on a marked row, 0 elsewhere; the backward
        multiplies by it. As ``h += b; keep = (h > 0) & rows[:, None]; h *= keep``,
        in one compiled pass when built (:func:`minivq._packed_fast.bias_relu_rows`,
        the same bits: a negative entry becomes -0.0, NaN stays NaN).
    """
    keep = np.empty_like(h)
    if (_fast is not None and h.dtype in (np.float32, np.float64) and b.dtype == h.dtype and h.flags.c_contiguous
            and rows.dtype == bool):
        _fast.bias_relu_rows(h, np.ascontiguousarray(b), np.ascontiguousarray(rows).view(np.uint8), keep)
        return keep
    h += b
    passes = h > 0
    passes[~rows] = False
    np.multiply(h, passes, out=h)
    keep[...] = passes
    return keep


def _column_sums(d):
    """``d.sum(axis=0)`` of a 2-D array: compiled (the same bits) for two columns or more, C-contiguous."""
    if (_fast is not None and d.ndim == 2 and d.shape[1] >= 2 and d.flags.c_contiguous
            and d.dtype in (np.float32, np.float64)):
        out = np.empty(d.shape[1], dtype=d.dtype)
        _fast.column_sums(d, out)
        return out
    return d.sum(axis=0)


def conv1d_long_forward(xp, W, b, stride, T_out, out=None):
    """Convolution over one long, already padded sequence, by tap blocks (no im2col copy).

    Parameters
    ----------
    xp : ndarray, (L, C_in), C-contiguous
        The input with ``padding`` zero frames in front and at least
        ``(T_out + n_q - 1) * stride`` frames in all, n_q = ceil(k / stride).
    W : ndarray, (k, C_in, C_out)
    b : ndarray, (C_out,), or None: no bias (the caller adds it, e.g. with the ReLU, :func:`bias_relu`)
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
    for q in range(1, n_q):
        _matmul_add(xv[q:q + T_out], Wq[q], y)
    if b is not None:
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
    db = _column_sums(dy)
    if not need_dx:
        return None, dW, db
    dxv = np.empty((T_out + n_q - 1, sC), dtype=dy.dtype)  # dxv[q : q + T_out] += dY W_q^T
    np.matmul(dy, Wq[0].T, out=dxv[:T_out])
    dxv[T_out:] = 0
    for q in range(1, n_q):
        _matmul_add(dy, Wq[q].T, dxv[q:q + T_out])
    return dxv.reshape(-1, sC // stride), dW, db
