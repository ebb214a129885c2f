"""The packed convolution stack (minivq/layers/packed.py) against the padded-batch reference.

The reference is the speech encoder as METHOD.md ENC states it: two
:func:`minivq.layers.conv1d_forward` on the zero-padded batch, ReLU and the
output mask between them. The packed path must give the same valid units and
the same parameter gradients, for any kernel, stride, mask (holes included)
and batch.
"""
import numpy as np
import pytest

from minivq import layers
from minivq.layers.packed import (conv1d_long_backward, conv1d_long_forward, pack, pack_layout,
                                  unpack_index)


def reference_stack(x, mask, W1, b1, W2, b2, k, s, dH):
    """Two padded-batch convolutions with ReLU and the centre-rule mask; valid units and grads."""
    pad = (k - 1) // 2
    x = x * mask[..., None]
    M1 = layers.conv1d_output_mask(mask, k, s, pad)
    a, c1 = layers.conv1d_forward(x, W1, b1, s, pad)
    h = np.maximum(a, 0) * M1[..., None]
    H, c2 = layers.conv1d_forward(h, W2, b2, s, pad)
    M = layers.conv1d_output_mask(M1, k, s, pad)
    dh, dW2, db2 = layers.conv1d_backward(dH * M[..., None], c2)
    _, dW1, db1 = layers.conv1d_backward(dh * M1[..., None] * (a > 0), c1)
    return H, M, (dW1, db1, dW2, db2)


