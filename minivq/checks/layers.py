"""Checks of the layers (:mod:`minivq.layers`): one function per public layer, of the same name.

Each receives the call's arguments as a dict and may convert them in place
(see :func:`minivq.checks.checked`).
"""
import numpy as np

from .arrays import (MAX_SIZE, as_array, check_cache, check_dout, check_eps, check_float, check_int,
                     check_int_array, check_mask, check_shape)


def _rows_fit(x, name):
    """ValueError unless every row's squared norm fits x's dtype (a normalization divides by it)."""
    with np.errstate(over="ignore"):
        big = np.isinf(np.einsum("...d,...d->...", x, x))
    if big.any():
        raise ValueError(f"{name} is too large for {x.dtype}: the squared norm of a row overflows (largest "
                         f"|entry| {np.abs(x).max():.3g}); rescale it")


def _weights(a, x_hint, W_hint, b_hint, W_in_axis, x_ndim=None):
    """x, W, b of an affine map or a convolution: one dtype, W's input axis matching x's last."""
    x = a["x"] = check_float(a["x"], "x", x_hint, min_ndim=1, ndim=x_ndim)
    W = a["W"] = check_float(a["W"], "W", W_hint, ndim=len(W_hint.split(",")), dtype=x.dtype, like="x")
    if W.shape[W_in_axis] != x.shape[-1] and W_in_axis == 0:
        raise ValueError(f"x must have D_in = {W.shape[0]} features (last axis) to match W {W.shape}, got x {x.shape}")
    if W.shape[W_in_axis] != x.shape[-1]:
        raise ValueError(f"W must have C_in = {x.shape[-1]} input channels (axis 1) to match x {x.shape}, "
                         f"got W {W.shape}")
    b = a["b"] = check_float(a["b"], "b", b_hint, dtype=x.dtype, like="x")
    check_shape(b, "b", W.shape[-1:], b_hint)


def affine_forward(a):
    _weights(a, "(..., D_in)", "(D_in, D_out)", "(D_out,)", 0)


def affine_backward(a):
    x, W = check_cache(a["cache"], (np.ndarray, (np.ndarray, 2)), "affine_forward")
    a["dout"] = check_dout(a["dout"], x.shape[:-1] + W.shape[1:], x.dtype)


def relu_forward(a):
    a["x"] = check_float(a["x"], "x", "(any shape)")


def relu_backward(a):
    positive, dtype = check_cache(a["cache"], (np.ndarray, np.dtype), "relu_forward")
    a["dout"] = check_dout(a["dout"], positive.shape, dtype)


def tanh_forward(a):
    a["x"] = check_float(a["x"], "x", "(any shape)")


def tanh_backward(a):
    (out,) = check_cache(a["cache"], (np.ndarray,), "tanh_forward")
    a["dout"] = check_dout(a["dout"], out.shape, out.dtype)


def layernorm_forward(a):
    x = a["x"] = check_float(a["x"], "x", "(..., D)", min_ndim=1)
    if x.shape[-1] == 0:
        raise ValueError(f"x must have at least one feature to normalize (D >= 1), got shape {x.shape}")
    for name in ("gamma", "beta"):
        a[name] = check_float(a[name], name, "(D,)", dtype=x.dtype, like="x")
        check_shape(a[name], name, x.shape[-1:], "(D,)")
    a["eps"] = check_eps(a["eps"], "eps", x.dtype, default=1e-5)
    _rows_fit(x - x.mean(axis=-1, keepdims=True), "x")


def layernorm_backward(a):
    xhat, rstd, gamma = check_cache(a["cache"], (np.ndarray,) * 3, "layernorm_forward")
    a["dout"] = check_dout(a["dout"], xhat.shape, xhat.dtype)


def l2_normalize_forward(a):
    x = a["x"] = check_float(a["x"], "x", "(..., D)", min_ndim=1)
    a["eps"] = check_eps(a["eps"], "eps", x.dtype, default=1e-12)
    _rows_fit(x, "x")


def l2_normalize_backward(a):
    out, norm, eps = check_cache(a["cache"], (np.ndarray, np.ndarray, float), "l2_normalize_forward")
    a["dout"] = check_dout(a["dout"], out.shape, out.dtype)


def conv1d_output_length(a, names=("T", "k")):
    """T, k, stride, padding as ints, with T + 2 padding >= k; ``names`` spell T and k."""
    T = a[names[0]] = check_int(a[names[0]], names[0], 1, MAX_SIZE)
    k = a[names[1]] = check_int(a[names[1]], names[1], 1, MAX_SIZE)
    a["stride"] = check_int(a["stride"], "stride", 1, MAX_SIZE)
    padding = a["padding"] = check_int(a["padding"], "padding", 0, k - 1)
    if T + 2 * padding < k:
        raise ValueError(f"{names[1]} must be at most T + 2 * padding = {T + 2 * padding}, got {k}: "
                         "the padded input is shorter than the kernel")


