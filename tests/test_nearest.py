"""Tests of the nearest-codeword search (METHOD.md VQ-1 and section 8).

Three implementations share one contract: the NumPy reference, the Cython
teaching kernel and the Cython fast kernel (what ``nearest_code`` runs). Each
is checked against an independent brute force written here (direct
differences, accumulated in float64), for both dtypes and every layout, and
against the others. Bad inputs are fed to child processes, so a crash of the
interpreter fails the test instead of killing the run.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import minivq
from minivq.nearest import nearest_code_reference, nearest_code_teaching


def fast(X, E):
    return minivq.nearest_code(X, E)


def fast_2threads(X, E):
    return minivq.nearest_code(X, E, n_threads=2)


IMPLEMENTATIONS = {
    "reference": nearest_code_reference,
    "teaching": nearest_code_teaching,
    "fast": fast,
    "fast_2threads": fast_2threads,
}
needs_compiled = pytest.mark.skipif(minivq.BACKEND != "cython", reason="compiled kernel not in use")


def implementation(name):
    """The implementation called ``name``; skips the test when it needs the missing kernel."""
    if name != "reference" and minivq.BACKEND != "cython":
        pytest.skip("compiled kernel not in use")
    return IMPLEMENTATIONS[name]


def brute_force(X, E):
    """Independent check: every ||x - e||^2 by direct differences in float64."""
    d = ((X.astype(np.float64)[:, None, :] - E.astype(np.float64)[None, :, :]) ** 2).sum(-1)
    return d  # (N, K)


def assert_matches_brute_force(X, E, indices, sq_distances, name):
    """Indices equal the brute force wherever the best code is clearly best.

    The kernels rank by ||e||^2 - 2 x.e, whose rounding differs from the
    direct differences; where two codes are closer than that rounding, either
    is a correct answer, and the chosen one must be within it of the minimum.
    """
    d = brute_force(X, E)
    N, K = d.shape
    eps = np.finfo(X.dtype).eps
    scale = (X.astype(np.float64) ** 2).sum(1) + (E.astype(np.float64) ** 2).sum(1).max()
    tol = 64 * eps * scale  # (N,)
    assert indices.dtype == np.int64 and indices.shape == (N,), f"{name}: indices {indices.dtype} {indices.shape}"
    assert sq_distances.dtype == X.dtype and sq_distances.shape == (N,), f"{name}: distances dtype/shape"
    best = d.min(1)
    chosen = d[np.arange(N), indices]
    assert np.all(chosen - best <= tol), f"{name}: chosen code worse than the minimum by more than rounding"
    clear = np.sort(d, axis=1)[:, 1] - best > tol if K > 1 else np.ones(N, bool)
    agree = indices[clear] == d.argmin(1)[clear]
    assert agree.all(), f"{name}: {np.sum(~agree)} of {clear.sum()} clear rows disagree with brute force"
    err = np.abs(sq_distances.astype(np.float64) - best)
    assert np.all(err <= tol), f"{name}: distance error {err.max():.2e} exceeds {tol.max():.2e}"
    assert np.all(sq_distances >= 0), f"{name}: distances must be clamped at 0"


def layouts(A):
    """The same matrix in several memory layouts."""
    yield "C", np.ascontiguousarray(A)
    yield "F", np.asfortranarray(A)
    big = np.zeros((A.shape[0], 2 * A.shape[1]), A.dtype)
    big[:, ::2] = A
    yield "strided", big[:, ::2]
    yield "reversed", np.ascontiguousarray(A[::-1])[::-1]
    ro = A.copy()
    ro.setflags(write=False)
    yield "readonly", ro


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N,K,D", [(1, 1, 1), (7, 3, 5), (300, 64, 16), (2500, 37, 9), (1100, 513, 3)])
def test_matches_brute_force(impl, dtype, N, K, D):
    f = implementation(impl)
    rng = np.random.default_rng(N * 1000 + K * 10 + D)
    X = rng.standard_normal((N, D)).astype(dtype)
    E = rng.standard_normal((K, D)).astype(dtype)
    idx, dist = f(X, E)
    assert_matches_brute_force(X, E, idx, dist, impl)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_layout_gives_the_same_answer(impl, dtype):
    f = implementation(impl)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 12)).astype(dtype)
    E = rng.standard_normal((40, 12)).astype(dtype)
    want_idx, want_dist = f(X, E)
    assert_matches_brute_force(X, E, want_idx, want_dist, impl)
    for x_name, X_l in layouts(X):
        for e_name, E_l in layouts(E):
            idx, dist = f(X_l, E_l)
            np.testing.assert_array_equal(idx, want_idx, err_msg=f"{impl}: X {x_name}, E {e_name}")
            np.testing.assert_array_equal(dist, want_dist, err_msg=f"{impl}: X {x_name}, E {e_name}")


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_agree_with_reference(dtype):
    """Fast, teaching and reference kernels: the same indices on well-separated data."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((3000, 32)).astype(dtype)
    E = rng.standard_normal((100, 32)).astype(dtype)
    ref_idx, ref_dist = nearest_code_reference(X, E)
    d = brute_force(X, E)
    clear = np.sort(d, 1)[:, 1] - d.min(1) > 1e-3  # rows whose best code is clearly best
    for name in ("teaching", "fast", "fast_2threads"):
        idx, dist = IMPLEMENTATIONS[name](X, E)
        np.testing.assert_array_equal(idx[clear], ref_idx[clear], err_msg=name)
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(dist, ref_dist, rtol=rtol, atol=rtol * 64, err_msg=name)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ties_go_to_the_lowest_index(impl, dtype):
    f = implementation(impl)
    rng = np.random.default_rng(3)
    base = rng.standard_normal((5, 8)).astype(dtype)
    E = np.concatenate([base, base, base[::-1]])  # code k, k + 5 and 14 - k are copies
    X = np.concatenate([base, rng.standard_normal((50, 8)).astype(dtype)])
    idx, dist = f(X, E)
    want = brute_force(X, E).argmin(1)  # np.argmin: the first of equal minima
    np.testing.assert_array_equal(idx, want)
    assert np.all(idx < 5), "every minimum has a copy among codes 0..4, which must win"
    # a row equal to a code is at distance 0, up to the rounding of the expansion
    tol = 16 * np.finfo(dtype).eps * 2 * (base.astype(np.float64) ** 2).sum(1)
    assert np.all((dist[:5] >= 0) & (dist[:5] <= tol)), f"distances {dist[:5]} should be ~0"
    X0 = np.zeros((3, 8), dtype)  # equidistant from two codes +-e: exact tie
    E2 = np.stack([np.ones(8, dtype), -np.ones(8, dtype)])
    np.testing.assert_array_equal(f(X0, E2)[0], 0)


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_counts_give_identical_results(dtype):
    rng = np.random.default_rng(4)
    X = rng.standard_normal((5000, 20)).astype(dtype)  # several tiles, a partial last one
    E = rng.standard_normal((300, 20)).astype(dtype)
    one = minivq.nearest_code(X, E, n_threads=1)
    for t in (2, 3, 8):
        other = minivq.nearest_code(X, E, n_threads=t)
        np.testing.assert_array_equal(one[0], other[0], err_msg=f"n_threads={t}")
        np.testing.assert_array_equal(one[1], other[1], err_msg=f"n_threads={t}")


