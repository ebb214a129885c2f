"""Fast paths of the training step against the references kept beside them.

- ``minivq.matching._code_distribution_forward`` (code-major softmax, one
  reduceat for CM-2) against ``_code_distribution_forward_reference`` (the
  equations in order): the same distances to the bit, the same P and p to
  rounding, and the same backward from either cache; its compiled passes
  (``minivq/_matching_fast.pyx``) against its NumPy passes: the same bits;
- ``Adam._step`` (all parameters as one flat buffer) against the
  per-parameter ``_update``: the same bits, step after step;
- ``clip_grad_norm`` (one float64 buffer) against the per-key sum;
- the image encoder's first layer (``_affine_backward(..., need_dx=False)``)
  against the full ``_affine_backward``; ReLU by a mask product against ``np.where``;
  ``_add_rows_by_code`` against its previous version (and ``np.add.at``,
  to rounding); the model's encoder parameter
  names against ``param_shapes``; the dead-code restart inside the training
  step, which gathers the units only when a code is dead.
"""
import os

import numpy as np
import pytest

from minivq import matching, model
from minivq._encoder_checks import param_shapes
from minivq.config import MODALITIES, ModelConfig
from minivq.ema import _add_rows_by_code
from minivq.layers.dense import _affine_backward, _affine_forward, _relu_backward, _relu_forward
from minivq.optim import SGD, Adam, _Optimizer, clip_grad_norm


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("squared", [False, True])
def test_code_distribution_forward_equals_the_reference(dtype, tol, squared):
    rng = np.random.default_rng(11 + squared)
    B, T, D, K = 6, 9, 5, 7
    H = rng.normal(size=(B, T, D)).astype(dtype)
    M = rng.random((B, T)) > 0.4
    M[:, 0] = True
    E = rng.normal(size=(K, D)).astype(dtype)
    H[2, 3], M[2, 3] = E[4], True  # a unit on a codeword: its distance is rounding noise near the floor
    P0, c0 = matching._code_distribution_forward_reference(H, M, E, 0.3, squared)
    P1, c1 = matching._code_distribution_forward(H, M, E, 0.3, squared)
    assert P1.dtype == dtype and P1.flags.c_contiguous
    np.testing.assert_allclose(P1, P0, rtol=tol, atol=tol)
    for name, a, b in zip(("sq", "d", "p"), c0[3:6], c1[3:6]):
        assert b.shape == a.shape and b.dtype == a.dtype and b.flags.c_contiguous, name
        if name == "p":
            np.testing.assert_allclose(b, a, rtol=tol, atol=tol, err_msg=name)
        else:  # the distances are the reference's arrays, to the bit
            np.testing.assert_array_equal(b, a, err_msg=name)
    np.testing.assert_allclose(c1[8][0], c0[8][0], rtol=tol, atol=0)  # the masked mean's weights
    dP = rng.normal(size=P0.shape).astype(dtype)
    for g0, g1 in zip(matching.code_distribution_backward(dP, c0), matching.code_distribution_backward(dP, c1)):
        np.testing.assert_allclose(g1, g0, rtol=tol, atol=tol * np.abs(g0).max())


def _bitwise_equal(a, b):
    """Same dtype, shape and bits (NaN where NaN, whatever its payload)."""
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    return (a.dtype == b.dtype and a.shape == b.shape and np.array_equal(nan_a, nan_b)
            and np.array_equal(np.where(nan_a, 0, a).view(np.uint8), np.where(nan_b, 0, b).view(np.uint8)))


def test_compiled_code_distribution_passes_are_built():
    """CI fails here when minivq/_matching_fast.pyx did not build (no silent fallback, as for nearest_code)."""
    forced = os.environ.get("MINIVQ_PUREPYTHON", "") not in ("", "0")
    assert (matching._fast is None) == forced, "minivq._matching_fast is missing: build it with `pip install -e .`"


