"""Shift-pooled patch embedding: the image layers of a cell that sees a window around it.

Two layers turn the plain patch embedding (:func:`minivq.layers.patchify`,
then an affine map of each cell) into one that finds a digit anywhere near
its cell (METHOD.md ENC, patch embedding):

- :func:`patch_crops`: every ``size`` x ``size`` crop of the image
  zero-padded by ``pad``, at a step of ``stride`` pixels. An affine map of
  the crops is a 2-D convolution of kernel ``size`` and stride ``stride``:
  one template per hidden feature, tried at every offset.
- :func:`cell_max_forward` / :func:`cell_max_backward`: for each cell of the
  patch grid, the largest response of each feature over the crops that lie
  inside the cell's window (the cell and ``pad`` pixels on each side): a
  max-pool of kernel ``pool`` and stride ``step`` over the crop grid.

Derivation. Crop (u, v) starts at pixel (u s - m, v s - m), s = stride, m =
pad, so cell (r, c) of side p, whose window starts at (r p - m, c p - m) and
has side w = p + 2m, holds the crops of a side-p template at u in [r p / s,
r p / s + 2 m / s], i.e. a pool of n = 2 m / s + 1 crops per axis at a step
of p / s crops (hence p and 2m multiples of s). The image is an input, so
the crops need no backward. The max-pool's backward routes each output
gradient to the crop that won: da[b, u*, v*, k] += dout[b, r, c, k], summed
where neighbouring cells' windows overlap and pick the same crop. Ties go to
the first crop in row-major order (``np.argmax``). With m = 0 and s = p the
pool is one crop, the cell itself: the plain patch embedding.

Tested in ``tests/test_layers.py`` (crops against the padded image, the
pool's backward by finite differences).
"""
import numpy as np

from ..checks import checked
from ..checks import layers as check

__all__ = ["patch_crops", "crop_grid", "cell_max_forward", "cell_max_backward"]


@checked(check.crop_grid)
def crop_grid(height, width, patch, window, stride):
    """Geometry of :func:`patch_crops` for a cell window: (pad m, crops per column Py, per row Px, pool n, step).

    ValueError naming the argument unless window >= patch, window - patch is
    even, and patch and window - patch are multiples of stride.
    """
    m = (window - patch) // 2
    return m, (height + 2 * m - patch) // stride + 1, (width + 2 * m - patch) // stride + 1, \
        (window - patch) // stride + 1, patch // stride


@checked(check.patch_crops)
def patch_crops(images, patch, window, stride, mask=None):
    """Every patch x patch crop of the images zero-padded by (window - patch) / 2, at a step of ``stride``.

    Parameters
    ----------
    images : ndarray, (B, H, W), float32 or float64
        H and W positive multiples of ``patch``.
    patch : int >= 1
        Side of a cell of the patch grid and of each crop.
    window : int >= patch
        Side of a cell's window (see :func:`crop_grid` for the constraints).
    stride : int in [1, patch]
        Step between crops, in pixels.
    mask : ndarray of bool, (B, T), or None
        Valid cells (patchify order, T = (H // patch) (W // patch)); the pixels
        of a masked cell read as zeros, like the border, so no valid cell's
        window sees padding. None: every cell valid.

    Returns
    -------
    crops : ndarray, (B, Py, Px, patch * patch), images' dtype
        ``crops[b, u, v]`` is ``padded[b, u s : u s + patch, v s : v s + patch]``
        flattened row-major (padded: the image inside a border of m zeros).
    """
    B, H, W = images.shape
    m = (window - patch) // 2
    padded = np.zeros((B, H + 2 * m, W + 2 * m), dtype=images.dtype)
    inner = padded[:, m:m + H, m:m + W]  # a view: the image's place in the padded canvas
    if mask is None or mask.all():
        inner[...] = images
    else:  # masked cells read as zeros (copyto, not a product: garbage times 0 could be NaN)
        cells = np.asarray(mask, dtype=bool).reshape(B, H // patch, 1, W // patch, 1)
        np.copyto(inner, images, where=np.broadcast_to(cells, (B, H // patch, patch, W // patch, patch))
                  .reshape(B, H, W))
    views = np.lib.stride_tricks.sliding_window_view(padded, (patch, patch), axis=(1, 2))[:, ::stride, ::stride]
    return views.reshape(views.shape[:3] + (patch * patch,))  # (B, Py, Px, p p): a copy


@checked(check.cell_max_forward)
def cell_max_forward(a, pool, step, rows, cols):
    """Max over each cell's pool of crops: out[b, r, c] = max over u, v of a[b, r step + u, c step + v].

    Parameters
    ----------
    a : ndarray, (B, Py, Px, C), float32 or float64
        Per-crop features (e.g. an affine map of :func:`patch_crops`).
    pool : int >= 1
        Crops per axis in a cell's window (n of :func:`crop_grid`).
    step : int >= 1
        Crops between neighbouring cells.
    rows, cols : int >= 1
        Cells per axis; (rows - 1) step + pool must be <= Py (cols: Px).

    Returns
    -------
    out : ndarray, (B, rows * cols, C)
        One row per cell in patchify order.
    cache : tuple (argmax (B, rows * cols, C) in [0, pool^2), shape of a, pool, step)
    """
    B, C = a.shape[0], a.shape[3]
    win = np.lib.stride_tricks.sliding_window_view(a, (pool, pool), axis=(1, 2))[:, ::step, ::step][:, :rows, :cols]
    win = win.reshape(B, rows * cols, C, pool * pool)  # (B, T, C, n^2): a copy
    arg = np.argmax(win, axis=3)  # (B, T, C)
    out = np.take_along_axis(win, arg[..., None], axis=3)[..., 0]
    return out, (arg, a.shape, pool, step, rows, cols)


@checked(check.cell_max_backward)
def cell_max_backward(dout, cache):
    """Gradient of :func:`cell_max_forward` with respect to a: each dout entry goes to the crop that won."""
    arg, shape, pool, step, rows, cols = cache
    B, C = shape[0], shape[3]
    da = np.zeros(shape, dtype=dout.dtype)
    d = dout.reshape(B, rows, cols, C)
    arg = arg.reshape(B, rows, cols, C)
    for k in range(pool * pool):  # one offset of the pool at a time: cells at one step never collide
        i, j = divmod(k, pool)
        da[:, i:i + (rows - 1) * step + 1:step, j:j + (cols - 1) * step + 1:step] += np.where(arg == k, d, 0)
    return da
