# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""The global gradient norm and the Adam update as single compiled passes, for training.

:func:`minivq.optim._clip_grad_norm` and :meth:`minivq.optim.Adam._step`
each run a dozen NumPy passes, with temporaries, and a Python loop over the
parameters (about 56 000 numbers in the image-speech model). The functions
here do the same operations, in the same order and in the same dtypes, in
one loop each, so that every result is the same float to the bit
(``tests/test_compiled_step.py`` checks them against the NumPy passes):

- :func:`squared_norm`: each gradient entry squared in float64, all of them
  added as ``np.sum`` adds the concatenated squares (0 plus NumPy's pairwise
  sum, :mod:`minivq._pairwise`);
- :func:`adam_update`: the Adam step of :meth:`minivq.optim.Adam._step`,
  operation by operation.

The module is compiled with ``-ffp-contract=off``: a fused multiply-add
would round ``beta1 m + (1 - beta1) g`` once instead of twice.
"""
from libc.math cimport sqrt, sqrtf
from libc.stdlib cimport free, malloc

cimport numpy as cnp

from ._pairwise cimport _pairwise, floating

cnp.import_array()


cdef int _check(list arrays, str name, int typenum) except -1:
    """TypeError unless every entry is a C-contiguous ndarray of ``typenum``; returns 0."""
    for a in arrays:
        if not cnp.PyArray_Check(a) or not cnp.PyArray_ISCARRAY_RO(<cnp.ndarray>a) or \
                cnp.PyArray_TYPE(<cnp.ndarray>a) != typenum:
            raise TypeError(f"{name} must be C-contiguous arrays of one float dtype, got {type(a).__name__} "
                            f"{getattr(a, 'dtype', '')}")
    return 0


def squared_norm(list grads):
    """sum of g * g over every entry of every array of ``grads``, in float64, as NumPy adds it.

    The same bits as ``np.sum(np.square(np.concatenate([g.ravel() for g in
    grads], dtype=np.float64)))``: the squares in one float64 buffer, then 0
    plus their pairwise sum. Arrays: C-contiguous, all float32 or all float64.
    """
    if not grads:
        return 0.0
    typenum = cnp.PyArray_TYPE(<cnp.ndarray>grads[0]) if cnp.PyArray_Check(grads[0]) else -1
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(f"grads must be float32 or float64 arrays, got {getattr(grads[0], 'dtype', grads[0])!r}")
    _check(grads, "grads", typenum)
    cdef Py_ssize_t total = 0, n, i, at = 0
    for g in grads:
        total += cnp.PyArray_SIZE(<cnp.ndarray>g)
    cdef double* sq = <double*>malloc(max(total, 1) * sizeof(double))
    if sq == NULL:
        raise MemoryError()
    cdef float* f32
    cdef double* f64
    cdef double v, result
    try:
        for g in grads:
            n = cnp.PyArray_SIZE(<cnp.ndarray>g)
            if typenum == cnp.NPY_FLOAT32:
                f32 = <float*>cnp.PyArray_DATA(<cnp.ndarray>g)
                for i in range(n):
                    v = <double>f32[i]
                    sq[at + i] = v * v
            else:
                f64 = <double*>cnp.PyArray_DATA(<cnp.ndarray>g)
                for i in range(n):
                    sq[at + i] = f64[i] * f64[i]
            at += n
        result = 0.0
        result = result + _pairwise(sq, total, False)
    finally:
        free(sq)
    return result


cdef void _adam(floating* p, const floating* g, floating* m, floating* v, Py_ssize_t n,
                floating b1, floating c1, floating b2, floating c2, floating bc1, floating bc2,
                floating lr, floating eps) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating mi, vi, gg, step, root
    for i in range(n):
        mi = m[i] * b1
        mi = mi + c1 * g[i]
        m[i] = mi
        gg = g[i] * g[i]
        gg = gg * c2
        vi = v[i] * b2
        vi = vi + gg
        v[i] = vi
        step = mi / bc1
        root = vi / bc2
        if floating is float:
            root = sqrtf(root)
        else:
            root = sqrt(root)
        root = root + eps
        step = step * lr
        step = step / root
        p[i] = p[i] - step


def adam_update(list params, list grads, floating[::1] m, floating[::1] v, double beta1, double beta2,
                double bias1, double bias2, double lr, double eps):
    """One Adam step over the parameters laid end to end in the moments m and v (updated in place).

    Parameters
    ----------
    params, grads : lists of C-contiguous arrays, in the same order and shapes, of m's dtype
        params (writeable) are updated in place.
    m, v : (sum of sizes,) the first and second moments, flat.
    beta1, beta2, lr, eps : the hyperparameters
    bias1, bias2 : 1 - beta1^t and 1 - beta2^t

    Every scalar is rounded to the arrays' dtype as NumPy's ``f(...)`` of
    :meth:`minivq.optim.Adam._step` rounds it, and each entry goes through

        m <- m b1 + (1 - b1) g;  v <- v b2 + (g g)(1 - b2);
        p <- p - (m / bias1) lr / (sqrt(v / bias2) + eps)

    one rounding per operation, as the NumPy passes do.
    """
    cdef int typenum = cnp.NPY_FLOAT32 if floating is float else cnp.NPY_FLOAT64
    if len(params) != len(grads):
        raise ValueError(f"params and grads must be as many, got {len(params)} and {len(grads)}")
    _check(params, "params", typenum)
    _check(grads, "grads", typenum)
    cdef Py_ssize_t at = 0, n, j
    for j in range(len(params)):
        n = cnp.PyArray_SIZE(<cnp.ndarray>params[j])
        if cnp.PyArray_SIZE(<cnp.ndarray>grads[j]) != n:
            raise ValueError(f"grads[{j}] must have the size of params[{j}], {n}, got "
                             f"{cnp.PyArray_SIZE(<cnp.ndarray>grads[j])}")
        if not cnp.PyArray_ISWRITEABLE(<cnp.ndarray>params[j]):
            raise ValueError(f"params[{j}] must be writeable")
        at += n
    if at != m.shape[0] or at != v.shape[0]:
        raise ValueError(f"m and v must hold {at} entries (all the parameters), got {m.shape[0]} and {v.shape[0]}")
    cdef floating b1 = <floating>beta1, c1 = <floating>(1 - beta1), b2 = <floating>beta2, c2 = <floating>(1 - beta2)
    cdef floating bc1 = <floating>bias1, bc2 = <floating>bias2, flr = <floating>lr, feps = <floating>eps
    at = 0
    for j in range(len(params)):
        n = cnp.PyArray_SIZE(<cnp.ndarray>params[j])
        if n > 0:
            _adam(<floating*>cnp.PyArray_DATA(<cnp.ndarray>params[j]),
                  <const floating*>cnp.PyArray_DATA(<cnp.ndarray>grads[j]),
                  &m[at], &v[at], n, b1, c1, b2, c2, bc1, bc2, flr, feps)
        at += n
