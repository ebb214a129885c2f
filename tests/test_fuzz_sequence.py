"""Fuzz of the sequence layers (convolution over time, patchify, embedding, masked mean):
a correct result or a ValueError/TypeError naming the argument (issue 10). Machinery: tests/fuzz/."""
import numpy as np
import pytest
from fuzz.oracle import arr, cache, close, equal, f64, integer, need
from fuzz.runner import Spec, run_spec
from fuzz.values import dims, dtype_of, floats, ints, mask
from hypothesis import strategies as st

from minivq import layers as L


def _back_args(data, fn, *args):
    out, c = fn(*args)
    return {"dout": floats(data, out.shape, out.dtype), "cache": c, "_cache": c}


# ----------------------------------------------------------------------------- conv1d
def draw_geometry(data):
    k = data.draw(st.integers(1, 4))
    return k, data.draw(st.integers(1, 3)), data.draw(st.integers(0, k - 1))


def geometry(T, k, stride, padding, names=("T", "k")):
    """The contract of conv1d_output_length: T_out, or Invalid naming the argument."""
    T = integer(T, names[0], 1, 1 << 24)
    k = integer(k, names[1], 1, 1 << 24)
    stride = integer(stride, "stride", 1, 1 << 24)
    padding = integer(padding, "padding", 0, k - 1)
    need(T + 2 * padding >= k, *names, why="padded input shorter than the kernel")
    return (T + 2 * padding - k) // stride + 1


def draw_conv(data):
    k, stride, padding = draw_geometry(data)
    B, C_in, C_out = dims(data, "B", "C_in", "C_out")
    T = data.draw(st.integers(max(1, k - 2 * padding), 7))
    dt = dtype_of(data)
    return {"x": floats(data, (B, T, C_in), dt), "W": floats(data, (k, C_in, C_out), dt),
            "b": floats(data, (C_out,), dt), "stride": stride, "padding": padding}


def conv_reference(x, W, b, stride, padding):
    """Direct sums, frame by frame, in float64, and the same sums of absolute values."""
    k = W.shape[0]
    T_out = (x.shape[1] + 2 * padding - k) // stride + 1
    xp = np.pad(f64(x), ((0, 0), (padding, padding), (0, 0)))
    out = np.zeros((x.shape[0], T_out, W.shape[2])) + f64(b)
    scale = np.zeros_like(out) + np.abs(f64(b))
    for t in range(T_out):
        for j in range(k):
            out[:, t] += xp[:, t * stride + j] @ f64(W[j])
            scale[:, t] += np.abs(xp[:, t * stride + j]) @ np.abs(f64(W[j]))
    return out, scale


def expect_conv(a):
    x = arr(a["x"], "x", ndim=3)
    W = arr(a["W"], "W", ndim=3, dtype=x.dtype, also=("x",))
    need(x.shape[0] >= 1 and x.shape[1] >= 1, "x")
    need(W.shape[1] == x.shape[2], "W", "x")
    b = arr(a["b"], "b", dtype=x.dtype, shape=(W.shape[2],), also=("x",))
    geometry(x.shape[1], W.shape[0], a["stride"], a["padding"], ("x", "W"))
    ref, scale = conv_reference(x, W, b, a["stride"], a["padding"])
    return lambda r: close(r[0], ref, scale, x.dtype)


def draw_conv_back(data):
    a = draw_conv(data)
    return {**_back_args(data, L.conv1d_forward, *a.values()), "_args": a}


def expect_conv_back(a):
    cache(a)
    x, W, b, stride, padding = a["_args"].values()
    out_shape = conv_reference(x, W, b, stride, padding)[0].shape
    dout = arr(a["dout"], "dout", dtype=x.dtype, shape=out_shape)
    eps = 1e-3  # linear in x and W: central differences of the float64 reference are exact up to rounding
    refs = []
    for name, v in (("x", f64(x)), ("W", f64(W))):
        g, sc = np.zeros(v.shape), np.zeros(v.shape)
        for i in np.ndindex(v.shape):
            e = np.zeros(v.shape)
            e[i] = 1.0
            args = {"x": f64(x), "W": f64(W), name: e}
            lin, absl = conv_reference(args["x"], args["W"], np.zeros(W.shape[2]), stride, padding)
            g[i], sc[i] = (lin * f64(dout)).sum(), (np.abs(lin) * np.abs(f64(dout))).sum()
        refs.append((g, sc))
    refs.append((f64(dout).sum((0, 1)), np.abs(f64(dout)).sum((0, 1))))
    del eps

    def check(r):
        for g, (ref, sc) in zip(r, refs, strict=True):
            close(g, ref, sc, x.dtype)
    return check


def draw_output_length(data):
    k, stride, padding = draw_geometry(data)
    return {"T": data.draw(st.integers(max(1, k - 2 * padding), 50)), "k": k, "stride": stride, "padding": padding}


def expect_output_length(a):
    T_out = geometry(a["T"], a["k"], a["stride"], a["padding"])
    return lambda r: equal(r, T_out)


def draw_output_mask(data):
    g = draw_output_length(data)
    B = data.draw(st.integers(0, 3))
    return {"M": mask(data, (B, g.pop("T")), at_least_one_per_row=False), **g}