@pytest.mark.skipif(matching._fast is None, reason="the compiled minivq._matching_fast is not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_code_distribution_is_bitwise_the_numpy_passes(dtype, monkeypatch):
    """The fused passes of CM-1 and CM-2 (minivq/_matching_fast.pyx) against the NumPy passes: the same bits.

    Shapes from one unit (where NumPy sums a unit's codes pairwise) to D above
    128 (where its pairwise sum splits), units on a codeword (near the floor),
    NaN and inf in the units, both distances."""
    rng = np.random.default_rng(7)
    fast = matching._fast
    for trial in range(120):
        B, T, K, D = rng.integers(1, 12), rng.integers(1, 40), rng.integers(1, 70), rng.integers(1, 300)
        H = (rng.normal(size=(B, T, D)) * rng.choice([0.01, 1.0, 10.0])).astype(dtype)
        M = rng.random((B, T)) < rng.random()
        M[:, rng.integers(T)] = True
        E = rng.normal(size=(K, D)).astype(dtype)
        H[0, np.flatnonzero(M[0])[0]] = E[0]
        if trial % 7 == 0:
            H[-1, np.flatnonzero(M[-1])[-1], 0] = np.nan
        if trial % 11 == 0:
            H[0, np.flatnonzero(M[0])[-1], -1] = np.inf
        tau = float(rng.choice([0.07, 0.1, 0.3, 1.0]))
        for squared in (False, True):
            with np.errstate(all="ignore"):
                monkeypatch.setattr(matching, "_fast", None)
                P0, c0 = matching._code_distribution_forward(H, M, E, tau, squared)
                monkeypatch.setattr(matching, "_fast", fast)
                P1, c1 = matching._code_distribution_forward(H, M, E, tau, squared)
            where = f"trial {trial}: B, T, K, D = {B}, {T}, {K}, {D}, squared={squared}"
            assert _bitwise_equal(P0, P1), where
            for name, a, b in zip(("X", "E", "sq", "d", "p"), c0[1:6], c1[1:6]):
                assert _bitwise_equal(a, b) and b.flags.c_contiguous, f"{name}, {where}"


@pytest.mark.skipif(matching._fast is None, reason="the compiled minivq._matching_fast is not built")
def test_compiled_code_distribution_refuses_shapes_that_do_not_fit():
    """The kernels check their buffers' shapes: no call from Python reads or writes out of bounds."""
    fast = matching._fast
    f4 = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="shapes do not fit"):
        fast.distances_logits(f4, np.zeros((5, 2), np.float32), np.zeros(3, np.float32), f4.copy(), f4.copy(),
                              0.1, 1e-12, False)
    with pytest.raises(ValueError, match="d must be 4 x 3"):
        fast.distances_logits(f4, np.zeros((4, 2), np.float32), np.zeros(3, np.float32), np.zeros((3, 3), np.float32),
                              f4.copy(), 0.1, 1e-12, False)
    p_kn, P = np.zeros((3, 4), np.float32), np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="add up to the 4 units"):
        fast.normalize_codes(f4.copy(), p_kn, np.array([1, 2]), P)
    with pytest.raises(ValueError, match="counts must be >= 1"):
        fast.normalize_codes(f4.copy(), p_kn, np.array([4, 0]), P)
    with pytest.raises(ValueError, match="shapes do not fit"):
        fast.normalize_codes(f4.copy(), np.zeros((4, 3), np.float32), np.array([2, 2]), P)
    with pytest.raises(ValueError, match="Buffer dtype mismatch|No matching signature"):
        fast.normalize_codes(f4.copy(), p_kn, np.array([2, 2]), P.astype(np.float64))


def _params(rng, dtypes=(np.float32,)):
    shapes = [(9, 4, 3), (3,), (5, 2), (2,), (1,)]
    return {f"p{i}": rng.normal(size=s).astype(dtypes[i % len(dtypes)]) for i, s in enumerate(shapes)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_flat_adam_is_bitwise_the_per_parameter_update(dtype):
    rng = np.random.default_rng(0)
    p_flat, p_ref = _params(rng, (dtype,)), None
    p_ref = {k: v.copy() for k, v in p_flat.items()}
    fast, ref = Adam(p_flat, lr=1e-2), Adam(p_ref, lr=1e-2)
    assert fast._flat_state("m") is not None
    for step in range(5):
        grads = {k: rng.normal(size=v.shape).astype(dtype) for k, v in p_flat.items()}
        fast._step({k: g.copy() for k, g in grads.items()})
        _Optimizer._step(ref, grads)  # the per-parameter path
        for k in p_flat:
            np.testing.assert_array_equal(p_flat[k], p_ref[k], err_msg=f"{k} at step {step}")
            for slot in ("m", "v"):
                np.testing.assert_array_equal(fast.state[slot][k], ref.state[slot][k])
    state = fast.state_dict()  # round trip: the state stays views of the flat buffers
    again = Adam({k: v.copy() for k, v in p_flat.items()}, lr=1e-2)
    again.load_state_dict(state)
    assert again._flat_state("m") is not None and again.t == fast.t
    grads = {k: rng.normal(size=v.shape).astype(dtype) for k, v in p_flat.items()}
    fast._step(grads)
    again._step(grads)
    for k in p_flat:
        np.testing.assert_array_equal(fast.params[k], again.params[k])


def test_adam_falls_back_per_parameter():
    rng = np.random.default_rng(1)
    mixed = _params(rng, (np.float32, np.float64))
    opt = Adam(mixed, lr=1e-2)
    assert opt._flat_state("m") is None
    before = {k: v.copy() for k, v in mixed.items()}
    opt.step({k: np.ones_like(v) for k, v in mixed.items()})
    for k in mixed:
        assert mixed[k].dtype == before[k].dtype and np.all(mixed[k] < before[k])
    decayed = _params(rng)
    ref = {k: v.copy() for k, v in decayed.items()}
    a, b = Adam(decayed, lr=1e-2, weight_decay=0.1), Adam(ref, lr=1e-2, weight_decay=0.1)
    grads = {k: rng.normal(size=v.shape).astype(v.dtype) for k, v in decayed.items()}
    a._step(grads)
    _Optimizer._step(b, grads)
    for k in decayed:
        np.testing.assert_array_equal(decayed[k], ref[k])
    replaced = Adam(_params(rng), lr=1e-2)
    replaced.state["m"]["p0"] = np.zeros_like(replaced.state["m"]["p0"])  # no longer a view: per parameter
    assert replaced._flat_state("m") is None
    sgd = SGD(_params(rng), lr=0.1)
    assert sgd.state["v"]["p0"].base is sgd._flat["v"]


def test_clip_grad_norm_matches_the_per_key_norm_and_names_the_culprit():
    rng = np.random.default_rng(2)
    grads = {k: v * 10 for k, v in _params(rng, (np.float32, np.float64)).items()}
    expected = float(np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in grads.values())))
    before = {k: g.copy() for k, g in grads.items()}
    norm = clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(expected, rel=1e-14)
    for k, g in grads.items():
        np.testing.assert_allclose(g, before[k] * (1.0 / expected), rtol=1e-6)
    bad = {k: g.copy() for k, g in before.items()}
    bad["p3"][0] = np.nan
    with pytest.raises(ValueError, match=r"grads\['p3'\] is not finite"):
        clip_grad_norm(bad, 1.0)
    assert clip_grad_norm({}, 1.0) == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_first_layer_gradients_are_bitwise_affine_backward(dtype):
    rng = np.random.default_rng(3)
    x, W, b = (rng.normal(size=s).astype(dtype) for s in ((4, 6, 5), (5, 3), (3,)))
    _, cache = _affine_forward(x, W, b)
    dout = rng.normal(size=(4, 6, 3)).astype(dtype)
    _, dW, db = _affine_backward(dout, cache)
    dx1, dW1, db1 = _affine_backward(dout, cache, need_dx=False)
    assert dx1 is None
    np.testing.assert_array_equal(dW1, dW)
    np.testing.assert_array_equal(db1, db)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_by_mask_product_is_np_where(dtype):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(7, 9)).astype(dtype)
    x[0, :3] = 0.0
    out, cache = _relu_forward(x)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, np.where(x > 0, x, 0))
    dout = rng.normal(size=x.shape).astype(dtype)
    dx = _relu_backward(dout, cache)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, np.where(x > 0, dout, 0))


