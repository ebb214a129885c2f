"""Fast paths of the training step against the references kept beside them.

- ``Adam._step`` (all parameters as one flat buffer) against the
  per-parameter ``_update``: the same bits, step after step;
- ``clip_grad_norm`` (one float64 buffer) against the per-key sum;
- the image encoder's first layer (``_affine_backward(..., need_dx=False)``)
  against the full ``_affine_backward``; ReLU by a mask product against ``np.where``;
  the model's encoder parameter names against ``param_shapes``; the
  dead-code restart inside the training step, which draws from the rng only
  when a code is dead.
"""
import numpy as np
import pytest

from minivq import model
from minivq._encoder_checks import param_shapes
from minivq.config import MODALITIES, ModelConfig
from minivq.layers.dense import _affine_backward, _affine_forward, _relu_backward, _relu_forward
from minivq.optim import SGD, Adam, _Optimizer, clip_grad_norm


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