def expect_output_mask(a):
    M = arr(a["M"], "M", "b", ndim=2)
    need(M.shape[1] >= 1, "M")
    T_out = geometry(M.shape[1], a["k"], a["stride"], a["padding"], ("M", "k"))
    ref = np.zeros((M.shape[0], T_out), bool)
    for t in range(T_out):
        c = t * a["stride"] - a["padding"] + (a["k"] - 1) // 2
        if 0 <= c < M.shape[1]:
            ref[:, t] = M[:, c]
    return lambda r: equal(r, ref)


# ----------------------------------------------------------------------------- patchify, embedding
def draw_patchify(data):
    p = data.draw(st.integers(1, 3))
    B, = dims(data, "B", low=0, high=3)
    r, c = dims(data, "rows", "cols", high=3)
    return {"images": floats(data, (B, r * p, c * p), dtype_of(data)), "patch": p}


def expect_patchify(a):
    images = arr(a["images"], "images", ndim=3)
    p = integer(a["patch"], "patch", 1)
    B, H, W = images.shape
    need(H % p == 0 and W % p == 0 and H > 0 and W > 0, "images", "patch")
    ref = np.array([[images[b, r * p:(r + 1) * p, c * p:(c + 1) * p].reshape(-1) for r in range(H // p)
                     for c in range(W // p)] for b in range(B)]).reshape(B, (H // p) * (W // p), p * p)

    def check(r):
        equal(r[0], ref.astype(images.dtype))
        equal(r[1], np.ones(ref.shape[:2], bool))
    return check


def draw_embedding(data):
    V, D = dims(data, "V", "D")
    shape = tuple(dims(data, *"ab"[:data.draw(st.integers(0, 2))], low=0))
    return {"ids": ints(data, shape, 0, V), "W": floats(data, (V, D), dtype_of(data))}


def expect_embedding(a):
    ids = arr(a["ids"], "ids", "i")
    W = arr(a["W"], "W", ndim=2)
    need(ids.size == 0 or (ids.min() >= 0 and ids.max() < W.shape[0]), "ids")
    return lambda r: equal(r[0], W[ids])


def draw_embedding_back(data):
    a = draw_embedding(data)
    return {**_back_args(data, L.embedding_forward, a["ids"], a["W"]), "_args": a}


def expect_embedding_back(a):
    cache(a)
    ids, W = a["_args"]["ids"], a["_args"]["W"]
    dout = arr(a["dout"], "dout", dtype=W.dtype, shape=ids.shape + (W.shape[1],))
    ref, scale = np.zeros(W.shape), np.zeros(W.shape)
    for i in np.ndindex(ids.shape):
        ref[ids[i]] += dout[i]
        scale[ids[i]] += np.abs(f64(dout[i]))
    return lambda r: close(r, ref, scale, W.dtype)


# ----------------------------------------------------------------------------- masked mean
def draw_masked_mean(data):
    B, T, D = dims(data, "B", "T", "D")
    return {"H": floats(data, (B, T, D), dtype_of(data)), "M": mask(data, (B, T))}


def expect_masked_mean(a):
    H = arr(a["H"], "H", ndim=3)
    M = arr(a["M"], "M", "b", shape=H.shape[:2])
    need(H.shape[0] >= 1, "H")
    need(M.sum(1).all(), "M")
    w = M / M.sum(1, keepdims=True)
    ref, scale = np.einsum("bt,btd->bd", w, f64(H)), np.einsum("bt,btd->bd", w, np.abs(f64(H)))
    return lambda r: close(r[0], ref, scale * 4, H.dtype)


def draw_masked_mean_back(data):
    a = draw_masked_mean(data)
    return {**_back_args(data, L.masked_mean_forward, a["H"], a["M"]), "_args": a}


def expect_masked_mean_back(a):
    cache(a)
    H, M = a["_args"]["H"], a["_args"]["M"]
    dout = arr(a["dout"], "dout", dtype=H.dtype, shape=(H.shape[0], H.shape[2]))
    ref = (M / M.sum(1, keepdims=True))[:, :, None] * f64(dout)[:, None, :]
    return lambda r: close(r, ref, np.abs(ref) * 2, H.dtype)


SPECS = [
    Spec("conv1d_forward", L.conv1d_forward, draw_conv, expect_conv),
    Spec("conv1d_backward", L.conv1d_backward, draw_conv_back, expect_conv_back, weight=0.5),
    Spec("conv1d_output_length", L.conv1d_output_length, draw_output_length, expect_output_length),
    Spec("conv1d_output_mask", L.conv1d_output_mask, draw_output_mask, expect_output_mask),
    Spec("patchify", L.patchify, draw_patchify, expect_patchify),
    Spec("embedding_forward", L.embedding_forward, draw_embedding, expect_embedding),
    Spec("embedding_backward", L.embedding_backward, draw_embedding_back, expect_embedding_back),
    Spec("masked_mean_forward", L.masked_mean_forward, draw_masked_mean, expect_masked_mean),
    Spec("masked_mean_backward", L.masked_mean_backward, draw_masked_mean_back, expect_masked_mean_back),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_fuzz(spec):
    run_spec(spec)
