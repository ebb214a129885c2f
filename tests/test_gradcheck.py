"""Tests of minivq.gradcheck, including tests of the tester (METHOD.md section 8).

A gradient checker is only worth something if it fails on a wrong backward:
here it is fed a transposed dW, a missing term and a wrong scale, and must
raise GradientCheckError naming the input, the worst index and both values.
"""
import numpy as np
import pytest

from minivq.gradcheck import GradientCheckError, check_backward, numerical_gradient, rel_error
from minivq.layers import (
    affine_backward, affine_forward, layernorm_backward, layernorm_forward, relu_backward,
    relu_forward, tanh_backward, tanh_forward,
)

TOL = 1e-7


# --- rel_error and numerical_gradient --------------------------------------------------

def test_rel_error_definition():
    a, b = np.array([1.0, -2.0]), np.array([1.5, -2.0])
    assert rel_error(a, b) == pytest.approx(0.5 / 4.0)  # max|a-b| / max(|a|+|b|)
    assert rel_error(a, a) == 0.0
    assert rel_error(np.zeros(3), np.full(3, 1e-9)) == pytest.approx(1e-9 / 1e-8)  # floor 1e-8
    assert rel_error(np.zeros(0), np.zeros(0)) == 0.0
    assert rel_error(2.0, 2.0) == 0.0


def test_rel_error_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        rel_error(np.zeros(2), np.zeros(3))


def test_numerical_gradient_of_cube_and_restores_x():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    x_before = x.copy()
    dout = rng.standard_normal((3, 4))
    grad = numerical_gradient(lambda v: v ** 3, x, dout)
    err = rel_error(grad, 3 * x ** 2 * dout)
    assert err < TOL, f"d(x^3) rel_error {err:.1e}, expect < 1e-7"
    assert np.array_equal(x, x_before), "x must be restored bit for bit"
    assert grad.shape == x.shape and grad.dtype == x.dtype


def test_numerical_gradient_of_scalar_function():
    x = np.array([0.3, -1.2, 2.0])
    grad = numerical_gradient(lambda v: float(np.sum(np.sin(v))), x, 2.0)
    assert rel_error(grad, 2.0 * np.cos(x)) < TOL


def test_numerical_gradient_restores_x_when_f_raises():
    x = np.arange(3.0)

    def boom(v):
        if v[1] != 1.0:
            raise RuntimeError("boom")
        return v

    with pytest.raises(RuntimeError):
        numerical_gradient(boom, x, np.ones(3))
    assert np.array_equal(x, np.arange(3.0))


def test_numerical_gradient_rejects_integer_x():
    with pytest.raises(TypeError, match="floating"):
        numerical_gradient(lambda v: v, np.arange(3), np.ones(3))


# --- check_backward on correct backward passes --------------------------------------------

def _affine_inputs(rng, D_in=4, D_out=4):
    return {"x": rng.standard_normal((3, D_in)), "W": rng.standard_normal((D_in, D_out)),
            "b": rng.standard_normal(D_out)}


def test_check_backward_passes_and_names_every_input():
    errors = check_backward(affine_forward, affine_backward, _affine_inputs(np.random.default_rng(1)), rng=0)
    assert set(errors) == {"x", "W", "b"}
    for name, err in errors.items():
        assert err < TOL, f"d{name} rel_error {err:.1e}, expect < 1e-7"


def test_check_backward_wrt_subset_accepts_full_tuple():
    errors = check_backward(affine_forward, affine_backward, _affine_inputs(np.random.default_rng(2)),
                            wrt=["W"], rng=0)
    assert list(errors) == ["W"] and errors["W"] < TOL


def test_check_backward_skips_non_float_inputs():
    def forward(x, scale):
        return x * scale, scale

    errors = check_backward(forward, lambda dout, scale: dout * scale, {"x": np.ones(3), "scale": 3}, rng=0)
    assert list(errors) == ["x"]


