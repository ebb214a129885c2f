"""Pointwise and per-row layers: affine, ReLU, tanh, layer norm, L2 normalization.

The building blocks of the encoders (METHOD.md ENC) and of the summary path
(SUM-1, SUM-3). Each layer is a cs231n-style pair: ``forward`` returns
``(out, cache)`` with the cache a plain tuple of exactly what ``backward``
needs; ``backward(dout, cache)`` returns the gradients in the order of the
forward's differentiable inputs. Derivations:
``notebooks/02_layers_and_gradient_checks.ipynb``; gradient checks:
``tests/test_layers.py``.
"""
import math

import numpy as np

from .._checks import check_cache, check_dout, check_eps, check_float, check_shape, rescaled, rescaled_forward

__all__ = [
    "affine_forward", "affine_backward", "relu_forward", "relu_backward",
    "tanh_forward", "tanh_backward", "layernorm_forward", "layernorm_backward",
    "l2_normalize_forward", "l2_normalize_backward",
]


def affine_forward(x, W, b):
    """Affine map of the last axis, y = x W + b.

    Parameters
    ----------
    x : ndarray, (..., D_in), float32 or float64
    W : ndarray, (D_in, D_out), x's dtype
    b : ndarray, (D_out,), x's dtype

    Returns
    -------
    out : ndarray, (..., D_out)
    cache : tuple (x, W)

    Notes
    -----
    (ENC) The leading axes are flattened into one matrix of N rows, so the
    whole batch is one GEMM: Y (N, D_out) = X (N, D_in) W + 1 b^T.
    """
    x = check_float(x, "x", "(..., D_in)", min_ndim=1)
    W = check_float(W, "W", "(D_in, D_out)", ndim=2, dtype=x.dtype, like="x")
    D_in, D_out = W.shape
    if x.shape[-1] != D_in:
        raise ValueError(f"x must have D_in = {D_in} features (last axis) to match W {W.shape}, got x {x.shape}")
    b = check_float(b, "b", "(D_out,)", dtype=x.dtype, like="x")
    check_shape(b, "b", (D_out,), "(D_out,)")
    return rescaled_forward(_affine_forward, x, W, b)


def _affine_forward(x, W, b):
    """:func:`affine_forward` without the checks."""
    D_in, D_out = W.shape
    N = math.prod(x.shape[:-1])  # rows (0 for an empty batch; reshape(-1) fails when D_in = 0)
    out = x.reshape(N, D_in) @ W  # (N, D_out)
    out += b
    return out.reshape(x.shape[:-1] + (D_out,)), (x, W)


def affine_backward(dout, cache):
    """Gradients of :func:`affine_forward`: (dx, dW, db).

    Notes
    -----
    With X (N, D_in) and dY (N, D_out): dX = dY W^T, dW = X^T dY,
    db = sum_n dY_n (b is broadcast over the N rows, so its gradient sums).
    """
    x, W = check_cache(cache, (np.ndarray, (np.ndarray, 2)), "affine_forward")
    return rescaled(_affine_backward, check_dout(dout, x.shape[:-1] + (W.shape[1],), x.dtype), cache)


def _affine_backward(dout, cache, need_dx=True):
    """:func:`affine_backward` without the checks; ``need_dx=False`` (a first layer, whose input is
    data) returns None for dx and skips its product."""
    x, W = cache
    ### BEGIN SOLUTION affine_backward
    D_in, D_out = W.shape
    N = math.prod(x.shape[:-1])
    x2 = x.reshape(N, D_in)  # (N, D_in)
    dout2 = dout.reshape(N, D_out)  # (N, D_out)
    dx = (dout2 @ W.T).reshape(x.shape) if need_dx else None
    dW = x2.T @ dout2  # (D_in, D_out)
    db = dout2.sum(axis=0)
    return dx, dW, db
    ### END SOLUTION


def relu_forward(x):
    """Rectified linear unit, max(x, 0), elementwise.

    Returns
    -------
    out : ndarray, x's shape and dtype
    cache : tuple (positive, dtype), the bool mask x > 0 and x's dtype

    Notes
    -----
    (ENC) ReLU has a kink at 0; the derivative used there is 0 (a
    subgradient). Finite differences across the kink are meaningless: see
    ``kinks`` in :func:`minivq.gradcheck.check_backward`.
    """
    return _relu_forward(check_float(x, "x", "(any shape)"))


