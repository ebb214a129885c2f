"""Tests of minivq.model and minivq.encoders (METHOD.md ENC, SUM-1..3, VQ-2..4, CM-1..4, LOSS).

The centrepiece is the whole-model gradient check: the hand-written
backward of the total loss against central finite differences in float64,
every parameter at once, for every variant and modality pair. The
straight-through estimator (VQ-2) is not the derivative of the piecewise
constant q = e_k*(h); ``minivq.model_check.freeze_point`` holds sg(q - h) at
the base point (``frozen_loss_forward``: the training forward with a held
quantizer) so that the finite differences see exactly the function the STE
differentiates, and the checker verifies that no ReLU sign or argmin code
flips at x +/- h.
"""
import numpy as np
import pytest

from minivq.encoders import encoder_forward, init_encoder, unit_labels
from minivq.model import ModelConfig, init_params, loss_backward, loss_forward, represent
from minivq.model_check import (TINY, check_model_gradients, decisions, freeze_point, frozen_loss_forward,
                                tiny_config, tiny_inputs)

@pytest.mark.parametrize("variant", ["summary", "vq", "full"])
@pytest.mark.parametrize("modalities", [("image", "speech"), ("image", "text"), ("speech", "text"), ("a", "b")])
def test_whole_model_gradient(variant, modalities):
    cfg = tiny_config(modalities, variant)
    errors = check_model_gradients(cfg)
    assert max(errors.values()) < 1e-6, f"rel_errors {errors}, expect < 1e-6"
    assert set(errors) == set(init_params(cfg, np.random.default_rng(0))), "every parameter checked"


def test_whole_model_gradient_at_non_unit_weights():
    """Every weighted term at a weight other than 1: a dropped lambda_cmcm or beta cannot pass."""
    cfg = tiny_config(("image", "speech"), "full", lambda_cmcm=0.5, beta=0.4, codebook="grad")
    errors = check_model_gradients(cfg, seed=2)
    assert max(errors.values()) < 1e-6, f"rel_errors {errors}, expect < 1e-6"


def test_whole_model_gradient_grad_codebook_three_modalities():
    cfg = tiny_config(("image", "speech", "text"), codebook="grad", margin=0.2, squared=True,
                      cosine=False, unit_norm=False)
    errors = check_model_gradients(cfg, seed=1)
    assert max(errors.values()) < 1e-6, f"rel_errors {errors}, expect < 1e-6"


def test_params_and_grads_share_keys_and_shapes():
    cfg = ModelConfig(**TINY)
    rng = np.random.default_rng(0)
    params = init_params(cfg, rng)
    loss, cache = loss_forward(params, tiny_inputs(cfg, rng), cfg)
    grads = loss_backward(cache)
    assert list(grads) == list(params)
    assert all(grads[k].shape == params[k].shape and grads[k].dtype == params[k].dtype for k in params)
    assert np.isfinite(loss)


def test_variants_select_the_loss_terms():
    rng = np.random.default_rng(0)
    for variant, has_vq, has_cm in [("summary", False, False), ("vq", True, False), ("full", True, True)]:
        cfg = ModelConfig(variant=variant, **TINY)
        params = init_params(cfg, rng)
        _, cache = loss_forward(params, tiny_inputs(cfg, rng), cfg)
        assert ("E" in params) == has_vq and ("image.Wq" in params) == has_vq
        assert (cache["parts"]["commit"] > 0) == has_vq
        assert (cache["parts"]["cmcm"] > 0) == has_cm


def test_beta_weights_the_commitment_loss_not_the_codebook_loss():
    """(LOSS) the total has beta * mean ||h - sg(q)||^2 (VQ-3) and mean ||sg(h) - q||^2 (VQ-4), per modality."""
    cfg = ModelConfig(codebook="grad", beta=0.25, **TINY)
    rng = np.random.default_rng(3)
    params = init_params(cfg, rng)
    _, cache = loss_forward(params, tiny_inputs(cfg, rng), cfg)
    sq = 0.0
    for units in cache["units"].values():
        diff = (units["H"] - units["Q"])[units["M"]]  # (N, D) valid units
        sq += float(np.mean(diff * diff))
    assert sq > 0
    parts = cache["parts"]
    assert parts["commit"] == pytest.approx(0.25 * sq, rel=1e-10), f"commitment {parts['commit']}, expect beta * {sq}"
    assert parts["codebook"] == pytest.approx(sq, rel=1e-10), f"codebook loss {parts['codebook']}, expect {sq} (no beta)"


