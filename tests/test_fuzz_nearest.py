"""Fuzz of the nearest-codeword search and its compiled entries, in a child process (issue 10).

The public functions must give the documented result (checked against a
brute force in float64, with the tie rule of minivq.nearest) or a named
ValueError/TypeError; the raw compiled entries, given buffers of any shape,
dtype or layout, must compute or raise, never crash. Machinery: tests/fuzz/.
"""
import numpy as np
from fuzz.oracle import Either, WrongResult, arr, integer, need
from fuzz.runner import Spec, run_area_in_child
from fuzz.values import dims, dtype_of, floats
from hypothesis import strategies as st

import minivq
from minivq import nearest


def draw_search(data, threads=True):
    N, = dims(data, "N", low=0, high=6)
    K, D = dims(data, "K", "D", high=5)
    dt = dtype_of(data)
    a = {"X": floats(data, (N, D), dt), "E": floats(data, (K, D), dt)}
    if data.draw(st.booleans(), label="copies") and K > 1:  # equal codewords: the tie rule
        a["E"][1:] = a["E"][data.draw(st.integers(0, K - 1), label="copy of")]
    if threads:
        a["n_threads"] = data.draw(st.sampled_from([None, 1, 2, 3]), label="n_threads")
    return a


def search_inputs(a):
    """The contract of nearest_code's X and E; also returns whether the norms are near overflow."""
    X = arr(a["X"], "X", ndim=2, finite=False)
    E = arr(a["E"], "E", ndim=2, finite=False)
    need(X.dtype == E.dtype, "X", "E")
    need(E.shape[0] >= 1 and E.shape[1] >= 1, "E")
    need(X.shape[1] == E.shape[1], "X", "E")
    return X, E


def check_search(X, E):
    """Brute force in float64: the chosen code is a minimum up to rounding, the first of equal copies."""
    Xd, Ed = X.astype(np.float64), E.astype(np.float64)
    d = ((Xd[:, None, :] - Ed[None, :, :]) ** 2).sum(-1)  # (N, K)
    tol = 64 * np.finfo(X.dtype).eps * ((Xd ** 2).sum(1) + (Ed ** 2).sum(1).max()) + 64 * np.finfo(X.dtype).tiny
    first = np.array([np.flatnonzero((E == E[k]).all(1))[0] for k in range(len(E))])

    def check(r):
        idx, dist = r
        if not (isinstance(idx, np.ndarray) and idx.dtype == np.int64 and idx.shape == (len(X),)):
            raise WrongResult(f"indices {idx!r}")
        if not (isinstance(dist, np.ndarray) and dist.dtype == X.dtype and dist.shape == (len(X),)):
            raise WrongResult(f"sq_distances {dist!r}")
        if len(X) == 0:
            return
        if idx.min() < 0 or idx.max() >= len(E):
            raise WrongResult(f"codes out of range: {idx}")
        rows = np.arange(len(X))
        if not (d[rows, idx] - d.min(1) <= tol).all():
            raise WrongResult(f"a code worse than the minimum beyond rounding: {idx} vs {d.argmin(1)}")
        if not (first[idx] == idx).all():
            raise WrongResult(f"a later copy of an equal codeword won: {idx}, first copies {first[idx]}")
        if not ((dist >= 0) & (np.abs(dist - d.min(1)) <= tol)).all():
            raise WrongResult(f"sq_distances {dist} vs {d.min(1)}")
    return check


def expect_search(a, threads=True):
    if threads and a["n_threads"] is not None:
        integer(a["n_threads"], "n_threads", 1)
    X, E = search_inputs(a)
    need(np.isfinite(X).all(), "X")
    need(np.isfinite(E).all(), "E")
    with np.errstate(over="ignore"):
        top = (X.astype(np.float64) ** 2).sum(1).max(initial=0) + (E.astype(np.float64) ** 2).sum(1).max()
    check = check_search(X, E)
    if top > float(np.finfo(X.dtype).max) / 4:  # at the edge of overflow: the answer or a named refusal
        return Either(check, "X", "E")
    return check