def _add_rows_by_code_before(sums, k, X):
    """The version before the codes were sorted as small ints and grouped by their bincount."""
    order = np.argsort(k, kind="stable")
    codes = k[order]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    sums[codes[starts]] += np.add.reduceat(X[order].astype(sums.dtype, copy=False), starts, axis=0)


@pytest.mark.parametrize("K", [5, 300])  # codes as uint8, then uint16
def test_add_rows_by_code_is_bitwise_its_previous_version(K):
    rng = np.random.default_rng(K)
    X = rng.normal(size=(200, 4)).astype(np.float32) * rng.uniform(0.1, 1e3, size=(200, 1)).astype(np.float32)
    k = rng.integers(0, K, size=200)
    k[k == 1] = 2  # a code no row uses
    ref, fast, at = (np.zeros((K, 4), np.float32) for _ in range(3))
    _add_rows_by_code_before(ref, k, X)
    _add_rows_by_code(fast, k, X)
    np.testing.assert_array_equal(fast, ref)
    np.add.at(at, k, X)
    np.testing.assert_allclose(fast, at, rtol=1e-5, atol=1e-3)
    _add_rows_by_code(fast, k[:0], X[:0])  # no rows: nothing changes
    np.testing.assert_array_equal(fast, ref)


def test_encoder_parameter_names_are_those_of_param_shapes():
    cfg = ModelConfig(modalities=("a", "b"), toy_dims={"a": 3, "b": 4})
    params = {f"{m}.{name}": name for m in MODALITIES for name in ("W1", "b1", "W2", "b2")}
    for m in MODALITIES:
        assert tuple(model._encoder_params(params, m, cfg)) == tuple(param_shapes(m, cfg)), m


def test_training_step_restarts_a_dead_code_from_the_batch_units():
    from test_train import SMALL, random_pairs

    from minivq.train import TrainConfig, _train_step, batch_inputs, config_from_data, init_state
    data = random_pairs(32)
    cfg = config_from_data(data, ("a", "b"), variant="full", **SMALL)
    state = init_state(cfg, TrainConfig(batch_size=16, seed=0, val_size=0), data)
    inputs = batch_inputs(data, cfg.modalities, np.arange(16))
    _train_step(state, inputs)
    state.ema.n[:] = 1e3  # every code alive ...
    state.ema.n[5] = 1e-9  # ... but one
    logs = _train_step(state, inputs)
    assert logs["restarted"] == 1
    assert np.isclose(state.ema.n[5], state.train_cfg.dead_threshold)
    restarted = state.params["E"][5].copy()
    assert restarted.shape == (cfg.D,) and np.isfinite(restarted).all()
    assert abs(np.linalg.norm(restarted) - 1) < 1e-5  # a unit of the batch: on the unit sphere
    state.ema.n[:] = 1e3  # nothing dead: no restart, and the rng is not drawn from
    rng_state = state.rng.bit_generator.state
    assert _train_step(state, inputs)["restarted"] == 0
    assert state.rng.bit_generator.state == rng_state
