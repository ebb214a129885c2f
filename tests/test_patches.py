"""Tests of minivq.layers.patches (the shift-pooled patch embedding, ModelConfig image_window):
crops against the padded image, the cell max against a direct loop, its backward by finite
differences, the mask, argument errors; and the image encoder built on them.
"""
import numpy as np
import pytest

from minivq.config import ModelConfig
from minivq.encoders import encoder_backward, encoder_forward, init_encoder
from minivq.gradcheck import check_backward
from minivq.layers import patchify
from minivq.layers.patches import cell_max_backward, cell_max_forward, crop_grid, patch_crops
from minivq.model import init_params, represent
from minivq.model_check import check_model_gradients, tiny_config, tiny_inputs

GEOMETRIES = [(2, 4, 1), (2, 4, 2), (2, 2, 1), (2, 2, 2), (4, 8, 2), (8, 16, 2), (8, 16, 4), (4, 4, 4)]


@pytest.mark.parametrize("patch, window, stride", GEOMETRIES)
def test_crop_uv_is_the_padded_image_at_u_stride_v_stride(patch, window, stride):
    rng = np.random.default_rng(0)
    B, H, W = 2, 2 * patch, 3 * patch
    images = rng.standard_normal((B, H, W))
    crops = patch_crops(images, patch, window, stride)
    m, Py, Px, n, step = crop_grid(H, W, patch, window, stride)
    assert crops.shape == (B, Py, Px, patch * patch) and crops.dtype == images.dtype
    padded = np.zeros((B, H + 2 * m, W + 2 * m))
    padded[:, m:m + H, m:m + W] = images
    for u in range(Py):
        for v in range(Px):
            crop = padded[:, u * stride:u * stride + patch, v * stride:v * stride + patch]
            assert np.array_equal(crops[:, u, v], crop.reshape(B, -1)), (u, v)
    # the last crop of each axis ends at the padded border: the grid covers the whole window of every cell
    assert (Py - 1) * stride + patch == H + 2 * m and (Px - 1) * stride + patch == W + 2 * m
    assert n == (window - patch) // stride + 1 and step == patch // stride


@pytest.mark.parametrize("patch, window, stride", GEOMETRIES)
def test_each_cell_pools_exactly_the_crops_inside_its_window(patch, window, stride):
    """Cell (r, c)'s pool is the crops lying in the window [r p - m, r p + p + m) x [c p - m, c p + p + m)."""
    H, W = 3 * patch, 2 * patch
    m, Py, Px, n, step = crop_grid(H, W, patch, window, stride)
    for r in range(H // patch):
        inside = [u for u in range(Py) if r * patch - m <= u * stride - m and u * stride - m + patch <= r * patch + patch + m]
        assert inside == list(range(r * step, r * step + n))


def test_without_margin_the_crops_are_patchify():
    rng = np.random.default_rng(1)
    images = rng.standard_normal((3, 8, 12)).astype(np.float32)
    crops = patch_crops(images, 4, 4, 4)
    patches, _ = patchify(images, 4)
    assert np.array_equal(crops.reshape(3, -1, 16), patches)
    out, _ = cell_max_forward(crops, 1, 1, 2, 3)
    assert np.array_equal(out, patches)  # a pool of one crop: the plain patch embedding


def test_masked_cells_read_as_zeros():
    rng = np.random.default_rng(2)
    images = rng.standard_normal((2, 4, 6))
    mask = np.ones((2, 6), dtype=bool)
    mask[0, 4] = mask[1, 0] = False  # cell (1, 1) of image 0, cell (0, 0) of image 1
    crops = patch_crops(images, 2, 4, 1, mask)
    cleaned = images.copy()
    cleaned[0, 2:4, 2:4] = 0.0
    cleaned[1, 0:2, 0:2] = 0.0
    assert np.array_equal(crops, patch_crops(cleaned, 2, 4, 1))
    garbage = images.copy()
    garbage[0, 2:4, 2:4] = 1e300  # inf or NaN would be refused as input; huge values must not leak either
    garbage[1, 0:2, 0:2] = -1e300
    assert np.array_equal(patch_crops(garbage, 2, 4, 1, mask), crops)


def test_cell_max_is_the_max_over_each_cells_pool():
    rng = np.random.default_rng(3)
    B, Py, Px, C, n, step, rows, cols = 2, 7, 9, 3, 3, 2, 3, 4
    a = rng.standard_normal((B, Py, Px, C))
    out, (arg, *_) = cell_max_forward(a, n, step, rows, cols)
    assert out.shape == (B, rows * cols, C) and arg.shape == out.shape
    for r in range(rows):
        for c in range(cols):
            block = a[:, r * step:r * step + n, c * step:c * step + n].reshape(B, n * n, C)
            assert np.array_equal(out[:, r * cols + c], block.max(axis=1))
            assert np.array_equal(arg[:, r * cols + c], block.argmax(axis=1))


@pytest.mark.parametrize("shape, n, step, rows, cols", [
    ((1, 1, 1, 1), 1, 1, 1, 1), ((2, 5, 7, 3), 3, 2, 2, 3), ((2, 9, 9, 2), 5, 4, 2, 2), ((1, 4, 6, 2), 2, 2, 2, 3),
    ((3, 3, 4, 1), 3, 1, 1, 2)])
def test_cell_max_gradients(shape, n, step, rows, cols):
    """Overlapping pools (step < n) send two gradients to one crop where both pick it: they add up."""
    def forward(a):
        return cell_max_forward(a, n, step, rows, cols)

    def draw(rng):
        return {"a": rng.standard_normal(shape)}

    errors = check_backward(forward, cell_max_backward, draw, kinks=lambda a: forward(a)[1][0], rng=0)
    assert errors["a"] < 1e-7, errors


def test_cell_max_backward_adds_where_overlapping_cells_pick_one_crop():
    a = np.zeros((1, 3, 2, 1))
    a[0, 1, 0, 0] = 1.0  # crop (1, 0) is the max of both cells (pool rows {0, 1} and {1, 2} at step 1)
    out, cache = cell_max_forward(a, 2, 1, 2, 1)
    assert np.array_equal(out.ravel(), [1.0, 1.0])
    da = cell_max_backward(np.array([[[2.0], [3.0]]]), cache)
    expected = np.zeros_like(a)
    expected[0, 1, 0, 0] = 5.0
    assert np.array_equal(da, expected)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"window": 3}, ValueError, "window"), ({"window": 2}, ValueError, "window"), ({"stride": 3}, ValueError, "stride"),
    ({"stride": 0}, ValueError, "stride"), ({"stride": 8}, ValueError, "stride"), ({"patch": 2.0}, TypeError, "patch"),
    ({"window": 6, "stride": 4}, ValueError, "stride")])
