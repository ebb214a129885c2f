"""Fuzz of the pointwise and per-row layers (minivq.layers.dense): every outcome a correct
result or a ValueError/TypeError naming the argument (issue 10). Machinery: tests/fuzz/."""
import numpy as np
import pytest
from fuzz.oracle import Either, arr, cache, close, equal, f64, need, num
from fuzz.runner import TALLY, Spec, run_spec
from fuzz.values import dims, dtype_of, floats
from hypothesis import strategies as st

from minivq import layers as L


def _x(data, min_ndim=1, last_min=0):
    shape = tuple(dims(data, *"abc"[:data.draw(st.integers(min_ndim, 3))], low=0))
    shape = shape[:-1] + (max(shape[-1], last_min),) if shape else shape
    return floats(data, shape, dtype_of(data))


def _tiny(dtype):
    return float(np.finfo(dtype).tiny)


def _back_args(data, fn, *args):
    """Backward arguments from a valid forward call: dout, cache (and the cache kept as context)."""
    out, c = fn(*args)
    return {"dout": floats(data, out.shape, out.dtype), "cache": c, "_cache": c}


# ----------------------------------------------------------------------------- affine
def draw_affine(data):
    x = _x(data)
    D_out = data.draw(st.integers(0, 4))
    return {"x": x, "W": floats(data, (x.shape[-1], D_out), x.dtype), "b": floats(data, (D_out,), x.dtype)}


def expect_affine(a):
    x = arr(a["x"], "x", min_ndim=1)
    W = arr(a["W"], "W", ndim=2, dtype=x.dtype, also=("x",))
    need(W.shape[0] == x.shape[-1], "x", "W")
    b = arr(a["b"], "b", dtype=x.dtype, shape=(W.shape[1],), also=("x",))
    ref, scale = f64(x) @ f64(W) + f64(b), np.abs(f64(x)) @ np.abs(f64(W)) + np.abs(f64(b))
    return lambda r: close(r[0], ref, scale, x.dtype)


def draw_affine_back(data):
    a = draw_affine(data)
    return _back_args(data, L.affine_forward, a["x"], a["W"], a["b"])


def expect_affine_back(a):
    x, W = cache(a)
    dout = arr(a["dout"], "dout", dtype=x.dtype, shape=x.shape[:-1] + (W.shape[1],))
    N = int(np.prod(x.shape[:-1]))
    d2, x2 = f64(dout).reshape(N, W.shape[1]), f64(x).reshape(N, W.shape[0])
    refs = (f64(dout) @ f64(W).T, x2.T @ d2, d2.sum(0))
    scales = (np.abs(f64(dout)) @ np.abs(f64(W)).T, np.abs(x2).T @ np.abs(d2), np.abs(d2).sum(0))

    def check(r):
        for g, ref, sc in zip(r, refs, scales, strict=True):
            close(g, ref, sc, x.dtype)
    return check


# ----------------------------------------------------------------------------- relu, tanh
def draw_x(data):
    shape = tuple(dims(data, *"abc"[:data.draw(st.integers(0, 3))], low=0))
    return {"x": floats(data, shape, dtype_of(data))}


def expect_relu(a):
    x = arr(a["x"], "x")
    return lambda r: equal(r[0], np.maximum(x, 0))


def expect_tanh(a):
    x = arr(a["x"], "x")
    return lambda r: close(r[0], np.tanh(f64(x)), 1.0, x.dtype)


def draw_pointwise_back(forward):
    def draw(data):
        x = draw_x(data)["x"]
        return {**_back_args(data, forward, x), "_x": x}
    return draw


def expect_relu_back(a):
    x, _ = a["_x"], cache(a)
    dout = arr(a["dout"], "dout", dtype=x.dtype, shape=x.shape)
    return lambda r: equal(r, np.where(x > 0, dout, 0).astype(x.dtype))


def expect_tanh_back(a):
    x, _ = a["_x"], cache(a)
    dout = arr(a["dout"], "dout", dtype=x.dtype, shape=x.shape)
    t = np.tanh(f64(x))
    return lambda r: close(r, f64(dout) * (1 - t * t), np.abs(f64(dout)) * 4, x.dtype)


# ----------------------------------------------------------------------------- layer norm
def draw_layernorm(data):
    x = _x(data, last_min=1)
    D = x.shape[-1]
    return {"x": x, "gamma": floats(data, (D,), x.dtype), "beta": floats(data, (D,), x.dtype),
            "eps": data.draw(st.sampled_from([1e-5, 1e-3, 1.0, 1e-30]))}


def _layernorm_ref(x, g, b, eps):
    """In long double, rows divided by their largest entry first (no overflow)."""
    xl = np.asarray(x, np.longdouble)
    s = np.abs(xl).max(-1, keepdims=True)
    s = np.where(s > 0, s, 1)
    xc = xl / s - (xl / s).mean(-1, keepdims=True)
    rstd_s = 1 / np.sqrt((xc * xc).mean(-1, keepdims=True) + np.longdouble(eps) / s / s)
    xhat = f64(xc * rstd_s)
    spread = f64(rstd_s) * x.shape[-1]  # the rounding of the mean, scaled by rstd
    return xhat * f64(g) + f64(b), np.abs(f64(g)) * (spread + 1) + np.abs(f64(b))