def test_speech_units_mask_and_labels_follow_the_centre_rule():
    cfg = ModelConfig(modalities=("image", "speech"), **TINY)
    rng = np.random.default_rng(0)
    params = init_encoder("speech", cfg, rng)
    x = rng.normal(size=(1, 9, 3))
    mask = np.array([[1, 1, 1, 1, 1, 1, 0, 0, 0]], bool)
    H, M, _ = encoder_forward("speech", params, x, mask, cfg)
    # k=3, stride=2, pad=1: centres t*2; layer 1 -> 5 units (frames 0,2,4,6,8), layer 2 -> 3 units
    assert H.shape == (1, 3, 3) and M.tolist() == [[True, True, False]]
    labels = np.array([[0, 0, 1, 1, 2, 2, 3, 3, 4]])
    # layer 1 takes frames 0,2,4,6,8 -> [0,1,2,3,4]; layer 2 takes its units 0,2,4 -> [0,2,4]
    assert unit_labels("speech", labels, cfg).tolist() == [[0, 2, 4]]


def test_config_rejects_bad_variant():
    with pytest.raises(ValueError, match="variant"):
        ModelConfig(variant="nope")
    with pytest.raises(ValueError, match="modalities"):
        ModelConfig(modalities=("image",))
    with pytest.raises(ValueError, match="modalities"):
        ModelConfig(modalities=("image", "audio"))
    with pytest.raises(ValueError, match="codebook_init"):
        ModelConfig(codebook_init="kmeans")
    with pytest.raises(ValueError, match="dtype"):
        ModelConfig(dtype="float16")


def test_inputs_are_checked_by_name():
    cfg = tiny_config(("image", "speech"), "full")
    rng = np.random.default_rng(0)
    params, inputs = init_params(cfg, rng), tiny_inputs(cfg, rng)
    with pytest.raises(ValueError, match="inputs must have the keys"):
        loss_forward(params, {"image": inputs["image"]}, cfg)
    with pytest.raises(TypeError, match=r"inputs\['image'\] must be a pair"):
        loss_forward(params, {**inputs, "image": inputs["image"][0]}, cfg)
    with pytest.raises(ValueError, match="one batch size"):
        loss_forward(params, {**inputs, "image": (inputs["image"][0][:2], None)}, cfg)
    x, mask = inputs["speech"]
    with pytest.raises(ValueError, match="mask of 'speech'"):
        encoder_forward("speech", params, x, mask[:, :5], cfg)
    with pytest.raises(ValueError, match="modality"):
        encoder_forward("audio", params, x, mask, cfg)


def test_gradient_check_catches_a_wrong_backward(monkeypatch):
    import minivq.model_check as mc

    def scaled(cache, dloss=1.0):
        grads = loss_backward(cache, dloss)
        grads["speech.W1"] = grads["speech.W1"] * 1.01  # a 1% error in one parameter
        return grads

    monkeypatch.setattr(mc, "loss_backward", scaled)
    with pytest.raises(AssertionError, match="speech.W1"):
        check_model_gradients(tiny_config())


@pytest.mark.parametrize("modality", ["speech", "text"])
def test_units_do_not_depend_on_padding_length(modality):
    """Extra padding (zeros, mask False) leaves every valid unit unchanged."""
    cfg = tiny_config(("image", modality), "vq")
    rng = np.random.default_rng(3)
    params = init_params(cfg, rng)
    for k in params:
        if ".b" in k:
            params[k] = rng.normal(size=params[k].shape)
    x, mask = tiny_inputs(cfg, rng)[modality]
    pad = 7
    x_long = np.concatenate([x, np.zeros((x.shape[0], pad) + x.shape[2:], x.dtype)], axis=1)
    mask_long = np.concatenate([mask, np.zeros((mask.shape[0], pad), bool)], axis=1)
    short = represent(params, {modality: (x, mask)}, cfg)[modality]
    long = represent(params, {modality: (x_long, mask_long)}, cfg)[modality]
    T = short["H"].shape[1]
    assert np.array_equal(long["M"][:, :T], short["M"]) and not long["M"][:, T:].any()
    np.testing.assert_allclose(long["H"][:, :T][short["M"]], short["H"][short["M"]], rtol=1e-12)
    np.testing.assert_allclose(long["r"], short["r"], rtol=1e-12)


