"""Tests of minivq.optim: the update equations step by step, state save/load,
gradient clipping, initializers, and a tiny MLP built from minivq.layers that
fits a toy regression (the loss falls by 100 times)."""
import numpy as np
import pytest

from minivq.layers import affine_backward, affine_forward, tanh_backward, tanh_forward
from minivq.optim import SGD, Adam, clip_grad_norm, glorot_uniform, he_uniform


def _params_and_grads(rng, dtype=np.float64):
    params = {"W": rng.standard_normal((3, 4)).astype(dtype), "b": rng.standard_normal(4).astype(dtype)}
    grads = [{k: rng.standard_normal(p.shape).astype(dtype) for k, p in params.items()} for _ in range(5)]
    return params, grads


# --- update equations -----------------------------------------------------------------

@pytest.mark.parametrize("weight_decay, decoupled", [(0.0, False), (0.1, False), (0.1, True)])
def test_adam_follows_its_equations_step_by_step(weight_decay, decoupled):
    rng = np.random.default_rng(0)
    params, grads = _params_and_grads(rng)
    lr, b1, b2, eps = 0.01, 0.8, 0.95, 1e-6
    opt = Adam(params, lr=lr, beta1=b1, beta2=b2, eps=eps, weight_decay=weight_decay, decoupled=decoupled)
    p = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(x) for k, x in p.items()}
    W_ref = params["W"]
    for t, g in enumerate(grads, start=1):
        opt.step(g)
        for k in p:
            gk = g[k] + (0 if decoupled else weight_decay * p[k])
            if decoupled:
                p[k] = p[k] - lr * weight_decay * p[k]
            m[k] = b1 * m[k] + (1 - b1) * gk
            v[k] = b2 * v[k] + (1 - b2) * gk ** 2
            m_hat, v_hat = m[k] / (1 - b1 ** t), v[k] / (1 - b2 ** t)
            p[k] = p[k] - lr * m_hat / (np.sqrt(v_hat) + eps)
            np.testing.assert_allclose(params[k], p[k], rtol=1e-13, atol=1e-15, err_msg=f"step {t}, {k}")
    assert params["W"] is W_ref, "the update must be in place"
    assert opt.t == len(grads)


def test_adam_first_step_is_lr_times_sign():
    """With bias correction, step 1 moves every entry by lr * g / (|g| + eps) ~ lr * sign(g)."""
    params = {"w": np.zeros(4)}
    Adam(params, lr=0.1).step({"w": np.array([3.0, -0.5, 1e-3, -20.0])})
    np.testing.assert_allclose(params["w"], [-0.1, 0.1, -0.1, 0.1], rtol=1e-4)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_sgd_momentum_equations(weight_decay):
    rng = np.random.default_rng(1)
    params, grads = _params_and_grads(rng)
    lr, mu = 0.1, 0.9
    opt = SGD(params, lr, momentum=mu, weight_decay=weight_decay)
    p = {k: x.copy() for k, x in params.items()}
    vel = {k: np.zeros_like(x) for k, x in p.items()}
    for g in grads:
        opt.step(g)
        for k in p:
            vel[k] = mu * vel[k] + g[k] + weight_decay * p[k]
            p[k] = p[k] - lr * vel[k]
            np.testing.assert_allclose(params[k], p[k], rtol=1e-13)


@pytest.mark.parametrize("Opt", [SGD, Adam])
def test_float32_stays_float32(Opt):
    params, grads = _params_and_grads(np.random.default_rng(2), np.float32)
    opt = Opt(params, lr=0.01)
    for g in grads:
        opt.step(g)
    assert all(p.dtype == np.float32 for p in params.values())
    assert all(a.dtype == np.float32 for k, a in opt.state_dict().items() if "/" in k)


# --- state_dict --------------------------------------------------------------------------

@pytest.mark.parametrize("Opt", [SGD, Adam])
def test_state_dict_roundtrip_through_npz(Opt, tmp_path):
    params, grads = _params_and_grads(np.random.default_rng(3))
    twin = {k: v.copy() for k, v in params.items()}
    opt, opt_twin = Opt(params, lr=0.05), Opt(twin, lr=0.05)
    for g in grads[:2]:
        opt.step(g)
        opt_twin.step(g)
    np.savez(tmp_path / "opt.npz", **opt_twin.state_dict())
    resumed = {k: v.copy() for k, v in twin.items()}
    opt_resumed = Opt(resumed, lr=123.0)  # hyperparameters come back from the file too
    with np.load(tmp_path / "opt.npz") as state:
        opt_resumed.load_state_dict(dict(state))
    for g in grads[2:]:
        opt.step(g)
        opt_resumed.step(g)
    for k in params:
        np.testing.assert_array_equal(params[k], resumed[k])