def packed_stack(x, mask, W1, b1, W2, b2, k, s, dH):
    """The same stack through pack_layout / pack / conv1d_long_* / unpack_index."""
    pad = (k - 1) // 2
    offsets, L = pack_layout(mask, (k, k), (s, s))
    n_q = -(-k // s)
    T1 = layers.conv1d_output_length(L, k, s, pad)
    xp = np.zeros((max(L + 2 * pad, (T1 + n_q - 1) * s), x.shape[2]))
    Mp = pack(x, mask, offsets, L, pad, xp)
    M1 = layers.conv1d_output_mask(Mp, k, s, pad)[0]
    a, c1 = conv1d_long_forward(xp, W1, b1, s, T1)
    T2 = layers.conv1d_output_length(T1, k, s, pad)
    hp = np.zeros((max(T1 + 2 * pad, (T2 + n_q - 1) * s), W1.shape[2]), x.dtype)
    hp[pad:pad + T1] = np.maximum(a, 0) * M1[:, None]
    Hp, c2 = conv1d_long_forward(hp, W2, b2, s, T2)
    M = layers.conv1d_output_mask(layers.conv1d_output_mask(mask, k, s, pad), k, s, pad)
    rows = unpack_index(offsets, s * s, M.shape[1])
    H = np.zeros(M.shape + (W2.shape[2],), x.dtype)
    H[M] = Hp[rows[M]]
    dHp = np.zeros_like(Hp)
    dHp[rows[M]] = dH[M]
    dhp, dW2, db2 = conv1d_long_backward(dHp, c2)
    dh = dhp[pad:pad + T1] * (M1[:, None] & (a > 0))
    none, dW1, db1 = conv1d_long_backward(dh, c1, need_dx=False)
    assert none is None
    return H, M, (dW1, db1, dW2, db2)


@pytest.mark.parametrize("k,s", [(9, 3), (3, 1), (5, 2), (4, 2), (7, 3), (1, 1), (2, 3)])
@pytest.mark.parametrize("holes", [False, True])
def test_packed_stack_equals_the_padded_batch(k, s, holes):
    rng = np.random.default_rng(k * 10 + s + holes)
    B, T, C, Hd, D = 5, 40, 3, 4, 2
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T  # one sequence fills the batch
    mask = np.arange(T) < lengths[:, None]
    if holes:  # invalid frames inside a sequence read as zeros on both paths
        mask &= rng.random((B, T)) > 0.2
        mask[:, 0] = True
    x = rng.normal(size=(B, T, C)) + 50.0 * ~mask[..., None]  # garbage in the padding
    W1, b1 = rng.normal(size=(k, C, Hd)), rng.normal(size=Hd)
    W2, b2 = rng.normal(size=(k, Hd, D)), rng.normal(size=D)
    M_ref = layers.conv1d_output_mask(layers.conv1d_output_mask(mask, k, s, (k - 1) // 2), k, s, (k - 1) // 2)
    dH = rng.normal(size=M_ref.shape + (D,))
    H0, M0, g0 = reference_stack(x, mask, W1, b1, W2, b2, k, s, dH)
    H1, M1, g1 = packed_stack(x, mask, W1, b1, W2, b2, k, s, dH)
    np.testing.assert_array_equal(M0, M1)
    err = np.abs(H0[M0] - H1[M1]).max(initial=0) / max(np.abs(H0[M0]).max(initial=0), 1.0)
    assert err < 1e-13, f"valid units differ by {err:.1e} (rel), expect < 1e-13"
    for name, a, b in zip(("dW1", "db1", "dW2", "db2"), g0, g1):
        err = np.abs(a - b).max() / max(np.abs(a).max(), 1.0)
        assert err < 1e-13, f"{name} differs by {err:.1e} (rel), expect < 1e-13"


def test_layout_offsets_are_aligned_and_gaps_cover_the_reach():
    mask = np.arange(30) < np.array([30, 1, 17, 0, 9])[:, None]
    offsets, L = pack_layout(mask, (9, 9), (3, 3))
    assert np.all(offsets % 9 == 0)
    extent = mask.sum(1)
    ends = np.append(offsets[1:], L)
    reach = 4 + 3 * 4  # k // 2 frames at each layer, the second at stride 3
    assert np.all(ends - offsets >= extent + reach)
    assert L < mask.sum() + len(mask) * (reach + 9), "no more than the gap and alignment per sequence"


@pytest.mark.parametrize("k,s", [(9, 3), (4, 3), (3, 1)])
def test_long_convolution_gradient_check(k, s):
    from minivq.gradcheck import numerical_gradient
    rng = np.random.default_rng(7)
    C, Co, T_out = 2, 3, 6
    n_q = -(-k // s)
    xp = rng.normal(size=((T_out + n_q - 1) * s, C))
    W, b = rng.normal(size=(k, C, Co)), rng.normal(size=Co)
    dy = rng.normal(size=(T_out, Co))
    _, cache = conv1d_long_forward(xp, W, b, s, T_out)
    dxp, dW, db = conv1d_long_backward(dy, cache)
    for name, arr, grad in (("xp", xp, dxp), ("W", W, dW), ("b", b, db)):
        num = numerical_gradient(lambda _: conv1d_long_forward(xp, W, b, s, T_out)[0], arr, dy)
        err = np.abs(num - grad).max() / max(np.abs(num).max(), 1e-12)
        assert err < 1e-7, f"d{name} rel_error {err:.1e}, expect < 1e-7"


@pytest.mark.parametrize("holes", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_pack_equals_its_fancy_indexing_reference(holes, dtype):
    from minivq.layers.packed import _pack_reference
    rng = np.random.default_rng(3 + holes)
    B, T, C, k, s = 6, 31, 3, 9, 3
    lengths = rng.integers(0, T + 1, size=B)  # an empty sequence too
    lengths[0], lengths[1] = T, 0
    mask = np.arange(T) < lengths[:, None]
    if holes:
        mask &= rng.random((B, T)) > 0.3
    x = rng.normal(size=(B, T, C)) + 50.0 * ~mask[..., None]  # float64 data into a `dtype` buffer
    offsets, L = pack_layout(mask, (k, k), (s, s))
    out0, out1 = np.zeros((L + 2 * 4 + 5, C), dtype), np.zeros((L + 2 * 4 + 5, C), dtype)
    pm0 = _pack_reference(x.astype(dtype), mask, offsets, L, 4, out0)
    pm1 = pack(x, mask, offsets, L, 4, out1)
    np.testing.assert_array_equal(pm0, pm1)
    np.testing.assert_array_equal(out0, out1)


@pytest.mark.parametrize("k,s", [(9, 3), (3, 1), (5, 2), (4, 2), (2, 3)])
def test_centre_mask_is_the_conv_output_mask(k, s):
    from minivq.speech_encoder import _centre_mask
    rng = np.random.default_rng(k + s)
    mask = rng.random((4, 23)) > 0.3
    pad = (k - 1) // 2
    T_out = layers.conv1d_output_length(23, k, s, pad)
    np.testing.assert_array_equal(_centre_mask(mask, s, T_out), layers.conv1d_output_mask(mask, k, s, pad))


@pytest.mark.parametrize("k,s", [(9, 3), (5, 2), (3, 1), (4, 3)])
@pytest.mark.parametrize("holes", [False, True])
def test_speech_encoder_equals_the_padded_batch(k, s, holes):
    """minivq.speech_encoder (in-place ReLU and mask, fused buffers) against the padded reference."""
    from minivq.speech_encoder import speech_backward, speech_forward
    rng = np.random.default_rng(100 + 10 * k + s + holes)
    B, T, C, Hd, D = 5, 47, 3, 4, 2
    lengths = rng.integers(k, T + 1, size=B)
    mask = np.arange(T) < lengths[:, None]
    if holes:
        mask &= rng.random((B, T)) > 0.2
        mask[:, 0] = True
    x = rng.normal(size=(B, T, C)) + 50.0 * ~mask[..., None]
    P = {"W1": rng.normal(size=(k, C, Hd)), "b1": rng.normal(size=Hd),
         "W2": rng.normal(size=(k, Hd, D)), "b2": rng.normal(size=D)}
    H, M, cache, signs = speech_forward(P, x, mask, k, s, np.dtype(np.float64))
    dH = rng.normal(size=H.shape)
    H0, M0, g0 = reference_stack(x, mask, P["W1"], P["b1"], P["W2"], P["b2"], k, s, dH)
    np.testing.assert_array_equal(M, M0)
    assert np.all(H[~M] == 0), "invalid units come out as zeros"
    np.testing.assert_allclose(H[M], H0[M0], rtol=1e-12, atol=1e-12)
    grads = speech_backward(dH, cache)
    for name, ref in zip(("W1", "b1", "W2", "b2"), g0):
        np.testing.assert_allclose(grads[name], ref, rtol=1e-12, atol=1e-12, err_msg=name)
    assert signs.shape == cache[2].shape and signs.dtype == H.dtype and set(np.unique(signs)) <= {0.0, 1.0}


def test_long_convolution_writes_into_out():
    rng = np.random.default_rng(5)
    k, s, C, Co, T_out = 9, 3, 2, 3, 7
    xp = rng.normal(size=((T_out + 2) * s, C))
    W, b = rng.normal(size=(k, C, Co)), rng.normal(size=Co)
    y0, _ = conv1d_long_forward(xp, W, b, s, T_out)
    buf = np.full((T_out + 4, Co), np.nan)
    y1, _ = conv1d_long_forward(xp, W, b, s, T_out, out=buf[2:2 + T_out])
    assert np.shares_memory(y1, buf)
    np.testing.assert_array_equal(y0, y1)
    assert np.isnan(buf[:2]).all() and np.isnan(buf[2 + T_out:]).all()