# --- issue 10 regressions: every config field checked; one validation layer ---------------------

@pytest.mark.parametrize("field, value, exc", [
    ("tau", -1.0, ValueError), ("tau", 1e-30, ValueError), ("tau", 0.0, ValueError),
    ("tau_code", 1e-40, ValueError), ("beta", 1e30, ValueError), ("lambda_cmcm", 1e30, ValueError),
    ("margin", 1e30, ValueError), ("unit_norm", "no", TypeError), ("tau", "0.1", TypeError),
    ("K", 0, ValueError), ("D", True, TypeError), ("hidden", 2.5, TypeError), ("beta", np.nan, ValueError),
    ("modalities", "ab", TypeError), ("toy_dims", {"a": 0}, ValueError), ("codebook", None, ValueError),
])
def test_config_checks_every_field_by_name(field, value, exc):
    with pytest.raises(exc, match=f"ModelConfig {field}"):
        ModelConfig(**{field: value})


def test_a_config_changed_after_it_was_made_is_checked_again():
    cfg = tiny_config()
    rng = np.random.default_rng(0)
    params, inputs = init_params(cfg, rng), tiny_inputs(cfg, rng)
    cfg.tau = 0.0
    with pytest.raises(ValueError, match="ModelConfig tau"):
        loss_forward(params, inputs, cfg)


def test_params_and_inputs_are_checked_at_the_boundary():
    cfg = tiny_config(("image", "text"), "full")
    rng = np.random.default_rng(1)
    params, inputs = init_params(cfg, rng), tiny_inputs(cfg, rng)
    bad = {**params, "text.W2": params["text.W2"][:1]}
    with pytest.raises(ValueError, match=r"params\['text.W2'\] must have shape"):
        loss_forward(bad, inputs, cfg)
    with pytest.raises(ValueError, match=r"params\['E'\] must be finite"):
        loss_forward({**params, "E": params["E"] * np.nan}, inputs, cfg)
    with pytest.raises(ValueError, match="unexpected"):
        loss_forward({**params, "extra": np.ones(2)}, inputs, cfg)
    x, mask = inputs["text"]
    with pytest.raises(ValueError, match=r"x of 'text' must hold token ids in \[0, vocab = 5\)"):
        loss_forward(params, {**inputs, "text": (x + 10, mask)}, cfg)
    with pytest.raises(TypeError, match="mask of 'text' must be a bool mask"):
        loss_forward(params, {**inputs, "text": (x, mask.astype(int))}, cfg)
    empty = mask.copy()
    empty[1] = False
    with pytest.raises(ValueError, match=r"mask of 'text' must leave at least one valid unit .*\[1\]"):
        loss_forward(params, {**inputs, "text": (x, empty)}, cfg)
    with pytest.raises(TypeError, match="cache must be the dict returned by loss_forward"):
        loss_backward(None)


def test_a_forward_that_overflows_returns_a_non_finite_loss():
    """Diverged but finite parameters: the loss says so (NaN or inf); no exception mid-step."""
    cfg = tiny_config()
    rng = np.random.default_rng(2)
    params, inputs = init_params(cfg, rng), tiny_inputs(cfg, rng)
    params = {k: v * 1e200 if k.endswith(("W1", "W2")) else v for k, v in params.items()}
    with np.errstate(all="ignore"):  # the overflow is the point
        loss, cache = loss_forward(params, inputs, cfg)
    assert not np.isfinite(loss)


def test_the_training_step_checks_its_arrays_once(monkeypatch):
    """loss_forward scans each parameter once at its boundary; no layer inside scans again."""
    import minivq.checks.arrays as checks

    cfg = tiny_config(("image", "speech"), "full")
    rng = np.random.default_rng(3)
    params, inputs = init_params(cfg, rng), tiny_inputs(cfg, rng)
    scanned = []
    original = checks.check_finite
    monkeypatch.setattr(checks, "check_finite", lambda a, name: scanned.append(name) or original(a, name))
    loss, cache = loss_forward(params, inputs, cfg)
    loss_backward(cache)
    assert sorted(scanned) == sorted(f"params[{k!r}]" for k in params), scanned


