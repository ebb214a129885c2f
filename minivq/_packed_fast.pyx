# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""Compiled passes of the packed speech convolutions (:mod:`minivq.layers.packed`), for training.

Passes that NumPy does in many calls or with a temporary, done here with
the same results to the bit (``tests/test_compiled_step.py`` checks them
against the NumPy passes):

- :func:`gemm_add`: ``out += a @ b`` in one BLAS call (GEMM with beta = 1).
  :func:`minivq.layers.packed.conv1d_long_forward` sums n_q matrix products,
  ``y = xv[0:T] W_0 + xv[1:T+1] W_1 + ...``; in NumPy each product after
  the first lands in a temporary that a second pass adds to y. With beta = 1
  BLAS adds the product to y as it writes it, which saves the temporary's
  write and the add's two reads. The floats are the same: BLAS accumulates
  A B over k in its registers, then adds the (already rounded) sum to C, as
  ``y += tmp`` adds the rounded tmp, as long as k fits in one of BLAS's
  blocks (the caller's ``GEMM_ADD_MAX_K``). The GEMM is SciPy's
  (:mod:`scipy.linalg.cython_blas`, as the nearest-code kernel's). BLAS is
  column-major; a C-contiguous (m, n) array is the column-major (n, m)
  array of its transpose, so ``out += a @ b`` is computed as
  ``out^T += b^T a^T``, with no copy.
- :func:`pack_frames`: the captions' valid frames laid end to end, one
  ``memcpy`` per frame, and the gaps between them zeroed in the same pass
  (NumPy: two slice copies per caption in a Python loop, on a buffer zeroed
  first);
- :func:`bias_relu_rows`: the first layer's bias, ReLU and frame mask in one
  pass, the mask kept as floats (NumPy: four passes, and a product with a
  bool mask that it casts on the fly);
- :func:`column_sums`: the bias gradients, rows added in order as
  ``d.sum(axis=0)`` adds them.
"""
from libc.stdint cimport int64_t
from libc.string cimport memcpy, memset
import numpy as np
from scipy.linalg.cython_blas cimport dgemm, sgemm

ctypedef fused floating:
    float
    double


def _layout(arr, name):
    """(transposed, leading dimension in items) of a 2-D array with contiguous rows or columns, else ValueError.

    Seen column-major, as BLAS sees it: rows contiguous is the transpose,
    stored as is ("N"); columns contiguous (e.g. ``W.T``) is stored transposed ("T").
    """
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got {arr.ndim}-D")
    item, (r, c), (sr, sc) = arr.itemsize, arr.shape, arr.strides
    if (c == 1 or sc == item) and sr % item == 0 and (r == 1 or sr // item >= max(1, c)):
        return False, (sr // item if r > 1 else max(1, c))
    if (r == 1 or sr == item) and sc % item == 0 and (c == 1 or sc // item >= max(1, r)):
        return True, (sc // item if c > 1 else max(1, r))
    raise ValueError(f"{name} must have contiguous rows or columns, got shape {arr.shape}, strides {arr.strides}")


cdef void _gemm_add(floating[:, ::1] out, const floating* a, bint ta, int lda, const floating* b, bint tb,
                    int ldb, int m, int n, int k) noexcept nogil:
    cdef char trans_a = b"T" if ta else b"N"
    cdef char trans_b = b"T" if tb else b"N"
    cdef floating one = 1.0
    cdef int ldc = n
    if floating is float:
        sgemm(&trans_b, &trans_a, &n, &m, &k, &one, <float*>b, &ldb, <float*>a, &lda, &one, &out[0, 0], &ldc)
    else:
        dgemm(&trans_b, &trans_a, &n, &m, &k, &one, <double*>b, &ldb, <double*>a, &lda, &one, &out[0, 0], &ldc)


def gemm_add(a, b, floating[:, ::1] out):
    """out += a @ b (float32 or float64; a and b with contiguous rows or columns, out C-contiguous).

    Raises ValueError for shapes that do not chain or arrays with neither
    contiguous rows nor contiguous columns, TypeError for mixed dtypes.
    """
    cdef Py_ssize_t m = out.shape[0], n = out.shape[1]
    dtype = np.dtype(np.float32 if floating is float else np.float64)
    if a.dtype != dtype or b.dtype != dtype:
        raise TypeError(f"a and b must have out's dtype {dtype}, got {a.dtype} and {b.dtype}")
    if a.shape[0] != m or b.shape[1] != n or a.shape[1] != b.shape[0]:
        raise ValueError(f"out {tuple(out.shape)[:2]} += a {a.shape} @ b {b.shape}: the shapes do not chain")
    cdef Py_ssize_t k = a.shape[1]
    cdef bint ta, tb
    cdef Py_ssize_t lda, ldb
    ta, lda = _layout(a, "a")
    tb, ldb = _layout(b, "b")
    if m == 0 or n == 0 or k == 0:
        return
    if max(m, n, k, lda, ldb) > 2147483647:
        raise ValueError("gemm_add: a dimension is above 2^31 - 1")
    cdef size_t pa = a.__array_interface__["data"][0], pb = b.__array_interface__["data"][0]
    with nogil:
        _gemm_add(out, <const floating*>pa, ta, <int>lda, <const floating*>pb, tb, <int>ldb, <int>m, <int>n, <int>k)


def pack_frames(const floating[:, :, :] x, const unsigned char[:, :] mask, const int64_t[::1] offsets,
                const int64_t[::1] extent, Py_ssize_t padding, floating[:, ::1] out, unsigned char[::1] valid):
    """The valid frames of x end to end in out, as :func:`minivq.layers.packed.pack` lays them.

    Parameters
    ----------
    x : (B, T, C), each frame's C values contiguous (x may be a slice of a longer batch)
    mask : (B, T) bool as uint8, the valid frames
    offsets, extent : (B,) int64, from :func:`minivq.layers.packed._pack_layout`; the offsets increasing
    padding : rows of out before packed frame 0 (left as they are)
    out : (rows, C), of x's dtype
        For every b: rows ``padding + offsets[b] + t`` get x[b, t] for a
        valid frame t < extent[b] and zeros for an invalid one; the rows from
        there up to the next sequence's offset (or ``len(valid)``) get zeros.
        Rows outside ``padding : padding + len(valid)`` are not written.
    valid : (L,) bool as uint8
        valid[offsets[b] + t] = mask[b, t] for t < extent[b], zero elsewhere.
    """
    cdef Py_ssize_t B = x.shape[0], T = x.shape[1], C = x.shape[2], L = valid.shape[0], b, t, o, n, end
    if C > 1 and x.strides[2] != sizeof(floating):
        raise ValueError(f"x must have each frame's values contiguous, got strides {tuple(x.strides)[:3]}")
    if mask.shape[0] != B or mask.shape[1] != T or offsets.shape[0] != B or extent.shape[0] != B:
        raise ValueError(f"mask must be ({B}, {T}) and offsets and extent ({B},), got mask "
                         f"({mask.shape[0]}, {mask.shape[1]}), offsets ({offsets.shape[0]},), "
                         f"extent ({extent.shape[0]},)")
    if out.shape[1] != C or padding < 0 or out.shape[0] < padding + L:
        raise ValueError(f"out must have {C} columns and at least padding + {L} rows, got "
                         f"({out.shape[0]}, {out.shape[1]}) with padding {padding}")
    end = 0
    for b in range(B):
        if offsets[b] < end or extent[b] < 0 or extent[b] > T or offsets[b] + extent[b] > L:
            raise ValueError(f"sequence {b} does not fit: offset {offsets[b]}, extent {extent[b]}, "
                             f"after {end}, T = {T}, L = {L}")
        end = offsets[b] + extent[b]
    cdef size_t row = C * sizeof(floating)
    with nogil:
        if L > 0:
            memset(&valid[0], 0, L)
        for b in range(B):
            o, n = offsets[b], extent[b]
            end = offsets[b + 1] if b + 1 < B else L
            for t in range(n):
                if mask[b, t]:
                    memcpy(&out[padding + o + t, 0], &x[b, t, 0], row)
                    valid[o + t] = 1
                else:
                    memset(&out[padding + o + t, 0], 0, row)
            if end > o + n:
                memset(&out[padding + o + n, 0], 0, (end - o - n) * row)
        if B > 0 and offsets[0] > 0:  # rows before the first sequence
            memset(&out[padding, 0], 0, offsets[0] * row)


cdef extern from *:
    """
    /* Two passes over the speech encoder's hidden frames, written so that the compiler vectorizes them
       (restrict pointers, a mask of floats rather than bytes, no branch on the data). */
    #define MINIVQ_BIAS_RELU(NAME, T)                                                               \\
    static void NAME(T* __restrict y, const T* __restrict b, T* __restrict keep,                    \\
                     const unsigned char* __restrict rows, Py_ssize_t n_rows, Py_ssize_t width) {   \\
        for (Py_ssize_t i = 0; i < n_rows; i++) {                                                   \\
            T* yr = y + i * width;                                                                  \\
            T* kr = keep + i * width;                                                               \\
            const T on = rows[i] ? (T)1 : (T)0;                                                     \\
            for (Py_ssize_t j = 0; j < width; j++) {                                                \\
                const T v = yr[j] + b[j];                                                           \\
                const T k = v > (T)0 ? on : (T)0;                                                   \\
                kr[j] = k;                                                                          \\
                yr[j] = v * k;                                                                      \\
            }                                                                                       \\
        }                                                                                           \\
    }
    MINIVQ_BIAS_RELU(minivq_bias_relu_f32, float)
    MINIVQ_BIAS_RELU(minivq_bias_relu_f64, double)
    #define MINIVQ_COLUMN_SUMS(NAME, T)                                                             \\
    static void NAME(const T* __restrict d, T* __restrict out, Py_ssize_t n_rows, Py_ssize_t width) { \\
        for (Py_ssize_t j = 0; j < width; j++) out[j] = (T)0;                                       \\
        for (Py_ssize_t i = 0; i < n_rows; i++) {                                                   \\
            const T* dr = d + i * width;                                                            \\
            for (Py_ssize_t j = 0; j < width; j++) out[j] = out[j] + dr[j];                         \\
        }                                                                                           \\
    }
    MINIVQ_COLUMN_SUMS(minivq_column_sums_f32, float)
    MINIVQ_COLUMN_SUMS(minivq_column_sums_f64, double)
    """
    void minivq_bias_relu_f32(float* y, const float* b, float* keep, const unsigned char* rows, Py_ssize_t n_rows,
                              Py_ssize_t width) nogil
    void minivq_bias_relu_f64(double* y, const double* b, double* keep, const unsigned char* rows,
                              Py_ssize_t n_rows, Py_ssize_t width) nogil
    void minivq_column_sums_f32(const float* d, float* out, Py_ssize_t n_rows, Py_ssize_t width) nogil
    void minivq_column_sums_f64(const double* d, double* out, Py_ssize_t n_rows, Py_ssize_t width) nogil


def bias_relu_rows(floating[:, ::1] y, const floating[::1] b, const unsigned char[::1] rows, floating[:, ::1] keep):
    """y <- (y + b) * keep in place, keep = 1 where y + b > 0 on a row marked in ``rows``, else 0 (floats).

    As ``y += b; keep = y > 0; keep[~rows] = False; np.multiply(y, keep, out=y)``
    with keep as 0.0 and 1.0 in y's dtype: a negative entry becomes -0.0 and
    NaN stays NaN, as NumPy's product with False gives them. y and keep must
    not overlap.
    """
    cdef Py_ssize_t T = y.shape[0], C = y.shape[1]
    if b.shape[0] != C or rows.shape[0] != T or keep.shape[0] != T or keep.shape[1] != C:
        raise ValueError(f"b must be ({C},), rows ({T},) and keep ({T}, {C}), got ({b.shape[0]},), "
                         f"({rows.shape[0]},) and ({keep.shape[0]}, {keep.shape[1]})")
    if T * C == 0:
        return
    with nogil:
        if floating is float:
            minivq_bias_relu_f32(&y[0, 0], &b[0], &keep[0, 0], &rows[0], T, C)
        else:
            minivq_bias_relu_f64(&y[0, 0], &b[0], &keep[0, 0], &rows[0], T, C)


def column_sums(const floating[:, ::1] d, floating[::1] out):
    """out <- 0 plus the rows of d added one after the other: ``d.sum(axis=0)`` for two columns or more.

    NumPy adds the rows of a C-contiguous array in order, column by column;
    a single column it adds pairwise instead (then use NumPy).
    """
    cdef Py_ssize_t T = d.shape[0], C = d.shape[1]
    if out.shape[0] != C:
        raise ValueError(f"out must be ({C},), got ({out.shape[0]},)")
    if C == 0:
        return
    if T == 0:
        out[:] = 0
        return
    with nogil:
        if floating is float:
            minivq_column_sums_f32(&d[0, 0], &out[0], T, C)
        else:
            minivq_column_sums_f64(&d[0, 0], &out[0], T, C)
