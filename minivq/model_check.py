"""Whole-model gradient check: the hand-written backward of the total loss (LOSS)
against central finite differences in float64, every parameter at once.

The straight-through estimator (VQ-2) is not the derivative of the piecewise
constant q = e_k*(h): it is the derivative of h + sg(q - h). So the check
holds sg(q - h), sg(q) and sg(h) fixed at the base point
(:func:`minivq.model.freeze_point`) and finite differences then see exactly
the function the STE differentiates. The kinks, the ReLU signs and the
argmin codes of the valid units, must not change at x +/- h
(:func:`minivq.gradcheck.check_backward` redraws the point otherwise).
Used by ``tests/test_model.py`` and ``notebooks/05_training_toy.ipynb``.
"""
import numpy as np

from ._checks import check_int, check_positive
from .config import ModelConfig
from .gradcheck import check_backward
from .model import decisions, freeze_point, init_params, loss_backward, loss_forward

__all__ = ["TINY", "tiny_config", "tiny_inputs", "check_model_gradients"]

#: A configuration small enough to check by finite differences in a second.
TINY = dict(D=3, K=4, hidden=4, embed_dim=3, patch=2, n_mels=3, vocab=5, speech_kernel=3,
            speech_stride=2, text_kernel=3, toy_dims={"a": 3, "b": 2}, dtype="float64")


def tiny_config(modalities=("image", "speech"), variant="full", **overrides):
    """A float64 :class:`ModelConfig` of :data:`TINY` size."""
    return ModelConfig(modalities=modalities, variant=variant, **{**TINY, **overrides})


def tiny_inputs(cfg, rng, B=3):
    """Random inputs ``{m: (x, mask)}`` for every modality of cfg, sample 0 partly padded."""
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"cfg must be a ModelConfig (see tiny_config), got {type(cfg).__name__}")
    cfg.validate()
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a np.random.Generator, got {type(rng).__name__}")
    B = check_int(B, "B", 1, 1 << 16)
    T = 9
    mask = np.ones((B, T), dtype=bool)
    mask[0, 6:] = False
    out = {}
    for m in cfg.modalities:
        if m == "image":
            out[m] = (rng.uniform(size=(B, 4, 4)), None)
        elif m == "speech":
            out[m] = (rng.normal(size=(B, T, cfg.n_mels)), mask)
        elif m == "text":
            text_mask = np.ones((B, 4), dtype=bool)
            text_mask[0, 2:] = False
            out[m] = (rng.integers(1, cfg.vocab, size=(B, 4)), text_mask)
        else:
            out[m] = (rng.normal(size=(B, 4, cfg.toy_dims[m])), mask[:, 2:6])
    return out


def _draw_params(cfg, rng):
    params = init_params(cfg, rng)
    for k in params:  # non-zero biases: no unit sits at H = 0, where unit_norm has no gradient
        if ".b" in k or ".c" in k:
            params[k] = rng.normal(size=params[k].shape)
    if "E" in params:
        params["E"] = rng.normal(size=params["E"].shape)  # codewords well apart
    return params


def check_model_gradients(cfg, seed=0, tol=1e-6):
    """Check :func:`minivq.model.loss_backward` for every parameter of cfg.

    Parameters
    ----------
    cfg : ModelConfig
        Use float64 and a tiny size (:func:`tiny_config`).
    seed : int >= 0
    tol : float > 0
        Largest accepted rel_error.

    Returns
    -------
    dict
        Parameter name -> rel_error; raises
        :class:`minivq.gradcheck.GradientCheckError` above tol.
    """
    seed = check_int(seed, "seed", 0)
    tol = check_positive(tol, "tol")
    keys = list(init_params(cfg, np.random.default_rng(0)))

    def draw(rng):
        params = _draw_params(cfg, rng)
        inputs = tiny_inputs(cfg, rng)
        return {**params, "inputs": inputs, "frozen": freeze_point(params, inputs, cfg)}

    def forward(*values):
        return loss_forward(dict(zip(keys, values[:len(keys)])), values[-2], cfg, frozen=values[-1])

    def backward(dout, cache):
        grads = loss_backward(cache, float(dout))
        return tuple(grads[k] for k in keys)

    def kinks(*values):
        return decisions(forward(*values)[1])

    return check_backward(forward, backward, draw, wrt=keys, kinks=kinks, rng=seed, tol=tol)
