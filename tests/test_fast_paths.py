"""Fast paths of the training step against the references kept beside them.

- the image encoder's first layer (``_affine_backward(..., need_dx=False)``)
  against the full ``_affine_backward``; ReLU by a mask product against ``np.where``;
  the model's encoder parameter names against ``param_shapes``; the dead-code
  restart inside the training step, which draws from the rng only when a code is dead.
"""
import numpy as np
import pytest

from minivq import model
from minivq._encoder_checks import param_shapes
from minivq.config import MODALITIES, ModelConfig
from minivq.layers.dense import _affine_backward, _affine_forward, _relu_backward, _relu_forward


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
