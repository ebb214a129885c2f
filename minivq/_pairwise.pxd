# cython: language_level=3
"""NumPy's pairwise summation, for the compiled passes that must give NumPy's bits.

Shared by :mod:`minivq._matching_fast` and :mod:`minivq._optim_fast`.
"""

ctypedef fused floating:
    float
    double


cdef inline floating _pairwise(const floating* x, Py_ssize_t n, bint square) noexcept nogil:
    """NumPy's pairwise sum of x[0:n] (of x * x with ``square``): 8 partial sums up to 128 terms, halves above.

    As ``numpy/_core/src/umath/loops_utils.h.src`` adds a contiguous run in
    an ``add`` reduction; the callers add it to the run's first value or to 0
    as NumPy does (``tests/test_fast_paths.py`` and ``tests/test_compiled_step.py``
    check the bits against NumPy).
    """
    cdef floating r[8]
    cdef floating res, v
    cdef Py_ssize_t i, j
    if n < 8:
        res = 0.0
        for i in range(n):
            v = x[i] * x[i] if square else x[i]
            res = res + v
        return res
    if n <= 128:
        for j in range(8):
            r[j] = x[j] * x[j] if square else x[j]
        i = 8
        while i < n - (n % 8):
            for j in range(8):
                v = x[i + j] * x[i + j] if square else x[i + j]
                r[j] = r[j] + v
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            v = x[i] * x[i] if square else x[i]
            res = res + v
            i += 1
        return res
    i = n // 2
    i -= i % 8
    return _pairwise(x, i, square) + _pairwise(x + i, n - i, square)