def test_array_likes_are_converted():
    idx, dist = minivq.nearest_code([[0.0, 0.0], [2.0, 2.1]], [[0.0, 0.1], [2.0, 2.0]])
    np.testing.assert_array_equal(idx, [0, 1])
    assert dist.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_batch(dtype):
    idx, dist = minivq.nearest_code(np.empty((0, 4), dtype), np.ones((3, 4), dtype))
    assert idx.shape == (0,) and idx.dtype == np.int64
    assert dist.shape == (0,) and dist.dtype == dtype


BAD_INPUTS = [
    # (X, E, kwargs, exception, words the message must contain)
    ("np.ones((3, 2), np.int64)", "np.ones((4, 2))", {}, TypeError, ["X", "float32 or float64", "int64"]),
    ("np.ones((3, 2), np.float32)", "np.ones((4, 2))", {}, TypeError, ["same dtype", "float32", "float64"]),
    ("np.ones((3, 2), bool)", "np.ones((4, 2), bool)", {}, TypeError, ["X", "bool"]),
    ("np.ones(3)", "np.ones((4, 3))", {}, ValueError, ["X", "2-D", "(3,)"]),
    ("np.ones((3, 2))", "np.ones((4, 2, 1))", {}, ValueError, ["E", "2-D", "(4, 2, 1)"]),
    ("np.ones((3, 2))", "np.ones((0, 2))", {}, ValueError, ["E", "K >= 1", "(0, 2)"]),
    ("np.ones((3, 0))", "np.ones((4, 0))", {}, ValueError, ["E", "D >= 1"]),
    ("np.ones((3, 2))", "np.ones((4, 5))", {}, ValueError, ["X", "D = 5", "(3, 2)"]),
    ("np.array([[1.0, np.nan]])", "np.ones((4, 2))", {}, ValueError, ["X", "finite", "nan"]),
    ("np.ones((3, 2))", "np.array([[np.inf, 1.0]])", {}, ValueError, ["E", "finite", "inf"]),
    ("np.full((3, 2), 1e30, np.float32)", "np.ones((4, 2), np.float32)", {}, ValueError, ["X", "overflows"]),
    ("np.ones((3, 2))", "np.ones((4, 2))", {"n_threads": 0}, ValueError, ["n_threads", ">= 1", "0"]),
    ("np.ones((3, 2))", "np.ones((4, 2))", {"n_threads": 1.5}, TypeError, ["n_threads", "float"]),
    ("np.ones((3, 2))", "np.ones((4, 2))", {"n_threads": True}, TypeError, ["n_threads", "bool"]),
    ("np.ones((3, 2))", "np.ones((4, 2))", {"n_threads": "2"}, TypeError, ["n_threads", "str"]),
]