def test_load_state_dict_rejects_wrong_shapes():
    params = {"w": np.zeros(3)}
    opt = Adam(params)
    state = opt.state_dict()
    state["m/w"] = np.zeros(4)
    with pytest.raises(ValueError, match=r"m/w.*shape \(3,\)"):
        opt.load_state_dict(state)


# --- argument validation -------------------------------------------------------------------

def test_step_checks_grads():
    params = {"W": np.zeros((2, 2)), "b": np.zeros(2)}
    opt = Adam(params)
    with pytest.raises(ValueError, match=r"missing \['b'\]"):
        opt.step({"W": np.zeros((2, 2))})
    with pytest.raises(ValueError, match=r"grads\['b'\] must have the shape"):
        opt.step({"W": np.zeros((2, 2)), "b": np.zeros(3)})
    with pytest.raises(TypeError, match=r"grads\['b'\] must have the dtype"):
        opt.step({"W": np.zeros((2, 2)), "b": np.zeros(2, np.float32)})
    with pytest.raises(TypeError, match="params"):
        SGD({"w": [1.0, 2.0]}, lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        SGD(params, lr=-1.0)
    with pytest.raises(ValueError, match="beta2"):
        Adam(params, beta2=1.0)


# --- clipping and initialization --------------------------------------------------------------

def test_clip_grad_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}  # global norm 5
    assert clip_grad_norm(grads, 10.0) == pytest.approx(5.0)
    np.testing.assert_array_equal(grads["a"], [3.0, 0.0])  # below the threshold: untouched
    assert clip_grad_norm(grads, 1.0) == pytest.approx(5.0)  # returns the norm before clipping
    np.testing.assert_allclose(grads["a"], [0.6, 0.0])
    np.testing.assert_allclose(grads["b"], [[0.8]])
    assert np.sqrt(sum(np.sum(g ** 2) for g in grads.values())) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"grads\['a'\] is not finite"):
        clip_grad_norm({"a": np.array([np.nan])}, 1.0)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(grads, 0.0)


@pytest.mark.parametrize("init, limit", [
    (glorot_uniform, lambda fi, fo: np.sqrt(6 / (fi + fo))),
    (he_uniform, lambda fi, fo: np.sqrt(6 / fi)),
])
@pytest.mark.parametrize("shape, fans", [((300, 200), (300, 200)), ((5, 40, 64), (200, 320))])
def test_initializers(init, limit, shape, fans):
    a = limit(*fans)
    W = init(np.random.default_rng(4), shape)
    assert W.shape == shape and W.dtype == np.float64
    assert np.abs(W).max() <= a and np.abs(W).max() > 0.99 * a
    assert W.var() == pytest.approx(a ** 2 / 3, rel=0.05)  # Var U(-a, a) = a^2 / 3
    assert init(np.random.default_rng(4), shape, dtype=np.float32).dtype == np.float32
    np.testing.assert_array_equal(W, init(np.random.default_rng(4), shape))  # seeded
    with pytest.raises(TypeError, match="np.random.Generator"):
        init(4, shape)


# --- a tiny MLP fits a toy regression ------------------------------------------------------------

def test_tiny_mlp_fits_toy_regression():
    """x -> affine -> tanh -> affine, mean squared error, Adam: the loss falls by 100 times."""
    rng = np.random.default_rng(0)
    x = np.linspace(-2, 2, 64)[:, None]  # (N, 1)
    y = np.sin(2 * x) + 0.5 * x  # (N, 1)
    params = {"W1": glorot_uniform(rng, (1, 32)), "b1": np.zeros(32),
              "W2": glorot_uniform(rng, (32, 1)), "b2": np.zeros(1)}
    opt = Adam(params, lr=0.01)

    def loss_and_grads():
        a, c1 = affine_forward(x, params["W1"], params["b1"])
        h, c2 = tanh_forward(a)
        pred, c3 = affine_forward(h, params["W2"], params["b2"])
        diff = pred - y
        loss = float(np.mean(diff ** 2))
        dh, dW2, db2 = affine_backward(2 * diff / diff.size, c3)
        _, dW1, db1 = affine_backward(tanh_backward(dh, c2), c1)
        return loss, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}

    first, _ = loss_and_grads()
    for _ in range(1500):
        loss, grads = loss_and_grads()
        opt.step(grads)
    assert loss < first / 100, f"loss fell from {first:.3g} to {loss:.3g}, expect a 100x drop"


# --- optional cross-check against torch.optim (torch is not a dependency) -------------------------