def expect_check_arrays(a):
    X, E = search_inputs(a)

    def check(r):
        for out, ref in zip(r, (X, E), strict=True):
            if not (out.flags.c_contiguous and np.array_equal(out, ref, equal_nan=True) and out.dtype == ref.dtype):
                raise WrongResult("check_arrays must return C-contiguous copies of equal values")
    return check


def expect_validate(a):
    search = expect_search(a, threads=False)
    X, E = search_inputs(a)

    def check(r):
        Xc, Ec, x_sq, e_sq = r
        for sq, A in ((x_sq, X), (e_sq, E)):
            ref = (A.astype(np.float64) ** 2).sum(1)
            if not np.allclose(sq, ref, rtol=64 * np.finfo(A.dtype).eps, atol=64 * np.finfo(A.dtype).tiny):
                raise WrongResult(f"squared norms {sq} vs {ref}")
    return Either(check, *search.names) if isinstance(search, Either) else check


# ------------------------------------------------------------------ the raw compiled entries
def draw_raw(data):
    """Buffers for minivq._nearest_fast.nearest_fast: right most of the time, any shape sometimes."""
    N, K, D = dims(data, "N", "K", "D", low=0, high=5)
    dt = dtype_of(data)
    threads = data.draw(st.integers(-1, 4), label="threads")
    tile = data.draw(st.sampled_from([0, 1, 2, 8, 2000]), label="tile_rows")
    return {"X": floats(data, (N, D), dt), "E": floats(data, (K, D), dt), "x_sq": np.empty(N, dt),
            "e_sq": np.empty(K, dt), "indices": np.empty(N, np.int64), "sq_distances": np.empty(N, dt),
            "scratch": np.empty((max(threads, 0), K, tile), dt), "n_threads": threads}


def expect_raw(a):
    """Anything goes but a crash: a result, or any ValueError/TypeError/BufferError (an internal entry:
    the buffer protocol's own errors say what is wrong with a buffer)."""
    return Either(lambda r: None, "*")


def raw_fast(X, E, x_sq, e_sq, indices, sq_distances, scratch, n_threads):
    return minivq.nearest._fast.nearest_fast(X, E, x_sq, e_sq, indices, sq_distances, scratch, n_threads)


def raw_teaching(X, E, x_sq, e_sq, indices, sq_distances, scratch, n_threads):
    from minivq import _nearest_teaching
    return _nearest_teaching.nearest_teaching(X, E, e_sq, indices, sq_distances)


RAW_ERRORS = (ValueError, TypeError, BufferError)

SPECS = [
    Spec("nearest_code", minivq.nearest_code, draw_search, expect_search, weight=2),
    Spec("nearest_code_reference", nearest.nearest_code_reference, lambda d: draw_search(d, False),
         lambda a: expect_search(a, False)),
    Spec("check_arrays", nearest.check_arrays, lambda d: draw_search(d, False), expect_check_arrays),
    Spec("validate_inputs", nearest.validate_inputs, lambda d: draw_search(d, False), expect_validate),
]
if minivq.BACKEND == "cython":
    SPECS += [
        Spec("nearest_code_teaching", nearest.nearest_code_teaching, lambda d: draw_search(d, False),
             lambda a: expect_search(a, False)),
        Spec("_nearest_fast.nearest_fast", raw_fast, draw_raw, expect_raw, weight=2, errors=RAW_ERRORS),
        Spec("_nearest_teaching.nearest_teaching", raw_teaching, draw_raw, expect_raw, errors=RAW_ERRORS),
    ]


def test_fuzz_in_a_child_process():
    report = run_area_in_child("test_fuzz_nearest")
    assert not report["failures"], "\n\n".join(report["failures"])