def _relu_forward(x):
    """:func:`relu_forward` without the checks."""
    positive = np.asarray(x > 0)  # an array also for 0-d x
    # x * [x > 0], not np.where: the same values (a negative x gives -0.0, equal to 0) at a fraction of the
    # time, since where() branches on every entry of an unpredictable mask
    return np.asarray(x * positive), (positive, x.dtype)


def relu_backward(dout, cache):
    """dx = dout * [x > 0]."""
    positive, dtype = check_cache(cache, (np.ndarray, np.dtype), "relu_forward")
    return _relu_backward(check_dout(dout, positive.shape, dtype), cache)


def _relu_backward(dout, cache):
    """:func:`relu_backward` without the checks."""
    positive, dtype = cache
    return np.asarray(dout * positive)  # as np.where(positive, dout, 0), several times faster


def tanh_forward(x):
    """Hyperbolic tangent, elementwise.

    Returns
    -------
    out : ndarray, x's shape and dtype
    cache : tuple (out,)

    Notes
    -----
    (ENC) d tanh(x)/dx = 1 - tanh(x)^2, so the output is all backward needs.
    """
    x = check_float(x, "x", "(any shape)")
    out = np.asarray(np.tanh(x))  # an array also for 0-d x
    return out, (out,)


def tanh_backward(dout, cache):
    """dx = dout * (1 - out^2)."""
    (out,) = check_cache(cache, (np.ndarray,), "tanh_forward")
    dout = check_dout(dout, out.shape, out.dtype)
    return np.asarray(dout * (1 - out * out))


def layernorm_forward(x, gamma, beta, eps=1e-5):
    """Layer normalization over the last axis.

    Parameters
    ----------
    x : ndarray, (..., D), float32 or float64
    gamma, beta : ndarray, (D,), x's dtype
        Per-feature scale and shift.
    eps : float
        Added to the variance; at least the dtype's smallest normal number
        (1.2e-38 in float32), so that it does not underflow to 0.

    Returns
    -------
    out : ndarray, (..., D)
    cache : tuple (xhat, rstd, gamma)

    Notes
    -----
    (ENC) Per row x in R^D, as named intermediates:
    mu = mean(x), xc = x - mu, var = mean(xc^2), rstd = (var + eps)^(-1/2),
    xhat = xc * rstd, y = gamma * xhat + beta.
    """
    x = check_float(x, "x", "(..., D)", min_ndim=1)
    D = x.shape[-1]
    if D == 0:
        raise ValueError(f"x must have at least one feature to normalize (D >= 1), got shape {x.shape}")
    gamma = check_float(gamma, "gamma", "(D,)", dtype=x.dtype, like="x")
    check_shape(gamma, "gamma", (D,), "(D,)")
    beta = check_float(beta, "beta", "(D,)", dtype=x.dtype, like="x")
    check_shape(beta, "beta", (D,), "(D,)")
    eps = check_eps(eps, "eps", x.dtype, default=1e-5)
    return _layernorm_forward(x, gamma, beta, eps)


def _layernorm_forward(x, gamma, beta, eps=1e-5):
    """:func:`layernorm_forward` without the checks."""
    with np.errstate(over="ignore", invalid="ignore"):
        mu = x.mean(axis=-1, keepdims=True)  # (..., 1)
        xc = x - mu
        var = (xc * xc).mean(axis=-1, keepdims=True)  # (..., 1)
    rstd = 1 / np.sqrt(var + x.dtype.type(eps))  # (..., 1)
    xhat = xc * rstd
    big = ~np.isfinite(var[..., 0])  # a sum overflowed (entries near the dtype's limit): rescale those rows
    if big.any():
        xhat[big], rstd[big] = _layernormrescaled(x[big], eps)
    return gamma * xhat + beta, (xhat, rstd, gamma)


def _layernormrescaled(rows, eps):
    """xhat and rstd of rows (n, D) whose moments overflow: the same normalization of rows / max|row|."""
    scale = np.abs(rows).max(axis=-1, keepdims=True)  # (n, 1), huge
    xs = rows / scale
    xc = xs - xs.mean(axis=-1, keepdims=True)
    with np.errstate(under="ignore"):
        denom = np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + rows.dtype.type(eps) / scale / scale)
    flat = denom == 0  # equal entries and eps / scale^2 below the dtype: xhat is 0, rstd 1 / sqrt(eps)
    xhat = np.where(flat, 0, xc / np.where(flat, 1, denom))
    with np.errstate(under="ignore"):
        rstd = np.where(flat, 1 / np.sqrt(rows.dtype.type(eps)), 1 / scale / np.where(flat, 1, denom))
    return xhat.astype(rows.dtype), rstd.astype(rows.dtype)


