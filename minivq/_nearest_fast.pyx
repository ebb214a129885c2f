# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""Fast kernel for the nearest-codeword search (METHOD.md VQ-1).

Three layers, as in scikit-learn's k-means kernels:

1. Python (``minivq.nearest.nearest_code``) validates dtypes, shapes and
   layout, allocates outputs and scratch, holds BLAS to one thread;
2. the ``def`` entry :func:`nearest_fast` takes typed memoryviews, checks
   that their shapes fit together (so that no call from Python can read or
   write out of bounds), computes the squared norms (its finiteness check),
   finds the codewords that are copies of an earlier one, and runs the
   tiles, on one thread or on ``n_threads`` OpenMP threads (``prange``);
3. the ``cdef ... noexcept nogil`` worker :func:`_nearest_tile` does one tile.

Per tile of rows, one GEMM computes the (K, rows) block of -2 x.e, then
||e_k||^2 is added and the argmin taken while the block is still in cache.
No N x K array is ever allocated: the scratch is (n_threads, K, tile_rows).

    ||x - e||^2 = ||x||^2 - 2 x.e + ||e||^2
    score s_k = ||e_k||^2 - 2 x.e_k  (||x||^2 does not change the argmin)

Identical codewords: BLAS may round the dot products of two equal columns
differently (they take different paths through its micro-kernel), so a copy
could win against its original. Equal rows of E are found once per call (by
hashing the rows, O(K D)) and every code is reported as its first copy.
Sizes are ``Py_ssize_t``; BLAS takes ``int``, so K and D must fit one.
"""
import operator

from cython.parallel cimport prange, parallel, threadid
from libc.stdint cimport int64_t, uint64_t
from libc.limits cimport INT_MAX
from libc.math cimport HUGE_VAL
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from scipy.linalg.cython_blas cimport sgemm, dgemm

ctypedef fused floating:
    float
    double

cdef enum:
    TILE_MAX = 1024   # rows per tile at most: the per-tile best/index live on the stack

#: The largest ``tile_rows`` (``scratch.shape[2]``) :func:`nearest_fast` accepts.
TILE_MAX_ROWS = TILE_MAX


cdef inline void _gemm_minus2_EXt(const floating* X,   # IN  (n, D) C order
                                  const floating* E,   # IN  (K, D) C order
                                  int n, int K, int D,
                                  floating* scores      # OUT (K, n) C order
                                  ) noexcept nogil:
    """scores = -2 E X^T, i.e. scores[k, i] = -2 x_i.e_k, by one BLAS call.

    BLAS is column-major: the C-order (K, n) block is the column-major (n, K)
    matrix -2 X E^T; X is read as the transpose of its column-major (D, n)
    view, E as its column-major (D, K) view.
    """
    cdef char transa = b'T'
    cdef char transb = b'N'
    cdef floating alpha = -2.0
    cdef floating beta = 0.0
    if floating is float:
        sgemm(&transa, &transb, &n, &K, &D, &alpha, <float*>X, &D,
              <float*>E, &D, &beta, scores, &n)
    else:
        dgemm(&transa, &transb, &n, &K, &D, &alpha, <double*>X, &D,
              <double*>E, &D, &beta, scores, &n)


cdef void _nearest_tile(const floating* X,        # IN  (n, D) rows of the tile
                        const floating* E,        # IN  (K, D) codebook
                        const floating* x_sq,     # IN  (n,)   ||x_i||^2
                        const floating* e_sq,     # IN  (K,)   ||e_k||^2
                        const Py_ssize_t* first,  # IN  (K,)   first copy of each code, or NULL
                        int n, int K, int D,
                        floating* scores,         # SCRATCH (K, n)
                        int64_t* indices,         # OUT (n,)
                        floating* sq_distances    # OUT (n,)
                        ) noexcept nogil:
    """Nearest code of each of the n <= TILE_MAX rows of one tile.

    After the GEMM, the codes are swept in order k = 0..K-1 and every row
    keeps its best score so far: ``if s < best[i]: best[i], idx[i] = s, k``.
    The loop over rows has no branch (the index is picked with a bit mask,
    the score with a select that maps to a SIMD min), so the compiler
    vectorizes it without reordering any floating-point operation. The strict
    ``<`` keeps the first of equal scores: ties go to the lowest index. A
    code that is a copy of an earlier one is reported as that one (``first``).

    NaN rule: ``s < b`` is false when s is NaN, so a NaN score never replaces
    the best; a row with no finite score would keep index 0 and +inf.
    Validated input is finite and its squared norms do not overflow, so every
    score is finite here.
    """
    cdef int i, k, mask
    cdef floating s, b, ek, dist
    cdef const floating* col
    cdef floating best[TILE_MAX]
    cdef int idx[TILE_MAX]

    _gemm_minus2_EXt(X, E, n, K, D, scores)

    for i in range(n):
        best[i] = HUGE_VAL
        idx[i] = 0
    for k in range(K):
        col = scores + <Py_ssize_t>k * n           # -2 x_i.e_k for every row i
        ek = e_sq[k]
        for i in range(n):                         # vectorized over rows
            s = col[i] + ek                        # s_k = ||e_k||^2 - 2 x_i.e_k
            b = best[i]
            mask = -(s < b)                        # all ones where s is better
            idx[i] = (idx[i] & ~mask) | (k & mask)
            best[i] = s if s < b else b
    for i in range(n):
        indices[i] = idx[i] if first == NULL else first[idx[i]]
        dist = x_sq[i] + best[i]                   # ||x||^2 + min_k s_k
        sq_distances[i] = dist if dist > 0 else 0  # rounding can dip below 0


cdef bint _row_sq_norms(const floating[:, ::1] A,    # IN  (rows, D)
                        floating[::1] out,               # OUT (rows,)  ||a_i||^2
                        floating* largest                # OUT max_i ||a_i||^2
                        ) noexcept nogil:
    """out[i] = ||a_i||^2; False when any is NaN or inf (a NaN/inf entry, or overflow).

    Four partial sums per row break the chain of dependent additions, so
    the loop runs at the adder's throughput, not its latency.
    """
    cdef Py_ssize_t i, d, D = A.shape[1], D4 = D - D % 4
    cdef const floating* a
    cdef floating s0, s1, s2, s3, acc, top = 0
    cdef bint finite = True
    for i in range(A.shape[0]):
        a = &A[i, 0]
        s0 = s1 = s2 = s3 = 0
        for d in range(0, D4, 4):
            s0 = s0 + a[d] * a[d]
            s1 = s1 + a[d + 1] * a[d + 1]
            s2 = s2 + a[d + 2] * a[d + 2]
            s3 = s3 + a[d + 3] * a[d + 3]
        for d in range(D4, D):
            s0 = s0 + a[d] * a[d]
        acc = (s0 + s1) + (s2 + s3)
        out[i] = acc
        finite &= acc - acc == 0               # false for NaN and +-inf
        top = acc if acc > top else top
    largest[0] = top
    return finite


cdef inline uint64_t _bits(floating v) noexcept nogil:
    """The bits of v, with -0.0 read as 0.0 (equal values hash alike)."""
    cdef uint64_t out = 0
    if v == 0:
        v = 0
    memcpy(&out, &v, sizeof(floating))
    return out


cdef bint _norms_collide(const floating* e_sq, Py_ssize_t K,
                         Py_ssize_t* table, Py_ssize_t size) noexcept nogil:
    """True when two of the K squared norms are equal (a hash set of their bits, O(K)).

    Equal rows have bitwise equal squared norms (:func:`_row_sq_norms` runs the
    same operations on each row), so without a collision there is no copy.
    """
    cdef Py_ssize_t k, slot
    cdef uint64_t h
    for slot in range(size):
        table[slot] = -1
    for k in range(K):
        h = _bits(e_sq[k]) * 11400714819323198485ULL
        slot = <Py_ssize_t>((h ^ (h >> 29)) & <uint64_t>(size - 1))
        while table[slot] >= 0:
            if e_sq[table[slot]] == e_sq[k]:
                return True
            slot = (slot + 1) & (size - 1)
        table[slot] = k
    return False


cdef Py_ssize_t _first_copies(const floating[:, ::1] E,   # IN  (K, D)
                              const floating* e_sq,       # IN  (K,)  ||e_k||^2
                              Py_ssize_t* first,          # OUT (K,) lowest j with row j == row k
                              Py_ssize_t* table,          # SCRATCH (size,) open-addressing hash table
                              Py_ssize_t size             # a power of 2, >= 2 K
                              ) noexcept nogil:
    """first[k] = the lowest index whose row equals row k (elementwise ==); returns #copies.

    First a cheap test on the squared norms (:func:`_norms_collide`): with no
    two equal, there is no copy (the common case, O(K)). Otherwise rows are
    hashed (FNV-1a over their values' bits); the table holds the first row of
    each distinct value, and a probe compares whole rows, so a hash collision
    never merges two different codewords.
    """
    cdef Py_ssize_t K = E.shape[0], D = E.shape[1], k, j, d, slot, copies = 0
    cdef uint64_t h
    cdef bint same
    if not _norms_collide(e_sq, K, table, size):
        return 0
    for slot in range(size):
        table[slot] = -1
    for k in range(K):
        h = 14695981039346656037ULL
        for d in range(D):
            h = (h ^ _bits(E[k, d])) * 1099511628211ULL
        slot = <Py_ssize_t>((h ^ (h >> 29)) & <uint64_t>(size - 1))
        first[k] = k
        while table[slot] >= 0:
            j = table[slot]
            same = True
            for d in range(D):
                if E[j, d] != E[k, d]:
                    same = False
                    break
            if same:
                first[k] = j
                copies += 1
                break
            slot = (slot + 1) & (size - 1)
        if first[k] == k:
            table[slot] = k
    return copies


def nearest_fast(const floating[:, ::1] X,        # IN  (N, D)
                 const floating[:, ::1] E,        # IN  (K, D)
                 floating[::1] x_sq,              # OUT (N,)  ||x_i||^2
                 floating[::1] e_sq,              # OUT (K,)  ||e_k||^2
                 int64_t[::1] indices,            # OUT (N,)
                 floating[::1] sq_distances,      # OUT (N,)
                 floating[:, :, ::1] scratch,     # SCRATCH (>= n_threads, K, tile_rows)
                 n_threads):                      # int >= 1
    """Nearest code of every row of X; see the module docstring.

    Shapes must fit together: K >= 1 and D >= 1 (each at most 2^31 - 1,
    BLAS's int), E (K, D), x_sq, indices and sq_distances (N,), e_sq (K,),
    scratch (>= n_threads, K, tile_rows) with 1 <= tile_rows <= TILE_MAX_ROWS,
    n_threads >= 1; otherwise a ValueError, before any memory is touched.
    Tiles are ``tile_rows`` consecutive rows; thread t uses ``scratch[t]``.

    The first pass computes the squared norms, which is also the finiteness
    check: when a norm, or the largest ||x||^2 + ||e||^2, is not finite, the
    search is not run and 1 is returned (the caller raises the ValueError);
    otherwise 0.
    """
    cdef Py_ssize_t N = X.shape[0], D = X.shape[1], K = E.shape[0]
    cdef Py_ssize_t tile_rows = scratch.shape[2]
    cdef Py_ssize_t n_tiles, t, start, rows, size = 2, copies = 0
    cdef Py_ssize_t* first = NULL
    cdef floating x_max = 0, e_max = 0, total
    cdef bint finite
    cdef int threads
    if isinstance(n_threads, bool) or not 1 <= operator.index(n_threads) <= scratch.shape[0]:
        raise ValueError(f"n_threads must be an int in [1, scratch.shape[0] = {scratch.shape[0]}], got {n_threads!r}")
    threads = n_threads
    if not (1 <= K <= INT_MAX and 1 <= D <= INT_MAX and E.shape[1] == D):
        raise ValueError(f"E must have shape (K, D) with 1 <= K, D <= {INT_MAX} and X's D = {D}, "
                         f"got {(K, E.shape[1])}")
    if not (x_sq.shape[0] == N and indices.shape[0] == N and sq_distances.shape[0] == N):
        raise ValueError(f"x_sq, indices and sq_distances must have shape (N,) = ({N},), got "
                         f"{x_sq.shape[0]}, {indices.shape[0]}, {sq_distances.shape[0]}")
    if e_sq.shape[0] != K:
        raise ValueError(f"e_sq must have shape (K,) = ({K},), got ({e_sq.shape[0]},)")
    if not (scratch.shape[1] == K and 1 <= tile_rows <= TILE_MAX):
        raise ValueError(f"scratch must have shape (>= n_threads = {n_threads}, K = {K}, tile_rows in "
                         f"[1, {TILE_MAX}]), got ({scratch.shape[0]}, {scratch.shape[1]}, {scratch.shape[2]})")
    n_tiles = (N + tile_rows - 1) // tile_rows

    with nogil:
        finite = _row_sq_norms(X, x_sq, &x_max) & _row_sq_norms(E, e_sq, &e_max)
        total = x_max + e_max
        finite = finite and total - total == 0  # ||x||^2 + ||e||^2 must not overflow
    if not finite:
        return 1

    if K > 1 and N > 0:
        while size < 2 * K:
            size *= 2
        first = <Py_ssize_t*>malloc((K + size) * sizeof(Py_ssize_t))
        if first == NULL:
            raise MemoryError(f"no memory for the copy table of K = {K} codes")
        with nogil:
            copies = _first_copies(E, &e_sq[0], first, first + K, size)
        if copies == 0:
            free(first)
            first = NULL
    try:
        if threads == 1:
            with nogil:
                for t in range(n_tiles):
                    start = t * tile_rows
                    rows = min(tile_rows, N - start)
                    _nearest_tile(&X[start, 0], &E[0, 0], &x_sq[start], &e_sq[0], first,
                                  <int>rows, <int>K, <int>D, &scratch[0, 0, 0],
                                  &indices[start], &sq_distances[start])
        else:
            with nogil, parallel(num_threads=threads):
                for t in prange(n_tiles, schedule='static'):
                    start = t * tile_rows
                    rows = min(tile_rows, N - start)
                    _nearest_tile(&X[start, 0], &E[0, 0], &x_sq[start], &e_sq[0], first,
                                  <int>rows, <int>K, <int>D, &scratch[threadid(), 0, 0],
                                  &indices[start], &sq_distances[start])
    finally:
        free(first)
    return 0


# --- build information (appended; owned by the packaging code) ---
# _OPENMP is defined by the C compiler exactly when it compiles with OpenMP
# (setup.py adds -fopenmp only after a test compile succeeds), so this is the
# truth about the binary, not about the build script's intentions.
cdef extern from *:
    """
    #ifdef _OPENMP
    #define MINIVQ_COMPILED_WITH_OPENMP 1
    #else
    #define MINIVQ_COMPILED_WITH_OPENMP 0
    #endif
    """
    int MINIVQ_COMPILED_WITH_OPENMP


def openmp_enabled():
    """True when this kernel was compiled with OpenMP.

    Without OpenMP, ``prange`` in :func:`nearest_fast` runs its tiles one
    after another on the calling thread, whatever ``n_threads`` says.
    """
    return MINIVQ_COMPILED_WITH_OPENMP == 1
