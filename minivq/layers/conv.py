"""1-D convolution over time (METHOD.md ENC) and the mask of its output.

x (B, T, C_in) is zero-padded by ``padding`` frames at both ends; output
frame t reads the k frames starting at t * stride of the padded signal. The
text encoder runs it on a padded batch, the speech encoder on its captions
packed end to end (B = 1, :func:`minivq.encoders.pack`). Derivation:
``notebooks/02_layers_and_gradient_checks.ipynb``.
"""
import numpy as np

from ..checks import checked
from ..checks import layers as check

__all__ = ["conv1d_forward", "conv1d_backward", "conv1d_output_length", "conv1d_centres",
           "conv1d_output_mask"]


@checked(check.conv1d_output_length)
def conv1d_output_length(T, k, stride=1, padding=0):
    """T_out = floor((T + 2 padding - k) / stride) + 1; padding in [0, k - 1]."""
    return (T + 2 * padding - k) // stride + 1


@checked(check.conv1d_forward)
def conv1d_forward(x, W, b, stride=1, padding=0):
    """Convolution over time, zero padding at both ends (ENC).

    Parameters
    ----------
    x : ndarray, (B, T, C_in), float32 or float64
    W : ndarray, (k, C_in, C_out), x's dtype; W[j] multiplies frame j of each window
    b : ndarray, (C_out,)
    stride : int >= 1
    padding : int in [0, k - 1]

    Returns
    -------
    out : ndarray, (B, T_out, C_out), T_out = (T + 2 padding - k) // stride + 1
    cache : tuple, for :func:`conv1d_backward`

    Notes
    -----
    y[b, t] = sum_j xp[b, t stride + j] W[j] + b, with xp the padded input.
    Computed by tap blocks, without an im2col copy: the k taps form
    n_q = ceil(k / stride) blocks W_q of ``stride`` taps each (zero taps fill
    the last); the padded input viewed as rows of ``stride`` frames,
    xv (B, T_out + n_q - 1, stride C_in), is a free reshape, and output t
    reads its rows t .. t + n_q - 1: Y = sum_q xv[:, q : q + T_out] W_q + b.
    """
    B, T, C_in = x.shape
    k, _, C_out = W.shape
    T_out = conv1d_output_length(T, k, stride, padding)
    n_q = -(-k // stride)
    Wq = np.zeros((n_q * stride, C_in, C_out), dtype=W.dtype)
    Wq[:k] = W
    Wq = Wq.reshape(n_q, stride * C_in, C_out)  # (n_q, s C_in, C_out)
    rows = T_out + n_q - 1
    xp = np.zeros((B, rows * stride, C_in), dtype=x.dtype)  # frames beyond the last window are never read
    n = min(T, rows * stride - padding)
    xp[:, padding:padding + n] = x[:, :n]
    xv = xp.reshape(B, rows, stride * C_in)
    out = xv[:, :T_out] @ Wq[0]
    for q in range(1, n_q):
        out += xv[:, q:q + T_out] @ Wq[q]
    out += b
    return out, (xv, Wq, x.shape, k, stride, padding)


@checked(check.conv1d_backward)
def conv1d_backward(dout, cache, need_dx=True):
    """Gradients of :func:`conv1d_forward`: (dx, dW, db); dx is None with ``need_dx=False`` (data input).

    Notes
    -----
    The forward's sums transposed: db = sum_{b,t} dy[b, t];
    dW_q = sum_b xv[b, q : q + T_out]^T dY[b]; dxv[:, q : q + T_out] += dY W_q^T,
    then dx is dxv's frames without the padding.
    """
    xv, Wq, x_shape, k, stride, padding = cache
    B, T, C_in = x_shape
    n_q, _, C_out = Wq.shape
    T_out = dout.shape[1]
    ### BEGIN SOLUTION conv1d_backward
    db = dout.sum(axis=(0, 1))
    dWq = np.stack([(xv[:, q:q + T_out].transpose(0, 2, 1) @ dout).sum(axis=0) for q in range(n_q)])
    dW = dWq.reshape(n_q * stride, C_in, C_out)[:k]
    if not need_dx:
        return None, dW, db
    dxv = np.zeros_like(xv)
    for q in range(n_q):
        dxv[:, q:q + T_out] += dout @ Wq[q].T
    dxp = dxv.reshape(B, -1, C_in)
    dx = np.zeros(x_shape, dtype=dout.dtype)
    n = min(T, dxp.shape[1] - padding)
    dx[:, :n] = dxp[:, padding:padding + n]
    return dx, dW, db
    ### END SOLUTION


@checked(check.conv1d_output_length)
def conv1d_centres(T, k, stride=1, padding=0):
    """The window centre of each output frame, c = t stride - padding + (k - 1) // 2: (T_out,), may leave [0, T)."""
    return np.arange(conv1d_output_length(T, k, stride, padding)) * stride - padding + (k - 1) // 2


@checked(check.conv1d_output_mask)
def conv1d_output_mask(M, k, stride=1, padding=0):
    """Validity (B, T_out) of each output frame of :func:`conv1d_forward`, from the input mask M (B, T).

    Output frame t is valid iff its window centre c = t stride - padding +
    (k - 1) // 2 (an input frame) lies in [0, T) and M[b, c]; a unit's label
    is the label of frame c (the window-centre rule).
    """
    B, T = M.shape
    centre = conv1d_centres(T, k, stride, padding)
    inside = (centre >= 0) & (centre < T)
    out = np.zeros((B, len(centre)), dtype=bool)
    out[:, inside] = M[:, centre[inside]]
    return out