def test_patch_crops_arguments_are_named(kwargs, exc, match):
    args = {"patch": 4, "window": 8, "stride": 2, **kwargs}
    with pytest.raises(exc, match=match):
        patch_crops(np.zeros((1, 8, 8)), **args)


def test_patch_crops_and_cell_max_check_their_arrays():
    with pytest.raises(ValueError, match="images"):
        patch_crops(np.zeros((1, 6, 8)), 4, 8, 2)
    with pytest.raises(TypeError, match="images"):
        patch_crops(np.zeros((1, 8, 8), dtype=int), 4, 8, 2)
    with pytest.raises(ValueError, match="mask"):
        patch_crops(np.zeros((1, 8, 8)), 4, 8, 2, mask=np.ones((1, 3), bool))
    with pytest.raises(ValueError, match="rows"):
        cell_max_forward(np.zeros((1, 5, 5, 2)), 3, 2, 3, 1)
    with pytest.raises(ValueError, match="cols"):
        cell_max_forward(np.zeros((1, 5, 5, 2)), 3, 2, 1, 3)
    _, cache = cell_max_forward(np.zeros((1, 5, 5, 2)), 3, 2, 2, 2)
    with pytest.raises(ValueError, match="dout"):
        cell_max_backward(np.zeros((1, 3, 2)), cache)
    with pytest.raises(TypeError, match="cache"):
        cell_max_backward(np.zeros((1, 4, 2)), cache[:3])


# --- the image encoder with ModelConfig image_window ------------------------------------------

@pytest.mark.parametrize("window, stride", [(None, 2), (2, 1), (4, 1), (4, 2), (6, 2)])
@pytest.mark.parametrize("variant", ["summary", "full"])
def test_whole_model_gradient_with_image_window(window, stride, variant):
    cfg = tiny_config(("image", "speech"), variant, image_window=window, image_stride=stride)
    errors = check_model_gradients(cfg, seed=2)
    assert max(errors.values()) < 1e-6, errors


def test_image_window_keeps_the_parameters_and_one_unit_per_cell():
    plain = ModelConfig(D=4, K=4, hidden=5, embed_dim=3)
    windowed = ModelConfig(D=4, K=4, hidden=5, embed_dim=3, image_window=16, image_stride=2)
    p1, p2 = init_params(plain, np.random.default_rng(0)), init_params(windowed, np.random.default_rng(0))
    assert {k: v.shape for k, v in p1.items()} == {k: v.shape for k, v in p2.items()}
    x = np.random.default_rng(1).uniform(size=(2, 32, 48)).astype(np.float32)
    H, M, _ = encoder_forward("image", p2, x, None, windowed)
    assert H.shape == (2, 24, 4) and M.shape == (2, 24) and M.all()


