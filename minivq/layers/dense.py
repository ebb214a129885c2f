"""Pointwise and per-row layers: affine, ReLU, tanh, layer norm, L2 normalization (METHOD.md ENC, SUM-3).

Each layer is a cs231n-style pair: ``out, cache = <name>_forward(...)`` and
``grads = <name>_backward(dout, cache)``, the gradients in the order of the
forward's differentiable inputs. Derivations:
``notebooks/02_layers_and_gradient_checks.ipynb``; gradient checks:
``tests/test_layers.py``. Argument checks: :mod:`minivq.checks.layers`.
"""
import math

import numpy as np

from ..checks import checked
from ..checks import layers as check

__all__ = [
    "affine_forward", "affine_backward", "relu_forward", "relu_backward",
    "tanh_forward", "tanh_backward", "layernorm_forward", "layernorm_backward",
    "l2_normalize_forward", "l2_normalize_backward",
]


@checked(check.affine_forward)
def affine_forward(x, W, b):
    """Affine map of the last axis, y = x W + b (ENC).

    x (..., D_in), W (D_in, D_out), b (D_out,), one float dtype.
    Returns out (..., D_out) and the cache (x, W).
    """
    out = x @ W + b  # (..., D_out): the leading axes are rows of one GEMM
    return out, (x, W)


@checked(check.affine_backward)
def affine_backward(dout, cache, need_dx=True):
    """Gradients of :func:`affine_forward`: (dx, dW, db).

    With X (N, D_in) the rows of x and dY (N, D_out): dX = dY W^T,
    dW = X^T dY, db = sum_n dY_n. ``need_dx=False`` (a first layer, whose
    input is data) returns None for dx and skips its product.
    """
    x, W = cache
    ### BEGIN SOLUTION affine_backward
    D_in, D_out = W.shape
    N = math.prod(x.shape[:-1])  # rows (reshape(-1, 0) fails for D_in = 0)
    x2 = x.reshape(N, D_in)  # (N, D_in)
    dout2 = dout.reshape(N, D_out)  # (N, D_out)
    dx = (dout2 @ W.T).reshape(x.shape) if need_dx else None
    dW = x2.T @ dout2  # (D_in, D_out)
    db = dout2.sum(axis=0)
    return dx, dW, db
    ### END SOLUTION


@checked(check.relu_forward)
def relu_forward(x):
    """max(x, 0), elementwise (ENC); the cache is the mask x > 0.

    The derivative used at the kink x = 0 is 0 (a subgradient); finite
    differences across it are meaningless (``kinks`` in
    :func:`minivq.gradcheck.check_backward`).
    """
    positive = np.asarray(x > 0)
    return np.asarray(x * positive), (positive, x.dtype)  # x * [x > 0]: as np.where, several times faster


@checked(check.relu_backward)
def relu_backward(dout, cache):
    """dx = dout * [x > 0]."""
    positive, _ = cache
    return np.asarray(dout * positive)


@checked(check.tanh_forward)
def tanh_forward(x):
    """tanh, elementwise (ENC); the cache is the output, since d tanh(x)/dx = 1 - tanh(x)^2."""
    out = np.asarray(np.tanh(x))
    return out, (out,)


@checked(check.tanh_backward)
def tanh_backward(dout, cache):
    """dx = dout * (1 - out^2)."""
    (out,) = cache
    return np.asarray(dout * (1 - out * out))


@checked(check.layernorm_forward)
def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Layer normalization over the last axis (ENC).

    x (..., D); gamma, beta (D,). Per row: mu = mean(x), xc = x - mu,
    var = mean(xc^2), rstd = (var + eps)^(-1/2), xhat = xc rstd,
    y = gamma xhat + beta. Returns y and the cache (xhat, rstd, gamma).
    """
    xc = x - x.mean(axis=-1, keepdims=True)
    var = (xc * xc).mean(axis=-1, keepdims=True)  # (..., 1)
    rstd = 1 / np.sqrt(var + x.dtype.type(eps))
    xhat = xc * rstd
    return gamma * xhat + beta, (xhat, rstd, gamma)


@checked(check.layernorm_backward)
def layernorm_backward(dout, cache):
    """Gradients of :func:`layernorm_forward`: (dx, dgamma, dbeta).

    dbeta = sum dy, dgamma = sum dy xhat, dxhat = dy gamma, and per row
    dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)).
    """
    xhat, rstd, gamma = cache
    D = xhat.shape[-1]
    dbeta = dout.reshape(-1, D).sum(axis=0)
    dgamma = (dout * xhat).reshape(-1, D).sum(axis=0)
    dxhat = dout * gamma
    dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                 - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    return dx, dgamma, dbeta


@checked(check.l2_normalize_forward)
def l2_normalize_forward(x, eps=1e-12):
    """Each row of the last axis to unit length: y = x / max(||x||, eps) (SUM-3, and the units).

    Returns y (x's shape) and the cache (y, ||x|| (..., 1), eps). Below eps
    the denominator is the constant eps, so the map is linear there.
    """
    norm = np.sqrt(np.einsum("...d,...d->...", x, x))[..., None]  # (..., 1); einsum: a short last axis, fast
    out = x / np.maximum(norm, x.dtype.type(eps))
    return out, (out, norm, float(eps))


@checked(check.l2_normalize_backward)
def l2_normalize_backward(dout, cache):
    """dx = (dout - [||x|| > eps] y <y, dout>) / max(||x||, eps).

    With y = x / n, n = ||x||: dy/dx = (I - y y^T) / n, which removes the
    component of dout along y.
    """
    out, norm, eps = cache
    ### BEGIN SOLUTION l2_normalize_backward
    radial = np.einsum("...d,...d->...", dout, out)[..., None]  # (..., 1) <y, dout>, row by row
    return (dout - (norm > eps) * radial * out) / np.maximum(norm, out.dtype.type(eps))
    ### END SOLUTION
