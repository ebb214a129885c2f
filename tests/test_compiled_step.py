"""The compiled passes of the training step outside the matching, against the NumPy passes they replace.

Each must give the same bits, not just close numbers: training with them
must reproduce the committed study and every README number.

- ``minivq/_packed_fast.pyx``: ``gemm_add`` (out += a @ b as one GEMM with
  beta = 1) against ``out += a @ b``; ``pack_frames`` against the NumPy
  ``_pack``, strided batches and holes included; the first layer's bias and
  ReLU, and the bias gradients' column sums;
- ``minivq/_optim_fast.pyx``: ``squared_norm`` against the float64
  concatenation's ``np.sum``, ``adam_update`` against ``Adam._step``'s NumPy
  passes;
- ``minivq/_ema_fast.pyx``: ``add_rows_by_code`` against the sort and
  ``np.add.reduceat``;
- and forty training steps with all of them on against all of them off.
"""
import os

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from minivq import ema, optim
from minivq.layers import packed
from minivq.nearest import _BlasOneThread

FORCED_NUMPY = os.environ.get("MINIVQ_PUREPYTHON", "") not in ("", "0")
MODULES = [(packed, "minivq._packed_fast"), (optim, "minivq._optim_fast"), (ema, "minivq._ema_fast")]
needs_compiled = pytest.mark.skipif(FORCED_NUMPY, reason="MINIVQ_PUREPYTHON=1: the NumPy passes only")


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(np.uint8), b.view(np.uint8))


@pytest.mark.parametrize("module,name", MODULES)
def test_the_compiled_passes_are_built(module, name):
    """CI fails here when an extension did not build (no silent fallback, as for nearest_code)."""
    assert (module._fast is None) == FORCED_NUMPY, f"{name} is missing: build it with `pip install -e .`"


# --- out += a @ b -----------------------------------------------------------------------------------------

#: The products the training step adds: the speech convolutions' tap blocks of the easy and the hard
#: world (forward: xv[q:q+T] W_q, K = 3 n_mels and 3 hidden; backward: dY W_q^T, K = D).
STEP_SHAPES = [(3198, 120, 64), (1066, 192, 32), (1066, 32, 192), (4275, 120, 64), (1425, 192, 32),
               (1425, 32, 192)]


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_add_is_bitwise_the_product_and_the_add(dtype):
    rng = np.random.default_rng(0)
    shapes = STEP_SHAPES + [tuple(int(v) for v in rng.integers((2, 1, 2), (300, packed.GEMM_ADD_MAX_K + 1, 80)))
                            for _ in range(30)] + [(2, 1, 2), (5, packed.GEMM_ADD_MAX_K, 3)]
    with threadpool_limits(limits=1, user_api="blas"):
        for m, k, n in shapes:
            xp = rng.normal(size=(m + 2, k)).astype(dtype)  # a at an offset of a longer buffer, as xv[q:q + T]
            W = rng.normal(size=(n, k)).astype(dtype)
            for a, b in ((xp[2:], W.T.copy()), (xp[1:m + 1], W.T)):  # b with contiguous rows, then columns
                out = rng.normal(size=(m, n)).astype(dtype)
                expected = out.copy()
                expected += a @ b
                packed._fast.gemm_add(a, b, out)
                assert _same_bits(out, expected), (m, k, n, b.flags.c_contiguous)


@needs_compiled
def test_gemm_add_refuses_what_it_cannot_multiply():
    gemm_add = packed._fast.gemm_add
    f4 = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="do not chain"):
        gemm_add(np.zeros((4, 2), np.float32), np.zeros((3, 3), np.float32), f4)
    with pytest.raises(TypeError, match="out's dtype float32"):
        gemm_add(np.zeros((4, 2), np.float64), np.zeros((2, 3), np.float32), f4)
    with pytest.raises(ValueError, match="contiguous rows or columns"):
        gemm_add(np.zeros((4, 4), np.float32)[:, ::2], np.zeros((2, 3), np.float32), f4)
    with pytest.raises(ValueError, match="must be 2-D"):
        gemm_add(np.zeros((4, 2, 1), np.float32), np.zeros((2, 3), np.float32), f4)
    with pytest.raises(ValueError, match="C contiguous|C-contiguous"):
        gemm_add(np.zeros((4, 2), np.float32), np.zeros((2, 3), np.float32), np.zeros((3, 4), np.float32).T)