def test_image_window_none_is_the_plain_encoder():
    """The default leaves every number of the plain patch embedding as it was (byte for byte)."""
    cfg = ModelConfig(D=4, K=4, hidden=5, embed_dim=3)
    assert cfg.image_window is None
    p = init_encoder("image", cfg, np.random.default_rng(0))
    x = np.random.default_rng(1).uniform(size=(2, 16, 24)).astype(np.float32)
    H, _, _ = encoder_forward("image", p, x, None, cfg)
    patches, _ = patchify(x, 8)
    h = np.maximum(patches @ p["image.W1"] + p["image.b1"], 0) @ p["image.W2"] + p["image.b2"]
    np.testing.assert_allclose(H, h / np.linalg.norm(h, axis=-1, keepdims=True), rtol=1e-5)


def test_a_digit_off_the_grid_lies_whole_in_a_crop_of_the_cell_it_covers_most():
    """The point of the window: 16 and 2 with patch 8 hold an 8x8 digit at any even offset of up to 4 pixels."""
    patch, window, stride = 8, 16, 2
    m, Py, Px, n, step = crop_grid(32, 32, patch, window, stride)
    glyph = np.random.default_rng(1).uniform(0.1, 1.0, size=(8, 8))
    for dy in range(-4, 5, 2):
        for dx in range(-4, 5, 2):
            x = np.zeros((1, 32, 32))
            x[0, 8 + dy:16 + dy, 8 + dx:16 + dx] = glyph  # covers most of cell (1, 1)
            pool = patch_crops(x, patch, window, stride)[0, step:step + n, step:step + n]  # cell (1, 1)'s crops
            assert (pool == glyph.ravel()).all(axis=-1).sum() == 1, (dy, dx)


def test_image_window_units_ignore_masked_cells():
    cfg = tiny_config(("image", "speech"), "full", image_window=4, image_stride=1)
    rng = np.random.default_rng(4)
    params = init_params(cfg, rng)
    x = tiny_inputs(cfg, rng)["image"][0]
    mask = np.ones((len(x), 4), dtype=bool)
    mask[0, 3] = mask[1, 0] = False
    noisy = x.copy()
    noisy[0, 2:4, 2:4] = 1e4
    noisy[1, 0:2, 0:2] = -1e4
    a = represent(params, {"image": (x, mask)}, cfg, )["image"]
    b = represent(params, {"image": (noisy, mask)}, cfg)["image"]
    np.testing.assert_allclose(b["H"][mask], a["H"][mask], rtol=1e-12)
    np.testing.assert_allclose(b["r"], a["r"], rtol=1e-12)
    # a valid cell next to the masked one would see the garbage if the mask were not applied
    c = represent(params, {"image": (noisy, np.ones_like(mask))}, cfg)["image"]
    assert not np.allclose(c["H"][0, 2], a["H"][0, 2])


def test_image_window_backward_matches_the_encoder_gradient_check():
    cfg = tiny_config(("image", "speech"), "summary", image_window=4, image_stride=1, unit_norm=False)
    rng = np.random.default_rng(5)
    params = init_encoder("image", cfg, rng)
    x = rng.uniform(size=(2, 4, 6))

    def forward(**p):
        return encoder_forward("image", p, x, None, cfg)[0]

    H, _, cache = encoder_forward("image", params, x, None, cfg)
    dH = rng.standard_normal(H.shape)
    grads = encoder_backward(dH, cache)
    h = 1e-6
    for key, W in params.items():
        num = np.zeros_like(W)
        for i in np.ndindex(W.shape):
            old = W[i]
            W[i] = old + h
            up = np.sum(forward(**params) * dH)
            W[i] = old - h
            down = np.sum(forward(**params) * dH)
            W[i] = old
            num[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(grads[key], num, rtol=1e-5, atol=1e-7, err_msg=key)


@pytest.mark.parametrize("overrides, exc, match", [
    ({"image_window": 7}, ValueError, "image_window"), ({"image_window": 4}, ValueError, "image_window"),
    ({"image_window": 12.0}, TypeError, "image_window"), ({"image_window": 16, "image_stride": 3}, ValueError,
                                                          "image_stride"),
    ({"image_window": 12, "image_stride": 8}, ValueError, "image_stride"), ({"image_stride": 0}, ValueError,
                                                                             "image_stride"),
    ({"image_window": True}, TypeError, "image_window")])
def test_config_checks_image_window_by_name(overrides, exc, match):
    with pytest.raises(exc, match=match):
        ModelConfig(**overrides)


def test_config_round_trips_image_window():
    cfg = ModelConfig(image_window=16, image_stride=4)
    assert ModelConfig(**cfg.to_dict()) == cfg
