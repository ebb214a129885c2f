"""Tests of minivq.layers: gradient checks (METHOD.md section 8), forwards against
direct definitions, dtypes, masks and argument validation.

Every backward is checked in float64 against central differences with a random
upstream gradient, rel_error < 1e-7, over shapes that include B = 1, T = 1,
stride > 1, padding > 0 and masked units.
"""
import numpy as np
import pytest

from minivq.gradcheck import check_backward
from minivq.layers import (
    affine_backward, affine_forward, conv1d_backward, conv1d_forward, conv1d_output_length,
    conv1d_output_mask, embedding_backward, embedding_forward, l2_normalize_backward,
    l2_normalize_forward, layernorm_backward, layernorm_forward, masked_mean_backward,
    masked_mean_forward, patchify, relu_backward, relu_forward, tanh_backward, tanh_forward,
)

TOL = 1e-7
DTYPES = [np.float32, np.float64]


def assert_grads_ok(errors):
    for name, err in errors.items():
        assert err < TOL, f"d{name} rel_error {err:.1e}, expect < 1e-7"


def random_mask(rng, B, T):
    """Rows fully valid, partly valid, and (for T > 1) with trailing padding; never empty."""
    M = rng.random((B, T)) < 0.6
    M[np.arange(B), rng.integers(0, T, size=B)] = True
    M[0] = True  # one fully valid row
    return M


# --- gradient checks -------------------------------------------------------------------

@pytest.mark.parametrize("x_shape, D_out", [((1, 1), 1), ((4, 3), 5), ((1, 1, 6), 2), ((2, 3, 4), 3), ((5,), 2)])
def test_affine_gradients(x_shape, D_out):
    D_in = x_shape[-1]

    def draw(rng):
        return {"x": rng.standard_normal(x_shape), "W": rng.standard_normal((D_in, D_out)),
                "b": rng.standard_normal(D_out)}

    assert_grads_ok(check_backward(affine_forward, affine_backward, draw, rng=0))


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 1, 5), (2, 4, 3)])
def test_relu_gradients_with_kinks(shape):
    draw = lambda rng: {"x": rng.standard_normal(shape)}  # noqa: E731
    assert_grads_ok(check_backward(relu_forward, relu_backward, draw, kinks=lambda x: x > 0, rng=0))


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 4, 3)])
def test_tanh_gradients(shape):
    draw = lambda rng: {"x": rng.standard_normal(shape)}  # noqa: E731
    assert_grads_ok(check_backward(tanh_forward, tanh_backward, draw, rng=0))


@pytest.mark.parametrize("shape", [(1, 2), (3, 5), (1, 1, 4), (2, 3, 6)])
def test_layernorm_gradients(shape):
    D = shape[-1]

    def draw(rng):
        return {"x": 2 * rng.standard_normal(shape) + 1, "gamma": rng.standard_normal(D),
                "beta": rng.standard_normal(D)}

    assert_grads_ok(check_backward(layernorm_forward, layernorm_backward, draw, rng=0))


CONV_CASES = [  # B, T, C_in, C_out, k, stride, padding
    (1, 1, 1, 1, 1, 1, 0),
    (1, 1, 2, 3, 3, 1, 1),   # T = 1, the window only fits with padding
    (2, 5, 3, 2, 3, 1, 0),
    (2, 6, 2, 3, 3, 1, 1),
    (2, 9, 2, 3, 3, 2, 1),   # stride > 1, padding > 0
    (1, 8, 3, 2, 4, 3, 2),   # even k, stride 3
    (3, 7, 2, 2, 5, 2, 2),
]


@pytest.mark.parametrize("B, T, C_in, C_out, k, stride, padding", CONV_CASES)
def test_conv1d_gradients(B, T, C_in, C_out, k, stride, padding):
    def draw(rng):
        return {"x": rng.standard_normal((B, T, C_in)), "W": rng.standard_normal((k, C_in, C_out)),
                "b": rng.standard_normal(C_out), "stride": stride, "padding": padding}

    assert_grads_ok(check_backward(conv1d_forward, conv1d_backward, draw, rng=0))


@pytest.mark.parametrize("B, T, V, D", [(1, 1, 1, 2), (2, 5, 3, 4), (3, 4, 10, 3)])
def test_embedding_gradient(B, T, V, D):
    def draw(rng):
        return {"ids": rng.integers(0, V, size=(B, T)), "W": rng.standard_normal((V, D))}

    assert_grads_ok(check_backward(embedding_forward, embedding_backward, draw, rng=0))