def test_the_training_forward_has_no_gradient_check_hook():
    """loss_forward(params, inputs, cfg): the stop-gradient hook lives in minivq.model_check."""
    import inspect
    assert list(inspect.signature(loss_forward).parameters) == ["params", "inputs", "cfg"]
    cfg = tiny_config(("image", "speech"), "full")
    rng = np.random.default_rng(4)
    params, inputs = init_params(cfg, rng), tiny_inputs(cfg, rng)
    with pytest.raises(TypeError, match="frozen"):
        loss_forward(params, inputs, cfg, frozen=None)  # the 0.1 keyword is gone, loudly


def test_the_held_forward_is_the_training_forward_at_its_base_point():
    """At the base point h + (sg(q) - sg(h)) is q: same loss, same gradients (up to rounding)."""
    cfg = tiny_config(("image", "speech"), "full", codebook="grad")
    rng = np.random.default_rng(5)
    params, inputs = init_params(cfg, rng), tiny_inputs(cfg, rng)
    loss, cache = loss_forward(params, inputs, cfg)
    held, cache_h = frozen_loss_forward(params, inputs, cfg, freeze_point(params, inputs, cfg))
    assert abs(held - loss) < 1e-12
    g, g_h = loss_backward(cache), loss_backward(cache_h)
    assert all(np.allclose(g[k], g_h[k], rtol=1e-10, atol=1e-12) for k in g)
    assert np.array_equal(decisions(cache), decisions(cache_h))
    # away from the base point the held constants differ from the new point's q and h
    moved = {**params, "image.b2": params["image.b2"] + 0.5}
    frozen = freeze_point(params, inputs, cfg)
    assert frozen_loss_forward(moved, inputs, cfg, frozen)[0] != loss_forward(moved, inputs, cfg)[0]


def test_the_held_forward_checks_frozen_by_name():
    cfg = tiny_config(("image", "speech"), "full")
    rng = np.random.default_rng(6)
    params, inputs = init_params(cfg, rng), tiny_inputs(cfg, rng)
    frozen = freeze_point(params, inputs, cfg)
    with pytest.raises(TypeError, match=r"frozen must be the dict of freeze_point"):
        frozen_loss_forward(params, inputs, cfg, None)
    with pytest.raises(TypeError, match=r"frozen\['image'\] must be a dict"):
        frozen_loss_forward(params, inputs, cfg, {**frozen, "image": 3})
    bad = {**frozen, "speech": {"Q": frozen["speech"]["Q"][:, :2], "H": frozen["speech"]["H"]}}
    with pytest.raises(ValueError, match=r"frozen\['speech'\]\['Q'\] must have the units' shape"):
        frozen_loss_forward(params, inputs, cfg, bad)
    summary = tiny_config(("image", "speech"), "summary")
    p_s = init_params(summary, rng)
    assert freeze_point(p_s, inputs, summary) is None
    assert frozen_loss_forward(p_s, inputs, summary, None)[0] == loss_forward(p_s, inputs, summary)[0]
    with pytest.raises(TypeError, match=r"frozen must be None for variant 'summary'"):
        frozen_loss_forward(p_s, inputs, summary, frozen)


def test_unit_normalization_is_applied_by_the_model_where_it_is_read():
    """The encoder gives raw units; the model's units lie on the sphere exactly when cfg.unit_norm."""
    for unit_norm in (True, False):
        cfg = tiny_config(("image", "speech"), "full", unit_norm=unit_norm)
        rng = np.random.default_rng(7)
        params, inputs = init_params(cfg, rng), tiny_inputs(cfg, rng)
        units = loss_forward(params, inputs, cfg)[1]["units"]
        for m in cfg.modalities:
            norms = np.linalg.norm(units[m]["H"], axis=-1)[units[m]["M"]]
            assert np.allclose(norms, 1.0) == unit_norm, (m, unit_norm, norms)
            H_enc = encoder_forward(m, params, *inputs[m], cfg)[0]  # the public encoder: the model's units
            assert np.array_equal(H_enc, units[m]["H"])
