"""Hidden checks of the nearest-codeword search (VQ-1): sizes drawn at grading time, partial blocks, ties."""
import numpy as np
from _draw import integer, setup

from minivq.nearest import nearest_code_reference, nearest_code_teaching


def _assert_nearest(X, E, idx, dist, what):
    N = len(X)
    assert idx.shape == (N,) and idx.dtype == np.int64, f"{what}: indices of shape {idx.shape} {idx.dtype}, " \
                                                        f"expected ({N},) int64"
    assert dist.shape == (N,) and dist.dtype == X.dtype, f"{what}: distances {dist.shape} {dist.dtype}"
    x64, e64 = X.astype(np.float64), E.astype(np.float64)
    eps = np.finfo(X.dtype).eps
    for start in range(0, N, 256):  # by row blocks: the (rows, K) differences stay small
        d = ((x64[start:start + 256, None, :] - e64[None]) ** 2).sum(-1)
        rows = np.arange(len(d))
        tol = 64 * eps * ((x64[start:start + 256] ** 2).sum(1) + (e64 ** 2).sum(1).max())
        got = idx[start:start + 256]
        bad = np.flatnonzero((got < 0) | (got >= len(E)))
        assert not bad.size, f"{what}: row {start + bad[0]} gets code {got[bad[0]]}, outside 0..{len(E) - 1}"
        off = np.flatnonzero(d[rows, got] - d.min(1) > tol)
        assert not off.size, f"{what}: row {start + off[0]} of {N} gets code {got[off[0]]}, not the nearest " \
                             f"({int(d[off[0]].argmin())})"
        np.testing.assert_allclose(dist[start:start + 256], d[rows, got], rtol=1e-3 if X.dtype == np.float32 else
                                   1e-9, atol=float(tol.max()), err_msg=f"{what}: squared distances")


def _case(rng, dtype, n_max, k_max, d_max):
    N, K, D = integer(rng, 1, n_max), integer(rng, 1, k_max), integer(rng, 1, d_max)
    X = rng.standard_normal((N, D)).astype(dtype)
    E = rng.standard_normal((K, D)).astype(dtype)
    if K > 2:  # a copy of a code: the lower index must win the tie
        j = integer(rng, 1, K - 1)
        E[j] = E[integer(rng, 0, j - 1)]
    return X, E


def _check(request, nearest, *sizes):
    rng, note = setup(request)
    for dtype in (np.float64, np.float32, np.float64):
        X, E = _case(rng, dtype, *sizes)
        note(N=len(X), K=len(E), D=X.shape[1], dtype=np.dtype(dtype).name)
        idx, dist = nearest(X, E)
        _assert_nearest(X, E, idx, dist, f"N={len(X)}, K={len(E)}, D={X.shape[1]}")


def test_nearest_reference_at_fresh_sizes(request):
    _check(request, nearest_code_reference, 2600, 300, 20)


def test_nearest_teaching_at_fresh_sizes_with_partial_blocks(request):
    _check(request, nearest_code_teaching, 700, 90, 33)
