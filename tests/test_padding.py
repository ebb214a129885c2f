"""Padding never leaks (METHOD.md section 1: reductions are over valid units only).

Every test fills the padding, the inputs beyond the mask, with garbage (large
finite values, random token ids) and checks that nothing a valid unit, a
summary, a loss, a gradient or a trained model depends on changes. Zeros
would prove nothing: they are what the convolutions pad with anyway.
"""
import numpy as np
import pytest

from minivq.data import digit_scenes, toy_pairs
from minivq.encoders import DATA_KEYS, encoder_backward, encoder_forward, init_encoder
from minivq.model import init_params, loss_backward, loss_forward, represent
from minivq.model_check import tiny_config, tiny_inputs
from minivq.train import TrainConfig, config_from_data, fit, init_state

GARBAGE = 1e4  # large and finite: the inputs are checked for NaN and inf
MODALITIES = ("image", "speech", "text", "a", "b")
PAIRS = [("image", "speech"), ("image", "text"), ("speech", "text"), ("a", "b")]


def pixel_mask(patch_mask, height, width, patch):
    """The (B, H, W) pixels of the patches a (B, T) patch mask marks (patchify order)."""
    grid = np.asarray(patch_mask).reshape(len(patch_mask), height // patch, width // patch)
    return grid.repeat(patch, axis=1).repeat(patch, axis=2)


def fill_padding(modality, x, mask, rng, cfg, extra=0):
    """A copy of x whose padding holds garbage, and its mask; ``extra`` more padded steps."""
    x = np.array(x)
    if modality == "image":  # padding is whole patches; an image has no padded pixels of its own
        pad = ~pixel_mask(mask, x.shape[1], x.shape[2], cfg.patch)
        x[pad] = rng.uniform(-GARBAGE, GARBAGE, size=int(pad.sum()))
        return x, mask
    if extra:
        x = np.concatenate([x, np.zeros((len(x), extra) + x.shape[2:], dtype=x.dtype)], axis=1)
        mask = np.concatenate([mask, np.zeros((len(mask), extra), dtype=bool)], axis=1)
    pad = ~mask
    if modality == "text":  # another id of the vocabulary: an id outside it is an input error
        x[pad] = (x[pad] + rng.integers(1, cfg.vocab, size=int(pad.sum()))) % cfg.vocab
    else:
        x[pad] = rng.uniform(-GARBAGE, GARBAGE, size=(int(pad.sum()), x.shape[-1]))
    return x, mask


def padded_inputs(cfg, rng):
    """tiny_inputs with padding in every modality: the image gets a patch mask too.

    Speech sample 0 ends at frame 5 and sample 1 at frame 8: with kernel 3 and
    stride 2 the last valid unit's window (frames 3..5, 7..9) reaches into
    the padding, where garbage would leak.
    """
    inputs = tiny_inputs(cfg, rng)
    if "speech" in inputs:
        x, mask = inputs["speech"]
        mask = mask.copy()
        mask[0, 5:] = mask[1, 8:] = False
        inputs["speech"] = (x, mask)
    if "image" in inputs:
        x = inputs["image"][0]
        mask = np.ones((len(x), (x.shape[1] // cfg.patch) * (x.shape[2] // cfg.patch)), dtype=bool)
        mask[0, -1] = mask[1, 0] = False
        inputs["image"] = (x, mask)
    return inputs


def assert_close(actual, expected, what):
    err = np.max(np.abs(np.asarray(actual) - np.asarray(expected)), initial=0.0)
    scale = np.max(np.abs(expected), initial=1.0)
    assert err <= 1e-12 * scale, f"{what} changed by {err:.2e} (scale {scale:.1e}); expect float64 rounding"


# an image has a fixed number of patches: its padding is masked patches, never extra ones
@pytest.mark.parametrize("modality, extra", [(m, e) for m in MODALITIES for e in (0, 5) if not (m == "image" and e)])
def test_encoder_units_ignore_padding(modality, extra):
    cfg = tiny_config(("a", "b") if modality in ("a", "b") else ("image", "speech", "text"))
    rng = np.random.default_rng(0)
    params = init_encoder(modality, cfg, rng)
    x, mask = padded_inputs(cfg, rng)[modality]
    H, M, cache = encoder_forward(modality, params, x, mask, cfg)
    xg, mask_g = fill_padding(modality, x, mask, rng, cfg, extra)
    Hg, Mg, cache_g = encoder_forward(modality, params, xg, mask_g, cfg)
    T = H.shape[1]
    assert not Mg[:, T:].any() and np.array_equal(Mg[:, :T], M), "extra padding adds no valid unit"
    assert_close(Hg[:, :T][M], H[M], f"valid units of {modality!r}")
    dH = rng.normal(size=H.shape) * M[:, :, None]  # an upstream gradient on the valid units
    dHg = np.zeros_like(Hg)
    dHg[:, :T] = dH
    grads, grads_g = encoder_backward(dH, cache), encoder_backward(dHg, cache_g)
    for k in grads:
        assert_close(grads_g[k], grads[k], f"gradient {k}")


@pytest.mark.parametrize("variant", ["summary", "vq", "full"])
@pytest.mark.parametrize("modalities", PAIRS + [("image", "speech", "text")], ids="-".join)
def test_loss_gradients_and_summaries_ignore_padding(modalities, variant):
    cfg = tiny_config(modalities, variant)
    rng = np.random.default_rng(1)
    params = init_params(cfg, rng)
    inputs = padded_inputs(cfg, rng)
    garbage = {m: fill_padding(m, x, mask, rng, cfg) for m, (x, mask) in inputs.items()}
    loss, cache = loss_forward(params, inputs, cfg)
    loss_g, cache_g = loss_forward(params, garbage, cfg)
    assert_close(loss_g, loss, "loss")
    for part, value in cache["parts"].items():
        assert_close(cache_g["parts"][part], value, f"loss part {part}")
    grads, grads_g = loss_backward(cache), loss_backward(cache_g)
    for k in grads:
        assert_close(grads_g[k], grads[k], f"gradient {k}")
    rep, rep_g = represent(params, inputs, cfg), represent(params, garbage, cfg)
    for m in modalities:
        M = rep[m]["M"]
        assert np.array_equal(rep_g[m]["M"], M)
        assert_close(rep_g[m]["r"], rep[m]["r"], f"summary r of {m!r}")
        assert_close(rep_g[m]["H"][M], rep[m]["H"][M], f"units of {m!r}")
        if cfg.use_vq:
            assert np.array_equal(rep_g[m]["idx"][M], rep[m]["idx"][M]), f"codes of {m!r} changed"


def with_garbage_padding(data, modalities, seed, vocab):
    """A copy of a data dict whose padded inputs hold garbage (the shipped data pads with 0)."""
    rng = np.random.default_rng(seed)
    out = dict(data)
    for m in modalities:
        x_key, m_key, _ = DATA_KEYS[m]
        mask = data[m_key]
        if mask.all():  # images and the toy grid b: every unit is valid, nothing is padding
            continue
        x = np.array(data[x_key])
        x[~mask] = ((x[~mask] + rng.integers(1, vocab, size=int((~mask).sum()))) % vocab if m == "text" else
                    rng.uniform(-GARBAGE, GARBAGE, size=(int((~mask).sum()), x.shape[-1])))
        out[x_key] = x.astype(data[x_key].dtype)
    assert any(out[DATA_KEYS[m][0]] is not data[DATA_KEYS[m][0]] for m in modalities), "nothing was padded"
    return out


@pytest.mark.parametrize("which", ["toy", "digits"])
def test_training_ignores_padding(which):
    if which == "toy":
        modalities, data = ("a", "b"), toy_pairs(48, 0)
        sizes = dict(D=4, K=8, hidden=8, embed_dim=8)
    else:
        modalities, data = ("image", "speech", "text"), digit_scenes("train", 32, 0)
        sizes = dict(D=4, K=8, hidden=8, embed_dim=8, patch=4, speech_kernel=5, speech_stride=3)
    cfg = config_from_data(data, modalities, dtype="float64", **sizes)
    states = []
    for d in (data, with_garbage_padding(data, modalities, 3, cfg.vocab)):
        state = init_state(cfg, TrainConfig(epochs=2, batch_size=16, seed=0, val_size=0), d)
        states.append(fit(state, d, log=None))
    zero, garbage = states
    for k in zero.params:
        assert_close(garbage.params[k], zero.params[k], f"trained {k}")
    assert_close([h["loss"] for h in garbage.history], [h["loss"] for h in zero.history], "loss history")
