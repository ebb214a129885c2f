"""1-D convolution over time (METHOD.md ENC) and the mask of its output.

x (B, T, C_in) is zero-padded by ``padding`` frames at both ends; output
frame t sees the k input frames starting at t * stride (in the padded
signal). The forward is one GEMM on an im2col matrix built from a strided
view; the backward is one GEMM back to that matrix and a scatter-add of its
k taps onto the input frames. Derivation:
``notebooks/02_layers_and_gradient_checks.ipynb``.
"""
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._checks import (MAX_SIZE, as_array, check_cache, check_dout, check_float, check_int, check_mask, check_shape,
                       rescaled, rescaled_forward)

__all__ = ["conv1d_forward", "conv1d_backward", "conv1d_output_length", "conv1d_output_mask"]


def conv1d_output_length(T, k, stride=1, padding=0):
    """T_out = floor((T + 2 padding - k) / stride) + 1, or ValueError if < 1.

    T, k and stride in [1, 2^24]; padding in [0, k - 1] (more padding would
    only add output frames that see nothing but zeros).
    """
    return _check_geometry(T, k, stride, padding, ("T", "k"))


def _check_geometry(T, k, stride, padding, names):
    """T_out after checking T, k, stride, padding; ``names`` spell T and k as the caller gave them."""
    if not isinstance(T, (int, np.integer)) or isinstance(T, bool) or not 1 <= T <= MAX_SIZE:
        check_int(T, names[0], 1, MAX_SIZE)
    k = check_int(k, names[1], 1, MAX_SIZE)
    stride = check_int(stride, "stride", 1, MAX_SIZE)
    padding = check_int(padding, "padding", 0, k - 1)
    if T + 2 * padding < k:
        raise ValueError(f"{names[1]} must be at most T + 2 * padding = {T + 2 * padding}, got k = {k}: "
                         "the padded input is shorter than the kernel")
    return (int(T) + 2 * padding - k) // stride + 1


def _im2col(x, k, stride, padding, T_out):
    """Rows of k consecutive (padded) frames: (B * T_out, k * C_in), tap-major."""
    B, T, C_in = x.shape
    xp = np.zeros((B, T + 2 * padding, C_in), dtype=x.dtype)
    xp[:, padding:padding + T] = x
    windows = sliding_window_view(xp, k, axis=1)  # (B, T + 2p - k + 1, C_in, k), a view
    windows = windows[:, ::stride].transpose(0, 1, 3, 2)  # (B, T_out, k, C_in), a view
    return windows.reshape(B * T_out, k * C_in)  # the one copy


def conv1d_forward(x, W, b, stride=1, padding=0):
    """Convolution over time, zero padding at both ends.

    Parameters
    ----------
    x : ndarray, (B, T, C_in), float32 or float64
    W : ndarray, (k, C_in, C_out), x's dtype
        W[j] multiplies the j-th frame of each window.
    b : ndarray, (C_out,), x's dtype
    stride : int >= 1
    padding : int >= 0

    Returns
    -------
    out : ndarray, (B, T_out, C_out), T_out = (T + 2 padding - k) // stride + 1
    cache : tuple (cols, W, x.shape, stride, padding)

    Notes
    -----
    (ENC) With xp the padded input,
    y[b, t] = sum_j xp[b, t * stride + j] W[j] + b.
    Stacking each window as one row (im2col) gives
    Y (B T_out, C_out) = cols (B T_out, k C_in) W (k C_in, C_out) + b.
    """
    x = check_float(x, "x", "(B, T, C_in)", ndim=3)
    W = check_float(W, "W", "(k, C_in, C_out)", ndim=3, dtype=x.dtype, like="x")
    B, T, C_in = x.shape
    k, _, C_out = W.shape
    if B == 0:
        raise ValueError(f"x must hold at least one sequence (B >= 1), got shape {x.shape}")
    if W.shape[1] != C_in:
        raise ValueError(f"W must have C_in = {C_in} input channels (axis 1) to match x {x.shape}, got W {W.shape}")
    b = check_float(b, "b", "(C_out,)", dtype=x.dtype, like="x")
    check_shape(b, "b", (C_out,), "(C_out,)")
    if T == 0:
        raise ValueError(f"x must hold at least one frame (T >= 1), got shape {x.shape}")
    _check_geometry(T, k, stride, padding, ("x's T", "W's k (axis 0)"))
    return rescaled_forward(_conv1d_forward, x, W, b, stride, padding)


