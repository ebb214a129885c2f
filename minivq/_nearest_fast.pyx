# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""Fast kernel for the nearest-codeword search (METHOD.md VQ-1).

Three layers, as in scikit-learn's k-means kernels:

1. Python (``minivq.nearest.nearest_code``) validates, converts, computes the
   squared norms, allocates outputs and scratch, holds BLAS to one thread;
2. the ``def`` entry :func:`nearest_fast` takes typed memoryviews and runs
   the tiles, on one thread or on ``n_threads`` OpenMP threads (``prange``);
3. the ``cdef ... noexcept nogil`` worker :func:`_nearest_tile` does one tile.

Per tile of rows, one GEMM computes the (rows, K) block of -2 x.e, then
||e_k||^2 is added and the argmin taken while the block is still in cache.
No N x K array is ever allocated: the scratch is (n_threads, tile_rows, K).

    ||x - e||^2 = ||x||^2 - 2 x.e + ||e||^2
    score s_k = ||e_k||^2 - 2 x.e_k  (||x||^2 does not change the argmin)
"""
from cython.parallel cimport prange, parallel, threadid
from libc.stdint cimport int64_t
from libc.math cimport HUGE_VAL
from scipy.linalg.cython_blas cimport sgemm, dgemm

ctypedef fused floating:
    float
    double

DEF LANES = 8   # independent running minima: lets the compiler use SIMD min


cdef inline void _gemm_minus2_XEt(const floating* X,   # IN  (n, D) C order
                                  const floating* E,   # IN  (K, D) C order
                                  int n, int K, int D,
                                  floating* scores      # OUT (n, K) C order
                                  ) noexcept nogil:
    """scores = -2 X E^T, by one BLAS call.

    BLAS is column-major: the C-order (n, K) block is the column-major (K, n)
    matrix -2 E X^T, with E read as the transpose of its column-major (D, K)
    view and X as its column-major (D, n) view.
    """
    cdef char transa = b'T'
    cdef char transb = b'N'
    cdef floating alpha = -2.0
    cdef floating beta = 0.0
    if floating is float:
        sgemm(&transa, &transb, &K, &n, &D, &alpha, <float*>E, &D,
              <float*>X, &D, &beta, scores, &K)
    else:
        dgemm(&transa, &transb, &K, &n, &D, &alpha, <double*>E, &D,
              <double*>X, &D, &beta, scores, &K)


cdef void _nearest_tile(const floating* X,        # IN  (n, D) rows of the tile
                        const floating* E,        # IN  (K, D) codebook
                        const floating* x_sq,     # IN  (n,)   ||x_i||^2
                        const floating* e_sq,     # IN  (K,)   ||e_k||^2
                        int n, int K, int D,
                        floating* scores,         # SCRATCH (n, K)
                        int64_t* indices,         # OUT (n,)
                        floating* sq_distances    # OUT (n,)
                        ) noexcept nogil:
    """Nearest code of each of the n rows of one tile.

    The argmin is two passes over a row of scores. Pass 1 adds ||e_k||^2 and
    keeps LANES running minima, each ``m = s if s < m else m``: the lanes are
    independent, so the loop maps to SIMD min instructions without reordering
    any floating-point operation. Pass 2 returns the first k whose score
    equals the minimum, so ties go to the lowest index.

    NaN rule: ``s < m`` is false for a NaN, so a NaN score never becomes the
    minimum; a row with no finite score would get index 0. Validated input is
    finite and its squared norms do not overflow, so |s_k| is finite here.
    """
    cdef int i, k, l, K_lanes = K - K % LANES
    cdef floating* row
    cdef floating s, best, dist
    cdef floating lane[LANES]

    _gemm_minus2_XEt(X, E, n, K, D, scores)

    for i in range(n):
        row = scores + <Py_ssize_t>i * K
        for l in range(LANES):
            lane[l] = HUGE_VAL
        for k in range(0, K_lanes, LANES):          # pass 1, vectorizable
            for l in range(LANES):
                s = row[k + l] + e_sq[k + l]
                row[k + l] = s
                lane[l] = s if s < lane[l] else lane[l]
        best = HUGE_VAL
        for k in range(K_lanes, K):                 # the K % LANES leftovers
            s = row[k] + e_sq[k]
            row[k] = s
            best = s if s < best else best
        for l in range(LANES):
            best = lane[l] if lane[l] < best else best
        k = 0
        while k < K and not row[k] == best:         # pass 2: first minimum
            k = k + 1
        if k == K:                                  # no finite score (see NaN rule)
            k = 0
        indices[i] = k
        dist = x_sq[i] + best
        sq_distances[i] = dist if dist > 0 else 0


def nearest_fast(const floating[:, ::1] X,        # IN  (N, D)
                 const floating[:, ::1] E,        # IN  (K, D)
                 const floating[::1] x_sq,        # IN  (N,)
                 const floating[::1] e_sq,        # IN  (K,)
                 int64_t[::1] indices,            # OUT (N,)
                 floating[::1] sq_distances,      # OUT (N,)
                 floating[:, :, ::1] scratch,     # SCRATCH (n_threads, tile_rows, K)
                 int n_threads):
    """Nearest code of every row of validated X; see the module docstring.

    The caller guarantees: N >= 1, K >= 1, D >= 1, finite inputs, matching
    shapes, ``scratch.shape == (n_threads, tile_rows, K)``, n_threads >= 1.
    Tiles are ``tile_rows`` consecutive rows; thread t uses ``scratch[t]``.
    """
    cdef int N = X.shape[0], D = X.shape[1], K = E.shape[0]
    cdef int tile_rows = scratch.shape[1]
    cdef int n_tiles = (N + tile_rows - 1) // tile_rows
    cdef int t, start, rows

    if n_threads == 1:
        with nogil:
            for t in range(n_tiles):
                start = t * tile_rows
                rows = min(tile_rows, N - start)
                _nearest_tile(&X[start, 0], &E[0, 0], &x_sq[start], &e_sq[0],
                              rows, K, D, &scratch[0, 0, 0],
                              &indices[start], &sq_distances[start])
    else:
        with nogil, parallel(num_threads=n_threads):
            for t in prange(n_tiles, schedule='static'):
                start = t * tile_rows
                rows = min(tile_rows, N - start)
                _nearest_tile(&X[start, 0], &E[0, 0], &x_sq[start], &e_sq[0],
                              rows, K, D, &scratch[threadid(), 0, 0],
                              &indices[start], &sq_distances[start])