@pytest.mark.parametrize("B, T, D", [(1, 1, 1), (1, 4, 3), (3, 1, 2), (4, 6, 3)])
def test_masked_mean_gradient(B, T, D):
    def draw(rng):
        return {"H": rng.standard_normal((B, T, D)), "M": random_mask(rng, B, T)}

    assert_grads_ok(check_backward(masked_mean_forward, masked_mean_backward, draw, rng=0))


@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (2, 3, 5)])
def test_l2_normalize_gradient(shape):
    draw = lambda rng: {"x": rng.standard_normal(shape)}  # noqa: E731
    assert_grads_ok(check_backward(l2_normalize_forward, l2_normalize_backward, draw, rng=0))


def test_l2_normalize_gradient_below_eps():
    """Rows with ||x|| < eps are divided by the constant eps: a linear map."""
    def draw(rng):
        x = rng.standard_normal((4, 3))
        x[:2] *= 0.1 / np.linalg.norm(x[:2], axis=1, keepdims=True)  # norm 0.1 < eps = 1
        return {"x": x, "eps": 1.0}

    kinks = lambda x, eps: np.linalg.norm(x, axis=-1) > eps  # noqa: E731
    assert_grads_ok(check_backward(l2_normalize_forward, l2_normalize_backward, draw, kinks=kinks, rng=0))


def test_conv_relu_masked_mean_stack_gradients():
    """An encoder in miniature: conv1d (stride 2, padding 1) -> ReLU -> masked mean over its output mask."""
    k, stride, padding = 3, 2, 1

    def draw(rng):
        M = random_mask(rng, 3, 9)
        return {"x": rng.standard_normal((3, 9, 2)), "W": rng.standard_normal((k, 2, 4)),
                "b": rng.standard_normal(4), "M": M}

    def forward(x, W, b, M):
        a, c1 = conv1d_forward(x, W, b, stride, padding)
        h, c2 = relu_forward(a)
        out, c3 = masked_mean_forward(h, conv1d_output_mask(M, k, stride, padding))
        return out, (c1, c2, c3)

    def backward(dout, cache):
        c1, c2, c3 = cache
        return conv1d_backward(relu_backward(masked_mean_backward(dout, c3), c2), c1)

    def kinks(x, W, b, M):
        return conv1d_forward(x, W, b, stride, padding)[0] > 0

    assert_grads_ok(check_backward(forward, backward, draw, kinks=kinks, rng=0))


# --- forwards against direct definitions -----------------------------------------------

