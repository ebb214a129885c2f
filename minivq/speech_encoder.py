"""The speech encoder on packed sequences: conv1d, ReLU, conv1d over log-mel frames (METHOD.md ENC).

The encoder is two strided convolutions (kernel k, stride s, padding
(k - 1) // 2) with a ReLU between them, on the frames of each caption; frames
after a caption's end, and any frame its mask marks invalid, read as zeros.
As :func:`minivq.layers.conv1d_forward` on the padded batch it would spend
half its work on padding, so it runs on the captions laid end to end
(:mod:`minivq.layers.packed`): the same valid units, the same gradients
(``tests/test_packed.py`` and the encoder's gradient check), about a third
of the time. Units that the mask marks invalid come out as zeros. The pack,
the sums of the convolutions' tap blocks, the first layer's bias and ReLU,
and the bias gradients run compiled when built (:mod:`minivq._packed_fast`;
the same bits, ``tests/test_compiled_step.py``).

    x (B, T, n_mels) --pack--> xp (L, n_mels) --conv1d, ReLU, mask M1--> h (T1, hidden)
      --conv1d--> Hp (T2, D) --unpack--> H (B, T_out, D), M (B, T_out)
"""
import numpy as np

from .layers.packed import (_pack, _pack_layout, bias_relu, conv1d_long_backward, conv1d_long_forward,
                            pack_zeroes_gaps, unpack_index)

__all__ = ["speech_forward", "speech_backward"]


def _out_length(T, k, s, pad):
    """Output frames of a convolution (as :func:`minivq.layers.conv1d_output_length`, unchecked)."""
    return (T + 2 * pad - k) // s + 1


def _centre_mask(mask, s, T_out):
    """(B, T_out) validity of the outputs of a convolution with padding (k - 1) // 2, stride s.

    With that padding the window centre of output t is input frame t * s, so
    the centre rule of :func:`minivq.layers.conv1d_output_mask` is a strided
    read of the mask (False beyond its end).
    """
    B, T = mask.shape
    out = np.zeros((B, T_out), dtype=bool)
    centres = mask[:, ::s][:, :T_out]
    out[:, :centres.shape[1]] = centres
    return out


def _padded_buffer(rows, C, dtype, T_out, k, s, pad, fill=True):
    """A zero buffer with room for ``pad`` + rows + pad frames and the tap blocks of T_out outputs.

    ``fill=False``: only the frames outside ``pad:pad + rows`` are zeroed, for a caller that writes all of those.
    """
    n_q = -(-k // s)
    shape = (max(rows + 2 * pad, (T_out + n_q - 1) * s), C)
    if fill:
        return np.zeros(shape, dtype=dtype)
    buf = np.empty(shape, dtype=dtype)
    buf[:pad] = 0
    buf[pad + rows:] = 0
    return buf


def speech_forward(P, x, mask, k, s, dtype):
    """Units of a batch of log-mel captions (ENC).

    Parameters
    ----------
    P : dict
        ``W1`` (k, n_mels, hidden), ``b1`` (hidden,), ``W2`` (k, hidden, D), ``b2`` (D,).
    x : ndarray, (B, T, n_mels)
    mask : ndarray of bool, (B, T)
        Valid frames.
    k, s : int
        Kernel and stride of both convolutions.
    dtype : numpy dtype
        Of the computation (the parameters').

    Returns
    -------
    H : ndarray, (B, T_out, D)
        Zero on invalid units.
    M : ndarray of bool, (B, T_out)
        Valid units: the window centre rule of :func:`minivq.layers.conv1d_output_mask`, twice.
    cache : tuple
        For :func:`speech_backward`.
    signs : ndarray, (T1, hidden), of ``dtype``
        The ReLU's signs on the valid hidden frames (its kinks, for gradient
        checks): 1 where it passes, 0 where it does not and on the frames the
        mask zeroes (the backward multiplies by it).

    Notes
    -----
    The first convolution writes straight into the second one's padded
    input, where its bias, the ReLU and the hidden mask are applied in place
    (:func:`minivq.layers.packed.bias_relu`): no pre-activation array, no copy.
    """
    pad = (k - 1) // 2
    offsets, L, extent = _pack_layout(mask, (k, k), (s, s))
    T1 = _out_length(L, k, s, pad)
    xp = _padded_buffer(L, x.shape[2], dtype, T1, k, s, pad, fill=not pack_zeroes_gaps(x, mask, dtype))
    packed_mask = _pack(x, mask, offsets, extent, L, pad, xp)  # cast to dtype as it is written
    M1 = _centre_mask(packed_mask, s, T1)[0]  # (T1,) valid hidden frames
    T2 = _out_length(T1, k, s, pad)
    hp = _padded_buffer(T1, P["W1"].shape[2], dtype, T2, k, s, pad, fill=False)  # conv 1 writes the rest
    h, c1 = conv1d_long_forward(xp, P["W1"], None, s, T1, out=hp[pad:pad + T1])  # (T1, hidden), in hp
    # + b1 and the ReLU on the valid frames, in place: the padding between captions stays zero
    keep = bias_relu(h, P["b1"], M1)  # 1 where the ReLU passes on a valid frame, else 0
    Hp, c2 = conv1d_long_forward(hp, P["W2"], P["b2"], s, T2)  # (T2, D)
    T_hidden = _out_length(mask.shape[1], k, s, pad)  # of the unpacked batch
    M = _centre_mask(_centre_mask(mask, s, T_hidden), s, _out_length(T_hidden, k, s, pad))  # (B, T_out)
    rows = unpack_index(offsets, s * s, M.shape[1])[M]  # packed row of each valid unit
    units = np.flatnonzero(M)  # the valid units, as rows of H (B * T_out, D); np.take: no boolean mask pass
    H = np.zeros(M.shape + (Hp.shape[1],), dtype=dtype)
    H.reshape(-1, Hp.shape[1])[units] = np.take(Hp, rows, axis=0)  # H[M] = Hp[rows]
    return H, M, (c1, c2, keep, rows, units, pad, T1, Hp.shape), keep


def speech_backward(dH, cache):
    """Gradients of :func:`speech_forward` with respect to ``W1, b1, W2, b2``.

    The input's gradient is not computed: the frames are data, not parameters.
    """
    c1, c2, keep, rows, units, pad, T1, packed_shape = cache
    dHp = np.zeros(packed_shape, dtype=dH.dtype)
    dHp[rows] = np.take(dH.reshape(-1, packed_shape[1]), units, axis=0)  # dH[M]; a packed row holds at most one unit
    dhp, dW2, db2 = conv1d_long_backward(dHp, c2)
    da = dhp[pad:pad + T1]
    np.multiply(da, keep, out=da)  # through the mask and the ReLU, in place
    _, dW1, db1 = conv1d_long_backward(da, c1, need_dx=False)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}