@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_against_torch_optim(name):
    torch = pytest.importorskip("torch")
    params, grads = _params_and_grads(np.random.default_rng(5))
    tensors = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    if name == "SGD":
        ours = SGD(params, lr=0.1, momentum=0.9, weight_decay=0.01)
        theirs = torch.optim.SGD(tensors.values(), lr=0.1, momentum=0.9, weight_decay=0.01)
    else:
        ours = Adam(params, lr=0.01, weight_decay=0.01, decoupled=name == "AdamW")
        theirs = getattr(torch.optim, name)(tensors.values(), lr=0.01, weight_decay=0.01)
    for g in grads:
        ours.step(g)
        for k, t in tensors.items():
            t.grad = torch.tensor(g[k])
        theirs.step()
    for k in params:
        err = np.max(np.abs(params[k] - tensors[k].detach().numpy()))
        assert err < 1e-12, f"{name} {k} differs from torch.optim by {err:.1e}"


def test_state_dict_restores_the_decoupled_option():
    params = {"w": np.ones(3)}
    state = Adam(params, weight_decay=0.1, decoupled=True).state_dict()
    resumed = Adam({"w": np.ones(3)}, weight_decay=0.1)
    resumed.load_state_dict(state)
    assert resumed.decoupled is True, "AdamW must resume as AdamW"
    del state["decoupled"]
    with pytest.raises(ValueError, match="state is missing 'decoupled'"):
        resumed.load_state_dict(state)


def test_bad_arguments_name_themselves():
    params = {"w": np.zeros(2)}
    with pytest.raises(TypeError, match="lr must be a finite number >= 0.*, got NoneType"):
        SGD(params, lr=None)
    with pytest.raises(ValueError, match=r"momentum must be a finite number >= 0 and < 1, got 1.0"):
        SGD(params, lr=0.1, momentum=1.0)
    with pytest.raises(TypeError, match="beta1 must be a finite number >= 0 and < 1, got str"):
        Adam(params, beta1="0.9")
    with pytest.raises(ValueError, match="state is missing 'v/w'"):
        opt = SGD(params, lr=0.1)
        opt.load_state_dict({"lr": 0.1, "momentum": 0.9, "weight_decay": 0.0, "t": 0})
    with pytest.raises(TypeError, match="grads must be a dict"):
        clip_grad_norm([np.ones(2)], 1.0)
    with pytest.raises(TypeError, match=r"grads\['a'\] must be a float32 or float64 ndarray"):
        clip_grad_norm({"a": [3.0, 4.0]}, 1.0)
    with pytest.raises(TypeError, match="shape must be a tuple of ints"):
        glorot_uniform(np.random.default_rng(0), 5)


def test_step_and_state_reject_bad_values_by_name():
    params = {"W": np.zeros((2, 2))}
    opt = Adam(params)
    with pytest.raises(ValueError, match=r"grads\['W'\] must be finite"):
        opt.step({"W": np.full((2, 2), np.nan)})
    assert opt.t == 0 and not params["W"].any(), "a refused step changes nothing"
    state = opt.state_dict()
    with pytest.raises(TypeError, match=r"state\['lr'\] must be a finite number"):
        opt.load_state_dict({**state, "lr": "fast"})
    with pytest.raises(ValueError, match=r"state\['beta1'\] must be a finite number >= 0 and < 1"):
        opt.load_state_dict({**state, "beta1": 1.5})
    with pytest.raises(ValueError, match=r"state\['m/W'\] must be finite"):
        opt.load_state_dict({**state, "m/W": np.full((2, 2), np.inf)})
    with pytest.raises(TypeError, match="decoupled must be True or False"):
        Adam(params, decoupled="yes")
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        he_uniform(np.random.default_rng(0), (2, 2), dtype="abc")
    with pytest.raises(TypeError, match="max_norm must be a finite number > 0, got str"):
        clip_grad_norm({"W": np.ones(2)}, "1")


def test_adam_refuses_what_its_moments_cannot_hold():
    params = {"W": np.ones(2, np.float32)}
    with pytest.raises(ValueError, match=r"grads\['W'\] must be at most 9.22e\+18 in magnitude"):
        Adam(params).step({"W": np.array([1e30, 1.0], np.float32)})  # g^2 overflows float32: no step at all
    with pytest.raises(ValueError, match="eps must be >= 1.18e-38"):
        Adam(params, eps=1e-320)  # 0 in float32: 0 / 0 where the gradient is 0
    SGD(params, lr=0.1).step({"W": np.array([1e30, 1.0], np.float32)})  # SGD has no such limit


def test_hyperparameters_must_fit_the_parameters_dtype():
    params = {"W": np.zeros(2, np.float32)}
    with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0 and <= 3.40282e"):
        Adam(params, weight_decay=1e300)  # inf in float32: inf * 0 = NaN
    with pytest.raises(ValueError, match="lr and weight_decay must keep lr \\* weight_decay"):
        Adam(params, lr=1e30, weight_decay=1e30, decoupled=True)
