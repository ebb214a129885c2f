# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False
"""Fused passes of the code distributions' forward (METHOD.md CM-1, CM-2), for training.

:func:`minivq.matching._code_distribution_forward` computes, after one matrix
product X E^T (left to NumPy's BLAS),

    sq = -2 x.e + ||x||^2 + ||e||^2,  d = sqrt(max(sq, floor)),  logit = d / -tau,
    p = softmax over the codes of each unit,  P_b = mean of p over the units of sample b,

which :func:`minivq.matching._softmax_codes_numpy` does as about fifteen
NumPy passes over (N, K) arrays, each a few microseconds of call for a few of
arithmetic. The kernels here do the same arithmetic in two passes, operation
by operation and sum by sum in the order NumPy does it, so that every result
is the same float to the bit (``tests/test_fast_paths.py`` checks it against
the NumPy passes on random shapes, NaN and inf included):

1. :func:`distances_logits`: ||x||^2 summed as ``(X * X).sum(1)`` sums a
   row (0 plus NumPy's pairwise sum), sq in place, d, the logits, and each
   unit's largest logit subtracted;
2. (NumPy: ``np.exp`` on the logits: its own vectorized exp, whose last bit
   this file does not try to reproduce);
3. :func:`normalize_codes`: each unit's sum over its codes, taken code after
   code as ``p.sum(axis=0)`` takes it on the (K, N) layout, the division,
   the (K, N) copy, and CM-2: each sample's segment of units summed as
   ``np.add.reduceat`` sums it (the first value plus the pairwise sum of the
   rest), over its count.

The module is compiled with ``-ffp-contract=off``: a fused multiply-add
would round ``-2 x.e + ||x||^2`` once instead of twice.
"""
from libc.math cimport sqrt
from libc.stdint cimport int64_t

from ._pairwise cimport _pairwise, floating


def distances_logits(floating[:, ::1] sq, const floating[:, ::1] X, const floating[::1] e_sq,
                     floating[:, ::1] d, floating[:, ::1] logits, double tau, double floor, bint squared):
    """sq <- -2 sq + ||x||^2 + e_sq[None, :] in place; d; logits = d / -tau minus each row's max.

    Parameters
    ----------
    sq : (N, K), holding X E^T on entry
    X : (N, D)
        The units; ||x||^2 is summed as ``(X * X).sum(1)`` sums it.
    e_sq : (K,)
    d : (N, K)
        sqrt(max(sq, floor)); with ``squared`` it is not written (d is sq).
    logits : (N, K)
        d / -tau, each row minus its largest entry (NaN if any is NaN, as np.max).
    tau, floor : the temperature and the floor of the squared distance, rounded to the arrays' dtype
    """
    cdef Py_ssize_t N = sq.shape[0], K = sq.shape[1], D = X.shape[1], n, k
    if X.shape[0] != N or e_sq.shape[0] != K or logits.shape[0] != N or logits.shape[1] != K:
        raise ValueError(f"shapes do not fit: sq {N} x {K}, X {X.shape[0]} x {D}, e_sq {e_sq.shape[0]}, "
                         f"logits {logits.shape[0]} x {logits.shape[1]}")
    if not squared and (d.shape[0] != N or d.shape[1] != K):
        raise ValueError(f"d must be {N} x {K}, got {d.shape[0]} x {d.shape[1]}")
    if K == 0 or N == 0:
        return
    cdef floating neg_tau = <floating>(-tau)
    cdef floating fl = <floating>floor
    cdef floating two = 2.0
    cdef floating s, v, top, x_sq
    cdef floating* row_sq
    cdef floating* row_d
    cdef floating* row_l
    cdef bint nan
    with nogil:
        for n in range(N):
            x_sq = 0.0  # (X * X).sum(1) of the row: 0 plus the pairwise sum of its run
            if D > 0:
                x_sq = x_sq + _pairwise(&X[n, 0], D, True)
            row_sq, row_d, row_l = &sq[n, 0], &d[n, 0] if not squared else &sq[n, 0], &logits[n, 0]
            for k in range(K):  # the elementwise passes, in NumPy's order (vectorized by the compiler)
                s = row_sq[k] * (-two)
                s = s + x_sq
                row_sq[k] = s + e_sq[k]
            if not squared:
                for k in range(K):
                    s = row_sq[k]
                    v = fl if s < fl else s  # np.maximum: NaN stays NaN
                    row_d[k] = sqrt(v)
            for k in range(K):
                row_l[k] = row_d[k] / neg_tau
            top, nan = row_l[0], row_l[0] != row_l[0]  # the largest logit (NaN if any is NaN, as np.max)
            for k in range(1, K):
                v = row_l[k]
                nan = nan | (v != v)
                top = v if v > top else top
            if nan:
                for k in range(K):
                    if row_l[k] != row_l[k]:
                        top = row_l[k]
                        break
            for k in range(K):
                row_l[k] = row_l[k] - top