def expect_layernorm(a):
    x = arr(a["x"], "x", min_ndim=1)
    need(x.shape[-1] >= 1, "x")
    g = arr(a["gamma"], "gamma", dtype=x.dtype, shape=(x.shape[-1],), also=("x",))
    b = arr(a["beta"], "beta", dtype=x.dtype, shape=(x.shape[-1],), also=("x",))
    eps = num(a["eps"], "eps", _tiny(x.dtype), float(np.finfo(x.dtype).max) / 2)
    ref, scale = _layernorm_ref(x, g, b, eps)
    check = lambda r: close(r[0], ref, scale, x.dtype)  # noqa: E731
    xc = f64(x) - f64(x).mean(axis=-1, keepdims=True)
    if x.size and (np.abs(x).max() > float(np.finfo(x.dtype).max) / 4 or (xc ** 2).sum(-1).max()
                   > float(np.finfo(x.dtype).max) / 4):  # the centred squares may overflow: refused
        return Either(check, "x")
    return check


def draw_layernorm_back(data):
    a = draw_layernorm(data)
    return _back_args(data, L.layernorm_forward, a["x"], a["gamma"], a["beta"], a["eps"])


def expect_layernorm_back(a):
    xhat, rstd, gamma = (f64(c) for c in cache(a))
    dt = a["_cache"][0].dtype
    dout = f64(arr(a["dout"], "dout", dtype=dt, shape=xhat.shape))
    dxh, adxh = dout * gamma, np.abs(dout * gamma)
    dx = rstd * (dxh - dxh.mean(-1, keepdims=True) - xhat * (dxh * xhat).mean(-1, keepdims=True))
    sdx = rstd * (adxh + adxh.mean(-1, keepdims=True) + np.abs(xhat) * (adxh * np.abs(xhat)).mean(-1, keepdims=True))
    D, N = xhat.shape[-1], int(np.prod(xhat.shape[:-1]))
    d2, x2 = dout.reshape(N, D), xhat.reshape(N, D)
    refs = ((dx, sdx * D), ((d2 * x2).sum(0), np.abs(d2 * x2).sum(0) * D), (d2.sum(0), np.abs(d2).sum(0)))

    def check(r):
        for g, (ref, sc) in zip(r, refs, strict=True):
            close(g, ref, sc, dt)
    return check


# ----------------------------------------------------------------------------- L2 normalization
def draw_l2(data):
    x = _x(data)
    return {"x": x, "eps": data.draw(st.sampled_from([1e-12, 1e-3, 1.0, 1e-30]))}


def _norms(x):
    x = f64(x)
    top = np.abs(x).max(-1, keepdims=True, initial=0)
    safe = np.where(top > 0, top, 1)
    return top * np.sqrt(((x / safe) ** 2).sum(-1, keepdims=True))


def expect_l2(a):
    x = arr(a["x"], "x", min_ndim=1)
    eps = num(a["eps"], "eps", _tiny(x.dtype), float(np.finfo(x.dtype).max) / 2)
    ref = f64(x) / np.maximum(_norms(x), eps)
    check = lambda r: close(r[0], ref, 1.0 + np.abs(ref), x.dtype)  # noqa: E731
    if x.size and (_norms(x) ** 2).max() > float(np.finfo(x.dtype).max) / 4:  # ||x||^2 may overflow: refused
        return Either(check, "x")
    return check


def draw_l2_back(data):
    a = draw_l2(data)
    return _back_args(data, L.l2_normalize_forward, a["x"], a["eps"])


def expect_l2_back(a):
    out, norm, eps = cache(a)
    denom, active = np.maximum(f64(norm), eps), norm > eps
    dout = f64(arr(a["dout"], "dout", dtype=out.dtype, shape=out.shape))
    radial = np.where(active, (dout * f64(out)).sum(-1, keepdims=True), 0)
    scale = (np.abs(dout) + np.abs(f64(out)) * np.abs(dout * f64(out)).sum(-1, keepdims=True)) / f64(denom)
    return lambda r: close(r, (dout - radial * f64(out)) / f64(denom), scale * 4, out.dtype)


SPECS = [
    Spec("affine_forward", L.affine_forward, draw_affine, expect_affine),
    Spec("affine_backward", L.affine_backward, draw_affine_back, expect_affine_back),
    Spec("relu_forward", L.relu_forward, draw_x, expect_relu),
    Spec("relu_backward", L.relu_backward, draw_pointwise_back(L.relu_forward), expect_relu_back),
    Spec("tanh_forward", L.tanh_forward, draw_x, expect_tanh),
    Spec("tanh_backward", L.tanh_backward, draw_pointwise_back(L.tanh_forward), expect_tanh_back),
    Spec("layernorm_forward", L.layernorm_forward, draw_layernorm, expect_layernorm),
    Spec("layernorm_backward", L.layernorm_backward, draw_layernorm_back, expect_layernorm_back),
    Spec("l2_normalize_forward", L.l2_normalize_forward, draw_l2, expect_l2),
    Spec("l2_normalize_backward", L.l2_normalize_backward, draw_l2_back, expect_l2_back),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_fuzz(spec):
    run_spec(spec)


def test_the_oracle_can_fail():
    """A deliberately wrong relu (it returns x) is caught: the fuzz is not vacuous."""
    saved = TALLY.copy()  # these planted failures are not outcomes of minivq
    with pytest.raises(AssertionError, match="wrong_result"):
        run_spec(Spec("relu_identity", lambda x: (np.asarray(x), None), draw_x, expect_relu, corrupt_rate=0.0),
                 examples=50, shrink=False)
    with pytest.raises(AssertionError, match="silently_accepted|wrong_argument|obscure"):
        run_spec(Spec("relu_no_checks", lambda x: (np.maximum(np.asarray(x, float), 0), None), draw_x,
                      expect_relu, corrupt_rate=1.0), examples=200, shrink=False)
    TALLY.clear()
    TALLY.update(saved)
