# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""Each code's rows of a batch, summed as NumPy sums them, for the EMA codebook (METHOD.md VQ-5).

:func:`minivq.ema._add_rows_by_code` adds every unit to the running sum of
its nearest code: a stable sort of the units by code, a gather, and one
``np.add.reduceat`` over the sorted rows, about ten NumPy calls for a few
thousand additions. :func:`add_rows_by_code` does the same additions in the
same order, so the sums are the same floats to the bit
(``tests/test_compiled_step.py`` checks it against the NumPy passes):
``np.add.reduceat(rows, starts, axis=0)`` sums a segment column by column as
its first row plus NumPy's pairwise sum of the others (:mod:`minivq._pairwise`),
and ``sums[present] += segment`` adds that to the sum already there.
"""
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc

from ._pairwise cimport _pairwise, floating


def add_rows_by_code(floating[:, ::1] sums, const int64_t[::1] k, const floating[:, ::1] X):
    """sums[k[i]] += X[i] for every row i, each code's rows added in their order as NumPy does.

    Parameters
    ----------
    sums : (K, D), updated in place
    k : (N,) int64, codes in [0, K)
    X : (N, D), of sums' dtype

    Raises ValueError for a code outside [0, K) or shapes that do not fit.
    """
    cdef Py_ssize_t K = sums.shape[0], D = sums.shape[1], N = k.shape[0], i, j, c, n, at
    if X.shape[0] != N or X.shape[1] != D:
        raise ValueError(f"X must be ({N}, {D}) (a row for each code in k, as wide as sums), got "
                         f"({X.shape[0]}, {X.shape[1]})")
    for i in range(N):
        if k[i] < 0 or k[i] >= K:
            raise ValueError(f"k must hold codes in [0, {K}), got {k[i]} at {i}")
    if N == 0 or D == 0:
        return
    cdef Py_ssize_t* start = <Py_ssize_t*>calloc(K + 1, sizeof(Py_ssize_t))
    cdef Py_ssize_t* order = <Py_ssize_t*>malloc(N * sizeof(Py_ssize_t))
    cdef floating* column = <floating*>malloc(N * sizeof(floating))
    if start == NULL or order == NULL or column == NULL:
        free(start)
        free(order)
        free(column)
        raise MemoryError()
    cdef floating total
    with nogil:
        for i in range(N):  # a counting sort, stable: each code's rows in their order
            start[k[i] + 1] += 1
        for c in range(K):
            start[c + 1] += start[c]
        for i in range(N):
            order[start[k[i]]] = i
            start[k[i]] += 1
        at = 0  # start[c] is now the end of code c's rows
        for c in range(K):
            n = start[c] - at
            if n > 0:
                for j in range(D):
                    for i in range(n):
                        column[i] = X[order[at + i], j]
                    total = column[0]
                    if n > 1:
                        total = total + _pairwise(column + 1, n - 1, False)
                    sums[c, j] = sums[c, j] + total
            at = start[c]
    free(start)
    free(order)
    free(column)