@pytest.mark.parametrize("X,E,kwargs,exc,words", BAD_INPUTS, ids=range(len(BAD_INPUTS)))
def test_bad_input_raises_a_clear_error(X, E, kwargs, exc, words):
    with pytest.raises(exc) as info:
        minivq.nearest_code(eval(X), eval(E), **kwargs)
    msg = str(info.value)
    for w in words:
        assert w in msg, f"message {msg!r} should mention {w!r}"


@needs_compiled
@pytest.mark.parametrize("X,E,kwargs,exc,words", BAD_INPUTS[:11], ids=range(11))
def test_teaching_kernel_validates_too(X, E, kwargs, exc, words):
    with pytest.raises(exc):
        nearest_code_teaching(eval(X), eval(E))


CRASH_BATTERY = textwrap.dedent(
    """
    import numpy as np, minivq
    from minivq.nearest import nearest_code_reference, nearest_code_teaching
    f32, f64 = np.float32, np.float64
    cases = [
        (np.ones((3, 2), f32)[:, ::-1], np.ones((4, 2), f32)[::-1]),
        (np.ones((3, 2)), np.ones((4, 2)).T),
        (np.ones((0, 0)), np.ones((0, 0))),
        (np.ones((5, 3)), np.ones((1, 3))),
        (np.float64(1.0), np.ones((4, 2))),
        (None, np.ones((4, 2))),
        ("abc", np.ones((4, 2))),
        (np.array([[1, 2]], dtype=object), np.ones((4, 2))),
        (np.ones((3, 2), np.complex128), np.ones((4, 2), np.complex128)),
        (np.ones((3, 2), np.float16), np.ones((4, 2), np.float16)),
        (np.ones((2**16 + 3, 1), f32), np.ones((1, 1), f32)),
        (np.ones((3, 2)), np.full((4, 2), np.finfo(f64).max)),
        (np.full((3, 2), -np.inf), np.ones((4, 2))),
        (np.ones((3, 2)), np.ones((4, 2))),
    ]
    threads = [None, 1, 2, 10**6, 0, -3, 2.0, np.int64(2), np.int8(1)]
    for X, E in cases:
        for f in (minivq.nearest_code, nearest_code_reference, nearest_code_teaching):
            try:
                f(X, E)
            except (TypeError, ValueError, RuntimeError):
                pass
        for t in threads:
            try:
                minivq.nearest_code(X, E, n_threads=t)
            except (TypeError, ValueError):
                pass
    print("survived")
    """
)