@needs_compiled
def test_matmul_add_leaves_more_threads_to_numpys_blas(monkeypatch):
    """Two BLAS libraries' thread pools on the same cores made a 2-thread step six times slower."""
    calls = []

    class Spy:
        @staticmethod
        def gemm_add(a, b, out):
            calls.append(a.shape)
            real.gemm_add(a, b, out)

    real = packed._fast
    with threadpool_limits(limits=1, user_api="blas"):
        assert packed._gemm_add_agrees()  # the probe of this machine's two BLAS libraries, before the spy
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(50, 12)), rng.normal(size=(12, 7))
    results = []
    for threads in (1, 2):
        out = np.ones((50, 7))
        with threadpool_limits(limits=threads, user_api="blas"):
            monkeypatch.setattr(packed, "_fast", Spy)
            holds = _BlasOneThread.holds()
            packed._matmul_add(a, b, out)
            monkeypatch.setattr(packed, "_fast", real)
        results.append(out)
        assert holds == (threads == 1)
    assert calls == [(50, 12)]  # only at one thread
    assert _same_bits(results[0], results[1])
    wide = rng.normal(size=(50, packed.GEMM_ADD_MAX_K + 1))  # k beyond one BLAS block: the NumPy passes
    with threadpool_limits(limits=1, user_api="blas"):
        monkeypatch.setattr(packed, "_fast", Spy)
        packed._matmul_add(wide, rng.normal(size=(wide.shape[1], 7)), np.ones((50, 7)))
    assert calls == [(50, 12)]
    with threadpool_limits(limits=1, user_api="blas"):  # a product with a vector: NumPy's GEMV, other bits
        for m, n in ((1, 7), (50, 1)):
            out, expected = np.ones((m, n)), np.ones((m, n))
            a, b = rng.normal(size=(m, 12)), rng.normal(size=(12, n))
            monkeypatch.setattr(packed, "_fast", Spy)
            packed._matmul_add(a, b, out)
            monkeypatch.setattr(packed, "_fast", real)
            expected += a @ b
            assert _same_bits(out, expected)
    assert calls == [(50, 12)]
    monkeypatch.setattr(packed, "_AGREES", False)  # a machine whose BLAS libraries disagree: NumPy only
    with threadpool_limits(limits=1, user_api="blas"):
        monkeypatch.setattr(packed, "_fast", Spy)
        packed._matmul_add(a, b, np.ones((50, 7)))
    assert calls == [(50, 12)]


# --- the pack ---------------------------------------------------------------------------------------------

def _pack_both(x, mask, k=9, s=3, monkeypatch=None):
    """(buffer, packed mask) of the compiled pack into an unzeroed buffer, and of the NumPy one into zeros."""
    pad = (k - 1) // 2
    offsets, L, extent = packed._pack_layout(mask, (k, k), (s, s))
    rows = L + 2 * pad + 5
    fast_out = np.full((rows, x.shape[2]), np.nan, dtype=x.dtype)  # garbage where the pack does not write
    fast_out[:pad] = 0
    fast_out[pad + L:] = 0
    assert packed.pack_zeroes_gaps(x, mask, x.dtype)
    fast_mask = packed._pack(x, mask, offsets, extent, L, pad, fast_out)
    real = packed._fast
    monkeypatch.setattr(packed, "_fast", None)
    ref_out = np.zeros((rows, x.shape[2]), dtype=x.dtype)
    ref_mask = packed._pack(x, mask, offsets, extent, L, pad, ref_out)
    monkeypatch.setattr(packed, "_fast", real)
    return (fast_out, fast_mask), (ref_out, ref_mask)


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_pack_is_bitwise_the_numpy_pack(dtype, monkeypatch):
    """Strided batches (a slice of longer captions, as the training batches are), holes, empty captions."""
    rng = np.random.default_rng(2)
    for trial in range(40):
        B, T, C = (int(v) for v in rng.integers(1, (12, 60, 9)))
        full = rng.normal(size=(B, T + int(rng.integers(0, 5)), C)).astype(dtype)
        x = full[:, :T]
        lengths = rng.integers(0, T + 1, size=B)
        mask = np.arange(T)[None, :] < lengths[:, None]
        if trial % 3 == 0:
            mask &= rng.random((B, T)) < 0.8  # holes: invalid frames inside a caption
        (fo, fm), (ro, rm) = _pack_both(x, mask, monkeypatch=monkeypatch)
        assert _same_bits(fo, ro) and np.array_equal(fm, rm), f"trial {trial}: B, T, C = {B}, {T}, {C}"