def test_check_backward_scalar_loss():
    def forward(x):
        return float(np.sum(x ** 2)), x

    errors = check_backward(forward, lambda dloss, x: 2 * x * dloss, {"x": np.linspace(-1, 1, 5)}, rng=0)
    assert errors["x"] < TOL


def test_check_backward_does_not_touch_callers_arrays():
    inputs = _affine_inputs(np.random.default_rng(3))
    before = {k: v.copy() for k, v in inputs.items()}
    check_backward(affine_forward, affine_backward, inputs, rng=0)
    for k in inputs:
        assert np.array_equal(inputs[k], before[k])


def test_check_backward_wrong_number_of_gradients():
    with pytest.raises(ValueError, match="gradient"):
        check_backward(affine_forward, lambda d, c: affine_backward(d, c)[:2],
                       _affine_inputs(np.random.default_rng(4)), rng=0)


def test_check_backward_unknown_wrt():
    with pytest.raises(ValueError, match="wrt"):
        check_backward(affine_forward, affine_backward, _affine_inputs(np.random.default_rng(4)), wrt=["y"])


# --- tests of the tester: wrong backward passes must fail ----------------------------------

def _transposed_dW(dout, cache):
    dx, dW, db = affine_backward(dout, cache)
    return dx, dW.T, db  # square W: the shape is right, the values are not


def _layernorm_missing_term(dout, cache):
    xhat, rstd, gamma = cache
    dxhat = dout * gamma
    dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True))  # forgot the path through var
    _, dgamma, dbeta = layernorm_backward(dout, cache)
    return dx, dgamma, dbeta


def _tanh_wrong_scale(dout, cache):
    return 1.001 * tanh_backward(dout, cache)


def _ln_inputs(rng):
    return {"x": rng.standard_normal((2, 5)), "gamma": rng.standard_normal(5), "beta": rng.standard_normal(5)}


@pytest.mark.parametrize(
    "forward, backward, draw, bad_name",
    [
        (affine_forward, _transposed_dW, _affine_inputs, "W"),
        (layernorm_forward, _layernorm_missing_term, _ln_inputs, "x"),
        (tanh_forward, _tanh_wrong_scale, lambda rng: {"x": rng.standard_normal((3, 4))}, "x"),
    ],
    ids=["transposed_dW", "missing_term", "wrong_scale"],
)
def test_checker_fails_on_wrong_backward(forward, backward, draw, bad_name):
    with pytest.raises(GradientCheckError) as info:
        check_backward(forward, backward, draw, rng=0)
    message = str(info.value)
    assert repr(bad_name) in message
    for word in ("worst index", "analytic", "numerical", "rel_error", "tol"):
        assert word in message, f"failure message lacks {word!r}: {message}"
    errors = check_backward(forward, backward, draw, rng=0, raise_on_fail=False)
    assert errors[bad_name] > 1e-4, f"wrong backward gave rel_error {errors[bad_name]:.1e}, expect > 1e-4"


def test_gradient_check_error_is_an_assertion_error():
    assert issubclass(GradientCheckError, AssertionError)


# --- kinks ------------------------------------------------------------------------------

def _relu_signs(x):
    return x > 0


def test_relu_kink_breaks_naive_check():
    x = np.array([[0.5e-5, 1.0, -2.0], [0.3, -0.7, 1.5]])  # entry (0, 0) within h of the kink
    errors = check_backward(relu_forward, relu_backward, {"x": x}, rng=0, raise_on_fail=False)
    assert errors["x"] > 1e-2, "a difference across the kink should look like a wrong gradient"


def test_relu_kink_jittered_for_dict_inputs():
    x = np.array([[0.5e-5, 1.0, -2.0], [0.3, -0.7, 1.5]])
    errors = check_backward(relu_forward, relu_backward, {"x": x}, kinks=_relu_signs, rng=0)
    assert errors["x"] < TOL