def normalize_codes(floating[:, ::1] p_units, floating[:, ::1] p, const int64_t[::1] counts, floating[:, ::1] P):
    """The softmax's sum and division, and CM-2.

    p_units (N, K) <- each row over its sum (taken code after code, as
    ``p.sum(axis=0)`` on the (K, N) layout); p (K, N) <- the result,
    transposed; P (B, K) <- the mean of each sample's ``counts[b]``
    consecutive units, summed as ``np.add.reduceat`` sums a segment (its
    first value plus the pairwise sum of the rest), divided by the count.
    """
    cdef Py_ssize_t N = p_units.shape[0], K = p_units.shape[1], B = counts.shape[0], n, k, n0, b, start, c
    if p.shape[0] != K or p.shape[1] != N or P.shape[0] != B or P.shape[1] != K:
        raise ValueError(f"shapes do not fit: p_units {N} x {K}, p {p.shape[0]} x {p.shape[1]}, "
                         f"counts {B}, P {P.shape[0]} x {P.shape[1]}")
    start = 0
    for b in range(B):
        if counts[b] < 1:
            raise ValueError(f"counts must be >= 1, got {counts[b]} for sample {b}")
        start += counts[b]
    if start != N:
        raise ValueError(f"counts must add up to the {N} units, got {start}")
    cdef floating t0, t1, t2, t3
    if K == 0:
        return
    with nogil:
        n0 = N - N % 4
        for n in range(0, n0, 4):  # four rows at a time: four independent chains of adds
            t0, t1, t2, t3 = p_units[n, 0], p_units[n + 1, 0], p_units[n + 2, 0], p_units[n + 3, 0]
            for k in range(1, K):
                t0 = t0 + p_units[n, k]
                t1 = t1 + p_units[n + 1, k]
                t2 = t2 + p_units[n + 2, k]
                t3 = t3 + p_units[n + 3, k]
            for k in range(K):
                p_units[n, k] = p_units[n, k] / t0
                p_units[n + 1, k] = p_units[n + 1, k] / t1
                p_units[n + 2, k] = p_units[n + 2, k] / t2
                p_units[n + 3, k] = p_units[n + 3, k] / t3
        for n in range(n0, N):
            if N == 1:  # one unit: its column of the (K, N) layout is contiguous, and NumPy adds it pairwise
                t0 = 0.0
                t0 = t0 + _pairwise(&p_units[n, 0], K, False)
            else:
                t0 = p_units[n, 0]
                for k in range(1, K):
                    t0 = t0 + p_units[n, k]
            for k in range(K):
                p_units[n, k] = p_units[n, k] / t0
        for k in range(K):
            for n in range(N):
                p[k, n] = p_units[n, k]
        for k in range(K):  # CM-2
            start = 0
            for b in range(B):
                c = counts[b]
                t0 = p[k, start] + _pairwise(&p[k, start + 1], c - 1, False)
                P[b, k] = t0 / <floating>c
                start += c