@needs_compiled
def test_compiled_pack_refuses_sequences_that_do_not_fit():
    pack_frames = packed._fast.pack_frames
    x = np.zeros((2, 5, 3), np.float32)
    mask = np.ones((2, 5), np.uint8)
    out, valid = np.zeros((20, 3), np.float32), np.zeros(12, np.uint8)
    ext = np.array([5, 5])
    with pytest.raises(ValueError, match="sequence 1 does not fit"):
        pack_frames(x, mask, np.array([0, 3]), ext, 2, out, valid)  # overlaps the first
    with pytest.raises(ValueError, match="sequence 1 does not fit"):
        pack_frames(x, mask, np.array([0, 9]), ext, 2, out, valid)  # beyond the packed length
    with pytest.raises(ValueError, match="at least padding"):
        pack_frames(x, mask, np.array([0, 6]), ext, 10, out, valid)
    with pytest.raises(ValueError, match="mask must be"):
        pack_frames(x, mask[:1], np.array([0, 6]), ext, 2, out, valid)
    with pytest.raises(ValueError, match="contiguous"):
        pack_frames(np.zeros((2, 5, 6), np.float32)[:, :, ::2], mask, np.array([0, 6]), ext, 2, out, valid)


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_bias_relu_and_column_sums_are_bitwise_numpys(dtype, monkeypatch):
    """The first layer's bias, ReLU and mask in one pass; the bias gradients' column sums (NaN, inf, -0.0 too)."""
    rng = np.random.default_rng(6)
    for trial in range(40):
        T, C = (int(v) for v in rng.integers(1, (400, 90)))
        if trial == 0:
            T, C = 3198, 64  # the easy world's first speech layer
        y = (rng.normal(size=(T, C)) * 10.0 ** rng.uniform(-3, 3)).astype(dtype)
        y.ravel()[rng.integers(0, T * C, size=5)] = [np.nan, np.inf, -np.inf, -0.0, 0.0]
        b, rows = rng.normal(size=C).astype(dtype), rng.random(T) < 0.8
        fast_h, ref_h = y.copy(), y.copy()
        with np.errstate(invalid="ignore"):
            fast_keep = packed.bias_relu(fast_h, b, rows)
            monkeypatch.setattr(packed, "_fast", None)
            ref_keep = packed.bias_relu(ref_h, b, rows)
            monkeypatch.undo()
        assert _same_bits(fast_h, ref_h) and _same_bits(fast_keep, ref_keep), f"trial {trial}: T, C = {T}, {C}"
        expected = np.where(rows[:, None], y + b > 0, False)
        assert np.array_equal(fast_keep, expected.astype(dtype))
        d = (rng.normal(size=(T, C)) * 10.0 ** rng.uniform(-3, 3, size=(T, 1))).astype(dtype)
        assert _same_bits(packed._column_sums(d), d.sum(axis=0)), f"trial {trial}: T, C = {T}, {C}"
    with pytest.raises(ValueError, match="b must be"):
        packed._fast.bias_relu_rows(np.zeros((3, 2)), np.zeros(3), np.ones(3, np.uint8), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="out must be"):
        packed._fast.column_sums(np.zeros((3, 2)), np.zeros(3))


# --- the optimizer ----------------------------------------------------------------------------------------

def _grads(rng, dtype, sizes=((9, 40, 64), (64,), (9, 64, 32), (32,), (32, 64), (3,), (1,))):
    return {f"p{i}": (rng.normal(size=s) * 10.0 ** rng.uniform(-4, 2)).astype(dtype) for i, s in enumerate(sizes)}


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_norm_is_bitwise_the_float64_sum(dtype, monkeypatch):
    rng = np.random.default_rng(3)
    for trial in range(20):
        grads = _grads(rng, dtype, [tuple(rng.integers(1, 50, size=rng.integers(1, 4))) for _ in range(5)])
        if trial == 0:
            grads = _grads(rng, dtype)  # the training step's sizes: about 30 000 numbers
        expected = float(np.sum(np.square(np.concatenate([g.ravel() for g in grads.values()], dtype=np.float64))))
        assert optim._fast.squared_norm(list(grads.values())) == expected
        clipped = {k: g.copy() for k, g in grads.items()}
        norm = optim._clip_grad_norm(clipped, 1e-3)
        monkeypatch.setattr(optim, "_fast", None)
        ref = {k: g.copy() for k, g in grads.items()}
        assert optim._clip_grad_norm(ref, 1e-3) == norm
        monkeypatch.undo()
        for k in grads:
            assert _same_bits(clipped[k], ref[k]), k
    mixed = {"a": np.ones(3, np.float32), "b": np.ones(2)}
    with pytest.raises(TypeError, match="C-contiguous arrays of one float dtype"):
        optim._fast.squared_norm(list(mixed.values()))
    assert optim._clip_grad_norm(mixed, 10.0) == pytest.approx(np.sqrt(5.0))  # the NumPy passes take it