def test_bad_inputs_never_crash_the_interpreter():
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-c", CRASH_BATTERY], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, f"child exited with {proc.returncode}: {proc.stderr[-2000:]}"
    assert "survived" in proc.stdout


def test_backend_reports_the_compiled_kernel():
    """CI fails here when the Cython kernel did not build (STYLE.md: no silent fallback)."""
    from minivq.env import env_flag

    forced = env_flag("MINIVQ_PUREPYTHON")
    if forced:
        assert minivq.BACKEND == "numpy"
    else:
        assert minivq.BACKEND == "cython", (
            f"the compiled kernel is missing ({minivq.nearest._compiled_error}); "
            "build it with `pip install -e .`"
        )


def test_purepython_env_forces_numpy_and_gives_the_same_answer():
    code = (
        "import numpy as np, minivq; rng = np.random.default_rng(0);"
        "X = rng.standard_normal((500, 8)); E = rng.standard_normal((30, 8));"
        "i, d = minivq.nearest_code(X, E); print(minivq.BACKEND, i.sum(), repr(float(d.sum())))"
    )
    env = dict(os.environ, MINIVQ_PUREPYTHON="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    backend, idx_sum, dist_sum = out.stdout.split()
    assert backend == "numpy"
    rng = np.random.default_rng(0)
    X, E = rng.standard_normal((500, 8)), rng.standard_normal((30, 8))
    i, d = minivq.nearest_code(X, E)
    assert int(idx_sum) == i.sum()
    assert abs(float(dist_sum) - d.sum()) < 1e-9 * d.sum()


@needs_compiled
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_agrees_with_faiss(layout):
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(5)
    X = rng.standard_normal((4000, 24), dtype=np.float32)
    E = rng.standard_normal((128, 24), dtype=np.float32)
    X_l = dict(layouts(X))[layout]
    index = faiss.IndexFlatL2(24)
    index.add(E)
    f_dist, f_idx = index.search(X, 1)
    idx, dist = minivq.nearest_code(X_l, E)
    d = brute_force(X, E)
    clear = np.sort(d, 1)[:, 1] - d.min(1) > 1e-3
    np.testing.assert_array_equal(idx[clear], f_idx[clear, 0])
    np.testing.assert_allclose(dist, f_dist[:, 0], rtol=1e-4, atol=1e-4)


@needs_compiled
def test_a_kernel_that_declines_leaves_the_answer_to_the_reference(monkeypatch):
    """The kernel sums squared norms in its own order; when it finds one that is not finite (at the
    edge of overflow, or the NaN units of a diverged model inside a checked training step) it does
    not search, and the reference, whose norms the entry check computed, answers instead."""
    class KernelDeclines:
        TILE_MAX_ROWS = minivq.nearest._fast.TILE_MAX_ROWS

        @staticmethod
        def nearest_fast(*args):
            return 1

    rng = np.random.default_rng(6)
    X, E = rng.standard_normal((40, 3)), rng.standard_normal((5, 3))
    want = nearest_code_reference(X, E)
    monkeypatch.setattr(minivq.nearest, "_fast", KernelDeclines)
    for got, ref in zip(minivq.nearest_code(X, E), want):
        np.testing.assert_array_equal(got, ref)


# --- issue 10 regressions: the tie rule in all three implementations; compiled entries ---------

@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_identical_codewords_go_to_the_first_copy(impl):
    """The GEMM rounded 9 copies of one float32 codeword differently and picked copy 8 (issue 10)."""
    f = implementation(impl)
    E = np.tile(np.random.default_rng(2).standard_normal(64).astype(np.float32), (9, 1))
    X = np.random.default_rng(1002).standard_normal((1, 64)).astype(np.float32)
    np.testing.assert_array_equal(f(X, E)[0], [0])
    rng = np.random.default_rng(7)
    for dtype in (np.float32, np.float64):
        base = rng.standard_normal((6, 40)).astype(dtype)
        E = base[rng.integers(0, 6, size=50)]  # 50 codes, each a copy of one of 6
        X = np.concatenate([base, rng.standard_normal((300, 40)).astype(dtype)])
        idx, _ = f(X, E)
        first = {}
        for k, row in enumerate(E):
            first.setdefault(row.tobytes(), k)
        lowest = np.array([first[row.tobytes()] for row in E])
        np.testing.assert_array_equal(idx, lowest[idx], err_msg=f"{impl} {dtype.__name__}: a later copy won")
        d = brute_force(X, E)
        np.testing.assert_array_equal(idx[:6], d[:6].argmin(1), err_msg="rows equal to a code")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_signed_zeros_and_equal_norms_are_handled(impl):
    """-0.0 and 0.0 make equal codewords; distinct codewords with equal norms (one-hot) stay distinct."""
    f = implementation(impl)
    E = np.array([[0.0, 1.0], [-0.0, 1.0], [1.0, 0.0]])
    assert f(np.array([[0.1, 2.0]]), E)[0].tolist() == [0]
    K = 300
    E = np.eye(K)  # every norm is 1, no two rows equal
    X = np.eye(K)[::-1] * 2.0
    np.testing.assert_array_equal(f(X, E)[0], np.arange(K)[::-1])


COMPILED_ENTRY_BATTERY = textwrap.dedent(
    """
    import numpy as np
    from minivq import _nearest_fast, _nearest_teaching
    f64, i64 = np.float64, np.int64
    X, E = np.ones((5, 3)), np.ones((4, 3))
    good = dict(x_sq=np.empty(5), e_sq=np.empty(4), idx=np.empty(5, i64), d=np.empty(5),
                scratch=np.empty((2, 4, 8)))
    bad = [dict(x_sq=np.empty(1)), dict(e_sq=np.empty(1)), dict(idx=np.empty(1, i64)), dict(d=np.empty(0)),
           dict(scratch=np.empty((1, 4, 8))), dict(scratch=np.empty((2, 1, 8))), dict(scratch=np.empty((2, 4, 0))),
           dict(scratch=np.empty((2, 4, 2000)))]
    raised = 0
    for change in bad:
        a = {**good, **change}
        try:
            _nearest_fast.nearest_fast(X, E, a["x_sq"], a["e_sq"], a["idx"], a["d"], a["scratch"], 2)
        except ValueError:
            raised += 1
    for Xb, Eb in ((X, np.ones((4, 2))), (X, np.ones((0, 3))), (np.ones((5, 0)), np.ones((4, 0)))):
        try:
            _nearest_fast.nearest_fast(Xb, Eb, np.empty(5), np.empty(len(Eb)), np.empty(5, i64), np.empty(5),
                                       np.empty((1, max(len(Eb), 1), 8)), 1)
        except ValueError:
            raised += 1
    for n_threads in (0, -1, 3):
        try:
            _nearest_fast.nearest_fast(X, E, np.empty(5), np.empty(4), np.empty(5, i64), np.empty(5),
                                       np.empty((2, 4, 8)), n_threads)
        except ValueError:
            raised += 1
    for change in ({"e_sq": np.empty(1)}, {"idx": np.empty(2, i64)}, {"d": np.empty(9)}):
        a = {**good, **change}
        try:
            _nearest_teaching.nearest_teaching(X, E, a["e_sq"], a["idx"], a["d"])
        except ValueError:
            raised += 1
    for Eb in (np.ones((4, 2)), np.ones((0, 3))):
        try:
            _nearest_teaching.nearest_teaching(X, Eb, np.empty(len(Eb)), np.empty(5, i64), np.empty(5))
        except ValueError:
            raised += 1
    print("raised", raised)
    """
)


@needs_compiled
def test_compiled_entries_check_their_buffers():
    """Undersized outputs or scratch crashed the interpreter ("double free or corruption")."""
    proc = subprocess.run([sys.executable, "-c", COMPILED_ENTRY_BATTERY], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"child exited with {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout.split() == ["raised", "19"], proc.stdout


def test_ragged_lists_are_a_named_error():
    with pytest.raises(ValueError, match="X must be an array .*ragged"):
        minivq.nearest_code([[1.0, 2.0], [3.0]], np.ones((2, 2)))