def test_relu_kink_redrawn_for_callable_inputs():
    calls = []

    def draw(rng):
        calls.append(1)
        x = rng.standard_normal((4, 5))
        if len(calls) == 1:
            x[0, 0] = 0.0  # the first point sits exactly on the kink
        return {"x": x}

    errors = check_backward(relu_forward, relu_backward, draw, kinks=_relu_signs, rng=0)
    assert len(calls) >= 2, "the checker should have redrawn the point"
    assert errors["x"] < TOL


def test_kink_gives_up_after_max_redraws():
    def draw(rng):
        x = rng.standard_normal(4)
        x[2] = 0.0  # always on the kink
        return {"x": x}

    with pytest.raises(GradientCheckError, match="kink-free"):
        check_backward(relu_forward, relu_backward, draw, kinks=_relu_signs, rng=0, max_redraws=3)


# --- argument checks --------------------------------------------------------------------

def test_numerical_gradient_rejects_a_dout_of_another_shape():
    """A (4,) dout would broadcast against f(x) of shape (3, 4) and weigh the wrong entries."""
    with pytest.raises(ValueError, match=r"dout must have the shape of f\(x\) \(3, 4\), got \(4,\)"):
        numerical_gradient(lambda v: 2 * v, np.zeros((3, 4)), np.ones(4))


def test_numerical_gradient_rejects_a_bad_step():
    with pytest.raises(ValueError, match="h must be a finite number > 0"):
        numerical_gradient(lambda v: v, np.zeros(3), np.ones(3), h=0.0)


def test_check_backward_argument_errors():
    with pytest.raises(TypeError, match=r"forward must return a tuple \(out, cache\)"):
        check_backward(lambda x: 2 * x, lambda d, c: 2 * d, {"x": np.ones(3)}, rng=0)
    with pytest.raises(ValueError, match="max_redraws must be an int >= 0"):
        check_backward(relu_forward, relu_backward, {"x": np.ones(3)}, kinks=_relu_signs, max_redraws=-1)


@pytest.mark.parametrize("tol", [float("nan"), -1.0, 0.0])
def test_check_backward_refuses_a_tolerance_that_fails_everything(tol):
    """tol = nan or -1 reported a correct backward as failed (issue 10)."""
    with pytest.raises(ValueError, match="tol must be a finite number > 0"):
        check_backward(tanh_forward, tanh_backward, {"x": np.ones(3)}, tol=tol)


def test_gradcheck_arguments_are_named():
    with pytest.raises(TypeError, match="a must be a real-valued"):
        rel_error(np.array(["x"]), np.ones(1))
    with pytest.raises(ValueError, match="b must be finite"):
        rel_error(np.ones(1), np.array([np.nan]))
    with pytest.raises(TypeError, match="forward must be a callable"):
        check_backward(None, tanh_backward, {"x": np.ones(3)})
    with pytest.raises(TypeError, match="rng must be"):
        check_backward(tanh_forward, tanh_backward, {"x": np.ones(3)}, rng="0")
    with pytest.raises(ValueError, match="x must be writeable"):
        x = np.ones(3)
        x.setflags(write=False)
        numerical_gradient(np.tanh, x, np.ones(3))


def test_a_step_below_the_spacing_of_x_is_refused():
    """x + h == x gave a numerical gradient of exactly 0, silently."""
    x = np.array([1.0, 2.0**40])
    with pytest.raises(ValueError, match="h = 1e-05 is below the spacing"):
        numerical_gradient(np.sin, x, np.ones(2))
    with pytest.raises(ValueError, match=r"dout must have the shape of f\(x\)"):
        numerical_gradient(np.sin, np.ones((0, 2)), np.ones((1, 2)))


def test_inputs_must_fit_forward():
    with pytest.raises(TypeError, match="inputs must hold forward's arguments in order"):
        check_backward(tanh_forward, tanh_backward, {"x": np.ones(2), "extra": np.ones(2)})
    with pytest.raises(ValueError, match="inputs must hold at least one floating ndarray"):
        check_backward(tanh_forward, tanh_backward, {})
    with pytest.raises(ValueError, match="wrt must name at least one input"):
        check_backward(tanh_forward, tanh_backward, {"x": np.ones(2)}, wrt=[])