@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_adam_is_bitwise_the_numpy_passes(dtype, monkeypatch):
    rng = np.random.default_rng(4)
    start = _grads(rng, dtype)
    fast_p = {k: v.copy() for k, v in start.items()}
    ref_p = {k: v.copy() for k, v in start.items()}
    fast, ref = optim.Adam(fast_p, lr=3e-3), optim.Adam(ref_p, lr=3e-3)
    for step in range(6):
        grads = _grads(rng, dtype)
        if step == 3:
            grads["p0"] = np.asfortranarray(grads["p0"])  # not C-contiguous: the NumPy passes take the step
        fast._step({k: g.copy(order="K") for k, g in grads.items()})
        monkeypatch.setattr(optim, "_fast", None)
        ref._step(grads)
        monkeypatch.undo()
        for k in start:
            assert _same_bits(fast_p[k], ref_p[k]), f"{k} at step {step}"
        for slot in ("m", "v"):
            assert _same_bits(fast._flat_state(slot), ref._flat_state(slot)), f"{slot} at step {step}"


@needs_compiled
def test_compiled_adam_checks_its_buffers():
    adam_update = optim._fast.adam_update
    p, g, m = [np.zeros(3, np.float32)], [np.zeros(3, np.float32)], np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="must hold 3 entries"):
        adam_update(p, g, m, np.zeros(2, np.float32), 0.9, 0.999, 0.1, 0.001, 1e-3, 1e-8)
    with pytest.raises(ValueError, match="size of params"):
        adam_update(p, [np.zeros(2, np.float32)], m, m.copy(), 0.9, 0.999, 0.1, 0.001, 1e-3, 1e-8)
    with pytest.raises(TypeError, match="one float dtype"):
        adam_update(p, [np.zeros(3)], m, m.copy(), 0.9, 0.999, 0.1, 0.001, 1e-3, 1e-8)
    frozen = np.zeros(3, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        adam_update([frozen], g, m, m.copy(), 0.9, 0.999, 0.1, 0.001, 1e-3, 1e-8)


# --- the EMA sums -----------------------------------------------------------------------------------------

@needs_compiled
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_rows_by_code_are_bitwise_the_reduceat(dtype, monkeypatch):
    """Codes with one row, with up to thousands (where NumPy's pairwise sum splits), codes with none."""
    rng = np.random.default_rng(5)
    for trial in range(25):
        K, D, N = int(rng.integers(1, 300)), int(rng.integers(1, 40)), int(rng.integers(0, 3000))
        k = rng.integers(0, min(K, int(rng.integers(1, 40))), size=N)  # a few codes take many rows
        X = (rng.normal(size=(N, D)) * 10.0 ** rng.uniform(-3, 3, size=(N, 1))).astype(dtype)
        start = rng.normal(size=(K, D)).astype(dtype)
        fast, ref = start.copy(), start.copy()
        ema._add_rows_by_code(fast, k, X)
        monkeypatch.setattr(ema, "_fast", None)
        ema._add_rows_by_code(ref, k, X)
        monkeypatch.undo()
        assert _same_bits(fast, ref), f"trial {trial}: K, D, N = {K}, {D}, {N}"
    with pytest.raises(ValueError, match=r"codes in \[0, 4\)"):
        ema._fast.add_rows_by_code(np.zeros((4, 2)), np.array([0, 4]), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="X must be"):
        ema._fast.add_rows_by_code(np.zeros((4, 2)), np.array([0, 1]), np.zeros((2, 3)))


# --- the whole step ---------------------------------------------------------------------------------------

@needs_compiled
def test_training_with_the_compiled_passes_is_bitwise_training_without(monkeypatch):
    """Forty steps of the full method on the demo's world: the same parameters, moments, EMA state and logs."""
    from minivq.cli.demo import load_split
    from minivq.train import TrainConfig, _train_step, batch_inputs, check_data, config_from_data, init_state

    data = load_split(("image", "speech"), "train", 96, world="hard_on_grid")
    cfg = config_from_data(data, ("image", "speech"), variant="full", dtype="float32")

    def run():
        state = init_state(cfg, TrainConfig(batch_size=32, seed=3), data)
        check_data(state, data)
        logs = []
        with threadpool_limits(limits=1, user_api="blas"):
            for step in range(40):
                rows = np.arange(32 * (step % 3), 32 * (step % 3 + 1))
                logs.append(_train_step(state, batch_inputs(data, cfg.modalities, rows)))
        return state, logs

    fast_state, fast_logs = run()
    for module, _ in MODULES:
        monkeypatch.setattr(module, "_fast", None)
    ref_state, ref_logs = run()
    assert fast_logs == ref_logs
    for k in ref_state.params:
        assert _same_bits(fast_state.params[k], ref_state.params[k]), k
    for slot in ("m", "v"):
        assert _same_bits(fast_state.optimizer._flat_state(slot), ref_state.optimizer._flat_state(slot)), slot
    for name in ("n", "m", "E"):
        assert _same_bits(getattr(fast_state.ema, name), getattr(ref_state.ema, name)), name