def _conv1d_forward(x, W, b, stride=1, padding=0):
    """:func:`conv1d_forward` without the checks."""
    B, T, C_in = x.shape
    k, _, C_out = W.shape
    T_out = (T + 2 * padding - k) // stride + 1
    cols = _im2col(x, k, stride, padding, T_out)  # (B * T_out, k * C_in)
    out = cols @ W.reshape(k * C_in, C_out) + b  # (B * T_out, C_out)
    return out.reshape(B, T_out, C_out), (cols, W, x.shape, stride, padding)


def conv1d_backward(dout, cache):
    """Gradients of :func:`conv1d_forward`: (dx, dW, db).

    Notes
    -----
    In reverse: db = sum_{b,t} dy[b, t]; dW = cols^T dY;
    dcols = dY W^T; then each tap j adds its slice back to the frames it
    read: dxp[b, t * stride + j] += dcols[b, t, j]; finally dx drops the
    padding, dx = dxp[:, padding : padding + T].
    """
    cols, W, x_shape, stride, padding = check_cache(
        cache, ((np.ndarray, 2), (np.ndarray, 3), tuple, int, int), "conv1d_forward")
    T_out = cols.shape[0] // x_shape[0]
    return rescaled(_conv1d_backward, check_dout(dout, (x_shape[0], T_out, W.shape[2]), W.dtype), cache)


def _conv1d_backward(dout, cache):
    """:func:`conv1d_backward` without the checks."""
    cols, W, x_shape, stride, padding = cache
    B, T, C_in = x_shape
    k, _, C_out = W.shape
    T_out = cols.shape[0] // B
    ### BEGIN SOLUTION conv1d_backward
    dout2 = dout.reshape(B * T_out, C_out)
    db = dout2.sum(axis=0)
    dW = (cols.T @ dout2).reshape(k, C_in, C_out)
    dcols = (dout2 @ W.reshape(k * C_in, C_out).T).reshape(B, T_out, k, C_in)
    dxp = np.zeros((B, T + 2 * padding, C_in), dtype=W.dtype)
    span = stride * (T_out - 1) + 1  # frames from the first to the last window start
    for j in range(k):  # scatter-add tap j onto the frames it read
        dxp[:, j:j + span:stride] += dcols[:, :, j]
    return dxp[:, padding:padding + T], dW, db
    ### END SOLUTION


def conv1d_output_mask(M, k, stride=1, padding=0):
    """Validity of each output frame of :func:`conv1d_forward`.

    Parameters
    ----------
    M : ndarray, (B, T), bool
        Input mask (True = valid frame).
    k, stride, padding : int
        As in :func:`conv1d_forward`.

    Returns
    -------
    ndarray, (B, T_out), bool

    Notes
    -----
    Output frame t is valid iff its window centre c = t * stride - padding +
    (k - 1) // 2 (an index into the unpadded input) satisfies 0 <= c < T and
    M[b, c]; a unit's label is then the label of input frame c.
    """
    M = as_array(M, "M", "(B, T)")
    if M.ndim != 2:
        raise ValueError(f"M must be 2-D (B, T), got shape {M.shape}")
    M = check_mask(M, M.shape, "(B, T)")
    if M.shape[1] == 0:
        raise ValueError(f"M must hold at least one frame (T >= 1), got shape {M.shape}")
    _check_geometry(M.shape[1], k, stride, padding, ("M's T", "k"))
    return _conv1d_output_mask(M, k, stride, padding)


def _conv1d_output_mask(M, k, stride=1, padding=0):
    """:func:`conv1d_output_mask` without the checks."""
    B, T = M.shape
    T_out = (T + 2 * padding - k) // stride + 1
    centre = np.arange(T_out) * stride - padding + (k - 1) // 2  # (T_out,)
    inside = (centre >= 0) & (centre < T)
    out = np.zeros((B, T_out), dtype=bool)
    out[:, inside] = M[:, centre[inside]]
    return out