def layernorm_backward(dout, cache):
    """Gradients of :func:`layernorm_forward`: (dx, dgamma, dbeta).

    Notes
    -----
    In reverse: dbeta = sum dy, dgamma = sum dy * xhat, dxhat = dy * gamma,
    and, per row, dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    (the two means are the paths through mu and var).
    """
    xhat, rstd, gamma = check_cache(cache, (np.ndarray,) * 3, "layernorm_forward")
    return rescaled(_layernorm_backward, check_dout(dout, xhat.shape, xhat.dtype), cache)


def _layernorm_backward(dout, cache):
    """:func:`layernorm_backward` without the checks."""
    xhat, rstd, gamma = cache
    D = xhat.shape[-1]
    N = int(np.prod(xhat.shape[:-1]))
    dout2, xhat2 = dout.reshape(N, D), xhat.reshape(N, D)  # (N, D)
    dbeta = dout2.sum(axis=0)
    dgamma = (dout2 * xhat2).sum(axis=0)
    dxhat = dout * gamma
    mean_dxhat = dxhat.mean(axis=-1, keepdims=True)
    mean_dxhat_xhat = (dxhat * xhat).mean(axis=-1, keepdims=True)
    dx = rstd * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)
    return dx, dgamma, dbeta


def l2_normalize_forward(x, eps=1e-12):
    """Scale each row of the last axis to unit length: x / max(||x||, eps).

    Returns
    -------
    out : ndarray, x's shape and dtype
    cache : tuple (out, denom, active)
        denom = max(||x||, eps) (..., 1); active = ||x|| > eps (..., 1).

    Notes
    -----
    (SUM-3) The cosine similarity of two vectors is the dot product of their
    normalized versions. Below eps the denominator is the constant eps, so
    the map is linear there and the gradient is dout / eps. eps must be at
    least the dtype's smallest normal number (1.2e-38 in float32), so it does
    not underflow to 0; rows whose squared norm overflows (entries near 1e20
    in float32) are rescaled by their largest entry first.
    """
    x = check_float(x, "x", "(..., D)", min_ndim=1)
    return _l2_normalize_forward(x, check_eps(eps, "eps", x.dtype, default=1e-12))


def _l2_normalize_forward(x, eps=1e-12):
    """:func:`l2_normalize_forward` without the checks."""
    with np.errstate(over="ignore"):
        # ||x|| per row, (..., 1); by einsum: NumPy sums a short last axis row by row, 3x slower than this
        norm = np.sqrt(np.einsum("...d,...d->...", x, x))[..., None]
    active = norm > eps
    denom = np.maximum(norm, x.dtype.type(eps))
    out = x / denom
    big = np.isinf(norm)[..., 0]  # x * x overflowed (entries near 1e20 in float32): rescale those rows
    if big.any():
        rows = x[big]  # (n, D)
        scale = np.abs(rows).max(axis=-1, keepdims=True)  # (n, 1), > 0
        unit = rows / scale
        length = np.sqrt((unit * unit).sum(axis=-1, keepdims=True))  # in [1, sqrt(D)]
        out[big] = unit / length
        with np.errstate(over="ignore"):
            denom[big] = scale * length  # ||x||, inf only if it exceeds the dtype
    return out, (out, denom, active)


def l2_normalize_backward(dout, cache):
    """dx = (dout - [||x|| > eps] out <out, dout>) / max(||x||, eps).

    Notes
    -----
    With y = x / n and n = ||x||: dy/dx = (I - y y^T) / n, a projection that
    removes the component of dout along y (moving x along itself does not
    change y).
    """
    out, denom, active = check_cache(cache, (np.ndarray,) * 3, "l2_normalize_forward")
    return rescaled(_l2_normalize_backward, check_dout(dout, out.shape, out.dtype), cache)


def _l2_normalize_backward(dout, cache):
    """:func:`l2_normalize_backward` without the checks."""
    out, denom, active = cache
    ### BEGIN SOLUTION l2_normalize_backward
    radial = np.einsum("...d,...d->...", dout, out)[..., None]  # (..., 1) <out, dout>, row by row
    return (dout - np.where(active, radial, 0) * out) / denom
    ### END SOLUTION
