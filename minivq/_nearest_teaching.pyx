# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""Teaching kernel for the nearest-codeword search (METHOD.md VQ-1).

The plainest compiled version: a loop over rows, over codes, over features.
It is the first kernel notebooks/01_nearest_codeword.ipynb shows. Its entry
checks only that the buffers' shapes fit together;
``minivq.nearest.nearest_code_teaching`` validates and converts the arrays
first (C-contiguous, finite, same float dtype).
"""
from libc.stdint cimport int64_t

ctypedef fused floating:
    float
    double


def nearest_teaching(const floating[:, ::1] X,      # IN  (N, D) rows to quantize
                     const floating[:, ::1] E,      # IN  (K, D) codebook
                     floating[::1] e_sq,            # OUT (K,)   ||e_k||^2 (scratch)
                     int64_t[::1] indices,          # OUT (N,)   k*(x_i)
                     floating[::1] sq_distances):   # OUT (N,)   ||x_i - e_k*||^2
    """Fill ``indices`` and ``sq_distances`` for validated X (N, D), E (K, D).

    The identity behind every fast nearest-neighbour search:

        ||x - e||^2 = ||x||^2 - 2 x.e + ||e||^2

    ||e_k||^2 is computed once per code, ||x||^2 once per row, and ||x||^2 does
    not change which code is nearest, so codes are ranked by the score
    s_k = ||e_k||^2 - 2 x.e_k; only the dot products x.e_k remain in the inner
    loop (that is the matrix product X E^T the fast kernel hands to BLAS).
    A strict ``<`` keeps the first of equal scores: ties go to the lowest index.
    Equal codewords get bitwise equal scores here (the same loop computes
    each dot product in the same order), so the first copy always wins.
    The shapes are checked first (a ValueError if they do not fit).
    """
    cdef Py_ssize_t N = X.shape[0], K = E.shape[0], D = X.shape[1]
    cdef Py_ssize_t i, k, d, best_k
    cdef floating dot, x_sq, score, best, dist
    # shapes must fit together, so no call from Python can read or write out of bounds
    if K < 1 or E.shape[1] != D:
        raise ValueError(f"E must have shape (K >= 1, D = {D}), got {(K, E.shape[1])}")
    if e_sq.shape[0] != K or indices.shape[0] != N or sq_distances.shape[0] != N:
        raise ValueError(f"e_sq must have shape ({K},), indices and sq_distances ({N},), got "
                         f"{e_sq.shape[0]}, {indices.shape[0]}, {sq_distances.shape[0]}")

    ### BEGIN SOLUTION nearest_teaching
    with nogil:
        for k in range(K):                     # ||e_k||^2, once per code
            dot = 0
            for d in range(D):
                dot = dot + E[k, d] * E[k, d]
            e_sq[k] = dot

        for i in range(N):
            x_sq = 0                           # ||x_i||^2, once per row
            for d in range(D):
                x_sq = x_sq + X[i, d] * X[i, d]
            best_k = 0
            best = 0
            for k in range(K):
                dot = 0                        # x_i . e_k
                for d in range(D):
                    dot = dot + X[i, d] * E[k, d]
                score = e_sq[k] - 2 * dot      # s_k = ||e_k||^2 - 2 x.e_k
                if k == 0 or score < best:     # strict <: the lowest index wins ties
                    best = score
                    best_k = k
            indices[i] = best_k
            dist = x_sq + best                 # ||x||^2 + min_k s_k
            sq_distances[i] = dist if dist > 0 else 0   # rounding can dip below 0
    ### END SOLUTION