def conv1d_forward(a):
    _weights(a, "(B, T, C_in)", "(k, C_in, C_out)", "(C_out,)", 1, x_ndim=3)
    B, T, _ = a["x"].shape
    if a["x"].ndim != 3 or B == 0 or T == 0:
        raise ValueError(f"x must be (B, T, C_in) with B, T >= 1, got shape {a['x'].shape}")
    geometry = {"x's T": T, "W's k (axis 0)": a["W"].shape[0], "stride": a["stride"], "padding": a["padding"]}
    conv1d_output_length(geometry, names=("x's T", "W's k (axis 0)"))
    a["stride"], a["padding"] = geometry["stride"], geometry["padding"]


def conv1d_backward(a):
    xv, Wq, x_shape, k, stride, padding = check_cache(
        a["cache"], ((np.ndarray, 3), (np.ndarray, 3), tuple, int, int, int), "conv1d_forward")
    T_out = xv.shape[1] - Wq.shape[0] + 1
    a["dout"] = check_dout(a["dout"], (x_shape[0], T_out, Wq.shape[2]), Wq.dtype)


def conv1d_output_mask(a):
    M = as_array(a["M"], "M", "(B, T)")
    if M.ndim != 2 or M.shape[1] == 0:
        raise ValueError(f"M must be 2-D (B, T) with T >= 1, got shape {M.shape}")
    a["M"] = check_mask(M, M.shape, "(B, T)")
    geometry = {"M's T": M.shape[1], "k": a["k"], "stride": a["stride"], "padding": a["padding"]}
    conv1d_output_length(geometry, names=("M's T", "k"))
    a.update(k=geometry["k"], stride=geometry["stride"], padding=geometry["padding"])


def patchify(a):
    images = a["images"] = check_float(a["images"], "images", "(B, H, W)", ndim=3)
    patch = a["patch"] = check_int(a["patch"], "patch", 1)
    B, H, W = images.shape
    if H % patch or W % patch or not H or not W:
        raise ValueError(f"images must have H and W that are positive multiples of patch = {patch}, "
                         f"got {images.shape}")


def embedding_forward(a):
    ids = a["ids"] = check_int_array(a["ids"], "ids", "(B, T)")
    W = a["W"] = check_float(a["W"], "W", "(V, D)", ndim=2)
    if ids.size and (ids.min() < 0 or ids.max() >= W.shape[0]):
        bad = ids.min() if ids.min() < 0 else ids.max()
        raise ValueError(f"ids must lie in [0, V) = [0, {W.shape[0]}) for W of shape {W.shape}, got {bad}")


def embedding_backward(a):
    ids, W_shape, dtype = check_cache(a["cache"], (np.ndarray, tuple, np.dtype), "embedding_forward")
    a["dout"] = check_dout(a["dout"], ids.shape + W_shape[1:], dtype)


def masked_mean_forward(a):
    H = a["H"] = check_float(a["H"], "H", "(B, T, D)", ndim=3)
    B, T, D = H.shape
    M = a["M"] = check_mask(a["M"], (B, T), "(B, T)")
    if B == 0:
        raise ValueError(f"H must hold at least one sample (B >= 1), got shape {H.shape}")
    empty = np.flatnonzero(~M.any(axis=1))
    if empty.size:
        raise ValueError(f"M must have at least one valid unit per row; rows {empty.tolist()} have none")


def masked_mean_backward(a):
    weights, D = check_cache(a["cache"], ((np.ndarray, 2), int), "masked_mean_forward")
    a["dout"] = check_dout(a["dout"], (weights.shape[0], D), weights.dtype)


def crop_grid(a):
    patch = a["patch"] = check_int(a["patch"], "patch", 1)
    window = a["window"] = check_int(a["window"], "window", patch)
    stride = a["stride"] = check_int(a["stride"], "stride", 1, patch)
    if (window - patch) % 2:
        raise ValueError(f"window must be patch = {patch} plus an even margin (the same on each side), got {window}")
    if patch % stride or (window - patch) % stride:
        raise ValueError(f"stride must divide patch = {patch} and window - patch = {window - patch}, got {stride}")


def patch_crops(a):
    patchify(a)
    B, H, W = a["images"].shape
    crop_grid({"height": H, "width": W, **a})
    a.update(window=int(a["window"]), stride=int(a["stride"]))
    if a["mask"] is not None:
        a["mask"] = check_mask(a["mask"], (B, (H // a["patch"]) * (W // a["patch"])), "(B, T)", "mask")


def cell_max_forward(a):
    x = a["a"] = check_float(a["a"], "a", "(B, Py, Px, C)", ndim=4)
    for name in ("pool", "step", "rows", "cols"):
        a[name] = check_int(a[name], name, 1)
    for name, have in (("rows", x.shape[1]), ("cols", x.shape[2])):
        need = (a[name] - 1) * a["step"] + a["pool"]
        if need > have:
            raise ValueError(f"{name}: {a[name]} cells of pool {a['pool']} at step {a['step']} need {need} "
                             f"crops, a has {have} (shape {x.shape})")


def cell_max_backward(a):
    arg = check_cache(a["cache"], (np.ndarray, tuple, int, int, int, int), "cell_max_forward")[0]
    a["dout"] = check_dout(a["dout"], arg.shape)