@pytest.mark.parametrize("B, T, C_in, C_out, k, stride, padding", CONV_CASES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv1d_forward_matches_direct_sum(B, T, C_in, C_out, k, stride, padding, dtype):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((B, T, C_in)).astype(dtype)
    W = rng.standard_normal((k, C_in, C_out)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    out, _ = conv1d_forward(x, W, b, stride, padding)
    xp = np.pad(x.astype(np.float64), ((0, 0), (padding, padding), (0, 0)))
    T_out = (T + 2 * padding - k) // stride + 1
    expected = np.empty((B, T_out, C_out))
    for t in range(T_out):  # y[b, t] = sum_j xp[b, t * stride + j] W[j] + b
        expected[:, t] = sum(xp[:, t * stride + j] @ W[j] for j in range(k)) + b
    assert out.shape == (B, T_out, C_out) and out.dtype == dtype
    np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5)


def test_conv1d_output_mask_window_centre_rule():
    M = np.array([[True, True, True, True, True, False, False], [True, False, True, True, True, True, True]])
    for k, stride, padding in [(3, 1, 1), (3, 2, 1), (4, 2, 0), (5, 3, 2), (1, 1, 0)]:
        out = conv1d_output_mask(M, k, stride, padding)
        T_out = conv1d_output_length(7, k, stride, padding)
        assert out.shape == (2, T_out) and out.dtype == bool
        for t in range(T_out):
            c = t * stride - padding + (k - 1) // 2
            expected = M[:, c] if 0 <= c < 7 else np.zeros(2, bool)
            assert np.array_equal(out[:, t], expected), (k, stride, padding, t)


def test_conv1d_output_length_and_errors():
    assert conv1d_output_length(200, 5, 2, 2) == 100
    assert conv1d_output_length(1, 3, 1, 1) == 1
    with pytest.raises(ValueError, match="shorter than the kernel"):
        conv1d_output_length(2, 5, 1, 1)
    with pytest.raises(ValueError, match="stride"):
        conv1d_output_length(5, 3, 0, 0)
    with pytest.raises(TypeError, match="padding"):
        conv1d_output_length(5, 3, 1, 1.5)


def test_patchify_order():
    B, H, W, p = 2, 4, 6, 2
    images = np.arange(B * H * W, dtype=np.float32).reshape(B, H, W)
    patches, mask = patchify(images, p)
    assert patches.shape == (B, (H // p) * (W // p), p * p) and patches.dtype == np.float32
    assert mask.shape == patches.shape[:2] and mask.dtype == bool and mask.all()
    for r in range(H // p):
        for c in range(W // p):
            t = r * (W // p) + c  # row-major grid order, each patch flattened row-major
            np.testing.assert_array_equal(patches[:, t], images[:, r * p:(r + 1) * p, c * p:(c + 1) * p].reshape(B, -1))


def test_embedding_forward_and_repeated_ids():
    W = np.arange(12.0).reshape(4, 3)
    ids = np.array([[1, 1, 3]])
    out, cache = embedding_forward(ids, W)
    np.testing.assert_array_equal(out, W[ids])
    dW = embedding_backward(np.ones((1, 3, 3)), cache)
    np.testing.assert_array_equal(dW[:, 0], [0, 2, 0, 1])  # id 1 used twice: both gradients add


def test_masked_mean_ignores_padding():
    rng = np.random.default_rng(6)
    H = rng.standard_normal((2, 4, 3))
    M = np.array([[True, True, False, False], [True, True, True, True]])
    out, cache = masked_mean_forward(H, M)
    np.testing.assert_allclose(out[0], H[0, :2].mean(0))
    np.testing.assert_allclose(out[1], H[1].mean(0))
    H2 = H.copy()
    H2[0, 2:] = 1e6  # padded units: no effect
    np.testing.assert_array_equal(masked_mean_forward(H2, M)[0], out)
    dH = masked_mean_backward(np.ones((2, 3)), cache)
    assert np.all(dH[0, 2:] == 0)


def test_masked_mean_rejects_empty_row():
    M = np.array([[True, False], [False, False]])
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        masked_mean_forward(np.zeros((2, 2, 3)), M)


def test_layernorm_forward_statistics():
    x = np.random.default_rng(7).standard_normal((5, 8)) * 3 + 2
    out, _ = layernorm_forward(x, np.ones(8), np.zeros(8))
    np.testing.assert_allclose(out.mean(-1), 0, atol=1e-12)
    np.testing.assert_allclose(out.var(-1), 1, rtol=1e-5)  # var / (var + eps)


def test_l2_normalize_forward():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    out, _ = l2_normalize_forward(x)
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])  # a zero row stays zero, no NaN


# --- dtypes ------------------------------------------------------------------------------

def _all_layers(rng, dtype):
    """(name, forward, backward, args) for every layer with float inputs."""
    f = lambda *shape: rng.standard_normal(shape).astype(dtype)  # noqa: E731
    return [
        ("affine", affine_forward, affine_backward, (f(2, 3, 4), f(4, 5), f(5))),
        ("relu", relu_forward, relu_backward, (f(2, 3),)),
        ("tanh", tanh_forward, tanh_backward, (f(2, 3),)),
        ("layernorm", layernorm_forward, layernorm_backward, (f(2, 3, 4), f(4), f(4))),
        ("conv1d", conv1d_forward, conv1d_backward, (f(2, 6, 3), f(3, 3, 4), f(4), 2, 1)),
        ("embedding", embedding_forward, embedding_backward, (rng.integers(0, 5, (2, 3)), f(5, 4))),
        ("masked_mean", masked_mean_forward, masked_mean_backward, (f(2, 3, 4), random_mask(rng, 2, 3))),
        ("l2_normalize", l2_normalize_forward, l2_normalize_backward, (f(2, 3),)),
    ]


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_layer_preserves_dtype(dtype):
    rng = np.random.default_rng(8)
    for name, forward, backward, args in _all_layers(rng, dtype):
        out, cache = forward(*args)
        assert out.dtype == dtype, f"{name} forward returned {out.dtype}"
        grads = backward(np.ones_like(out), cache)
        for g in grads if isinstance(grads, tuple) else (grads,):
            assert g.dtype == dtype, f"{name} backward returned {g.dtype}"
    patches, _ = patchify(rng.standard_normal((1, 4, 4)).astype(dtype), 2)
    assert patches.dtype == dtype


# --- argument validation -------------------------------------------------------------------

def test_errors_name_the_argument():
    x, W, b = np.zeros((2, 3)), np.zeros((3, 4)), np.zeros(4)
    with pytest.raises(ValueError, match=r"x must have D_in = 3 .*got x \(2, 5\)"):
        affine_forward(np.zeros((2, 5)), W, b)
    with pytest.raises(ValueError, match=r"b must have shape \(D_out,\) = \(4,\), got \(3,\)"):
        affine_forward(x, W, np.zeros(3))
    with pytest.raises(TypeError, match="W must have the dtype of x"):
        affine_forward(x, W.astype(np.float32), b)
    with pytest.raises(TypeError, match="x must have dtype float32 or float64"):
        relu_forward(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="x must be finite"):
        tanh_forward(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match=r"x must be 3-D \(B, T, C_in\)"):
        conv1d_forward(np.zeros((2, 3)), np.zeros((1, 3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="W must have C_in = 3"):
        conv1d_forward(np.zeros((1, 4, 3)), np.zeros((2, 2, 5)), np.zeros(5))
    with pytest.raises(ValueError, match="gamma must have shape"):
        layernorm_forward(x, np.ones(2), np.zeros(3))
    with pytest.raises(TypeError, match="M must be a bool mask"):
        masked_mean_forward(np.zeros((1, 2, 3)), np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"M must have shape \(B, T\) = \(1, 2\)"):
        masked_mean_forward(np.zeros((1, 2, 3)), np.ones((1, 3), bool))
    with pytest.raises(ValueError, match=r"ids must lie in \[0, V\) = \[0, 3\)"):
        embedding_forward(np.array([[0, 3]]), np.zeros((3, 2)))
    with pytest.raises(TypeError, match="ids must have an integer dtype"):
        embedding_forward(np.array([[0.0]]), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="multiples of patch = 3"):
        patchify(np.zeros((1, 4, 6)), 3)


def test_backward_checks_dout():
    out, cache = affine_forward(np.zeros((2, 3)), np.zeros((3, 4)), np.zeros(4))
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(2, 4\)"):
        affine_backward(np.zeros((2, 3)), cache)
    with pytest.raises(TypeError, match="dout must have the forward output's dtype float64"):
        affine_backward(np.zeros((2, 4), dtype=np.float32), cache)


# --- an independent autograd reference (optional: torch is not a dependency) ---------------

def _torch_cases(rng):
    f = lambda *shape: rng.standard_normal(shape)  # noqa: E731
    M = random_mask(rng, 3, 8)
    ids = rng.integers(0, 6, (3, 8))
    return [
        ("affine", affine_forward, affine_backward, [f(3, 8, 5), f(5, 4), f(4)], [], lambda t, x, W, b: x @ W + b),
        ("relu", relu_forward, relu_backward, [f(3, 8, 5)], [], lambda t, x: t.relu(x)),
        ("tanh", tanh_forward, tanh_backward, [f(3, 8, 5)], [], lambda t, x: t.tanh(x)),
        ("layernorm", layernorm_forward, layernorm_backward, [f(3, 8, 5), f(5), f(5)], [],
         lambda t, x, g, b: t.nn.functional.layer_norm(x, (5,), g, b, eps=1e-5)),
        ("conv1d", conv1d_forward, conv1d_backward, [f(3, 8, 4), f(3, 4, 6), f(6)], [2, 1],
         lambda t, x, W, b: t.nn.functional.conv1d(x.transpose(1, 2), W.permute(2, 1, 0), b,
                                                   stride=2, padding=1).transpose(1, 2)),
        ("embedding", lambda W: embedding_forward(ids, W), embedding_backward, [f(6, 5)], [],
         lambda t, W: W[t.as_tensor(ids)]),
        ("masked_mean", lambda H: masked_mean_forward(H, M), masked_mean_backward, [f(3, 8, 5)], [],
         lambda t, H: (H * t.as_tensor(M)[..., None]).sum(1) / t.as_tensor(M).sum(1, keepdim=True)),
        ("l2_normalize", l2_normalize_forward, l2_normalize_backward, [f(3, 8, 5)], [],
         lambda t, x: t.nn.functional.normalize(x, dim=-1, eps=1e-12)),
    ]


@pytest.mark.parametrize("case", range(8))
def test_against_torch_autograd(case):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    name, forward, backward, arrays, extra, reference = _torch_cases(rng)[case]
    out, cache = forward(*arrays, *extra)
    dout = rng.standard_normal(out.shape)
    grads = backward(dout, cache)
    grads = grads if isinstance(grads, tuple) else (grads,)
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    ref = reference(torch, *tensors)
    ref.backward(torch.tensor(dout))
    assert np.max(np.abs(out - ref.detach().numpy())) < 1e-9, f"{name} forward differs from torch"
    for g, t in zip(grads, tensors, strict=True):
        err = np.max(np.abs(g - t.grad.numpy()))
        assert err < 1e-9, f"{name} gradient differs from torch autograd by {err:.1e}, expect < 1e-9"


def test_backward_checks_dout_against_the_cache():
    """The caches carry what the checks need: masked mean its D, ReLU its dtype."""
    _, cache = masked_mean_forward(np.zeros((2, 3, 4)), np.ones((2, 3), bool))
    with pytest.raises(ValueError, match=r"dout must have the forward output's shape \(2, 4\), got \(2, 5\)"):
        masked_mean_backward(np.zeros((2, 5)), cache)
    _, cache = relu_forward(np.zeros(3))
    with pytest.raises(TypeError, match="dout must have the forward output's dtype float64, got float32"):
        relu_backward(np.zeros(3, np.float32), cache)
    with pytest.raises(ValueError, match=r"D >= 1"):
        layernorm_forward(np.zeros((2, 0)), np.ones(0), np.zeros(0))


# --- issue 10 regressions: eps underflow, overflowing norms, empty batches, leaks ------------

@pytest.mark.parametrize("forward, args", [
    (layernorm_forward, lambda x: (x, np.ones(1, np.float32), np.zeros(1, np.float32))),
    (l2_normalize_forward, lambda x: (x,)),
])
def test_an_eps_that_underflows_in_float32_is_refused(forward, args):
    """eps = 1e-50 is 0 in float32: layer norm of D = 1 and the norm of a zero row were 0/0 = NaN."""
    x = np.zeros((2, 1), np.float32)
    with pytest.raises(ValueError, match=r"eps must be >= 1.18e-38 .*float32"):
        forward(*args(x), eps=1e-50)
    out, _ = forward(*args(x), eps=1e-30)  # representable: a finite answer
    assert np.isfinite(out).all()


def test_l2_normalize_of_rows_whose_squared_norm_overflows_is_a_clear_error():
    """0.3's overflow policy: a row whose ||x||^2 overflows is refused at the entry, never a wrong finite row."""
    x = np.array([[1e20, -3e20, 2e20], [1.0, 0.0, 0.0]], np.float32)  # x * x overflows float32
    with pytest.raises(ValueError, match="x is too large for float32: the squared norm of a row overflows"):
        l2_normalize_forward(x)


@pytest.mark.parametrize("shape, D_out", [((0, 3), 4), ((2, 0, 3), 4), ((5, 0), 2), ((3, 4), 0)])
def test_affine_with_zero_size_shapes(shape, D_out):
    """Zero rows (or D_in = 0, D_out = 0) are valid: "cannot reshape array of size 0" before."""
    x, W, b = np.ones(shape), np.ones((shape[-1], D_out)), np.ones(D_out)
    out, cache = affine_forward(x, W, b)
    assert out.shape == shape[:-1] + (D_out,)
    np.testing.assert_array_equal(out, np.ones(shape[:-1] + (D_out,)) * shape[-1] + 1)
    dx, dW, db = affine_backward(np.ones(out.shape), cache)
    assert dx.shape == shape and dW.shape == W.shape and db.shape == b.shape
    np.testing.assert_array_equal(dW, np.full(W.shape, float(np.prod(shape[:-1]))))


def test_embedding_backward_with_zero_rows():
    out, cache = embedding_forward(np.zeros((0, 3), np.int64), np.ones((4, 2)))
    assert out.shape == (0, 3, 2)
    np.testing.assert_array_equal(embedding_backward(np.ones((0, 3, 2)), cache), np.zeros((4, 2)))
    out, cache = embedding_forward(np.zeros((2, 3), np.int64), np.ones((4, 0)))  # D = 0
    assert embedding_backward(np.ones((2, 3, 0)), cache).shape == (4, 0)


def test_numpy_internals_do_not_leak():
    """Ragged lists, strings, objects and foreign caches: a named ValueError or TypeError."""
    with pytest.raises(ValueError, match="x must be an array .*ragged"):
        relu_forward([[1.0, 2.0], [3.0]])
    with pytest.raises(TypeError, match="x must have dtype float32 or float64 .*<U"):
        tanh_forward(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="x must have dtype .*object"):
        affine_forward(np.array([[1.0, None]], dtype=object), np.ones((2, 2)), np.ones(2))
    with pytest.raises(ValueError, match="dout must be finite"):
        relu_backward(np.array([np.nan]), relu_forward(np.ones(1))[1])
    with pytest.raises(TypeError, match="cache must be the cache tuple returned by affine_forward"):
        affine_backward(np.ones((1, 2)), None)
    with pytest.raises(TypeError, match="cache must be the cache tuple returned by conv1d_forward"):
        conv1d_backward(np.ones((1, 2, 2)), affine_forward(np.ones((1, 2)), np.ones((2, 2)), np.ones(2))[1])
    with pytest.raises(TypeError, match="eps must be a finite number > 0 .*, got str"):
        layernorm_forward(np.ones((1, 2)), np.ones(2), np.ones(2), eps="1e-5")
    with pytest.raises(ValueError, match="padding must be an int in \\[0, 2\\]"):
        conv1d_forward(np.ones((1, 4, 1)), np.ones((3, 1, 1)), np.ones(1), padding=3)


def test_edges_the_fuzz_found():
    """tests/test_fuzz_*.py found these; each is also a plain test here."""
    x = np.array([[1.0, 2.0, 3.0], [1e200, -1e200, 3e200]])  # the variance overflows float64: a clear error
    with pytest.raises(ValueError, match="x is too large for float64"):
        layernorm_forward(x, np.ones(3), np.zeros(3))
    out, cache = relu_forward(np.float64(-2.0) * np.ones(()))  # 0-d: arrays, and a cache backward accepts
    assert isinstance(out, np.ndarray) and relu_backward(np.ones(()), cache).shape == ()
    out, cache = tanh_forward(np.zeros(()))
    assert isinstance(out, np.ndarray) and isinstance(tanh_backward(np.ones(()), cache), np.ndarray)
    with pytest.raises(ValueError, match="images must have H and W that are positive multiples of patch"):
        patchify(np.zeros((1, 0, 4)), 2)
    with pytest.raises(ValueError, match=r"stride must be an int in \[1, 16777216\]"):
        conv1d_output_mask(np.ones((1, 3), bool), 1, stride=2**70)


def test_affine_at_the_edge_of_float32():
    """A sum of products that overflows inside (inf - inf) although the exact output fits."""
    big = np.finfo(np.float32).max / 2
    x = np.array([[1.0, 1.0]], np.float32)
    W = np.array([[big], [-big]], np.float32) * np.float32(1.5)  # 1.5 big - 1.5 big: each product fits, in sum 0
    out, cache = affine_forward(x, W, np.ones(1, np.float32))
    assert out.tolist() == [[1.0]]
    dout = np.array([[big]], np.float32)  # dx = dout W^T = +-1.5 big^2: beyond float32, so inf, not NaN
    dx, dW, db = affine_backward(np.array([[1e-8]], np.float32), cache)
    assert dx[0, 0] == np.float32(1e-8) * W[0, 0] and not np.isnan(affine_backward(dout, cache)[0]).any()


def test_conv1d_with_numpy_integer_stride_and_padding_keeps_a_cache_its_backward_accepts():
    """Issue 22: a NumPy-integer stride made a cache that conv1d_backward refused; the cache holds ints."""
    rng = np.random.default_rng(0)
    x, W, b = rng.standard_normal((2, 7, 3)), rng.standard_normal((3, 3, 4)), rng.standard_normal(4)
    out, cache = conv1d_forward(x, W, b, stride=np.int64(2), padding=np.int32(1))
    assert all(type(v) is int for v in cache[3:]), cache[3:]
    dx, dW, db = conv1d_backward(np.ones_like(out), cache)
    assert dx.shape == x.shape and dW.shape == W.shape
    with pytest.raises(ValueError, match="dout must have the forward output's shape"):
        conv1d_backward(np.ones((2, 1, 4)), cache)
    with pytest.raises(ValueError, match=r"padding must be an int in \[0, 2\]"):
        conv1d_forward(x, W, b, padding=3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_by_mask_product_is_np_where(dtype):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(7, 9)).astype(dtype)
    x[0, :3] = 0.0
    out, cache = relu_forward(x)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, np.where(x > 0, x, 0))
    dout = rng.normal(size=x.shape).astype(dtype)
    dx = relu_backward(dout, cache)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, np.where(x > 0, dout, 0))
