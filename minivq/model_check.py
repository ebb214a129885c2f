"""Whole-model gradient check: the hand-written backward of the total loss (LOSS)
against central finite differences in float64, every parameter at once.

The straight-through estimator (VQ-2) is not the derivative of the piecewise
constant q = e_k*(h): it is the derivative of h + sg(q - h). So the check
holds sg(q - h), sg(q) and sg(h) fixed at the base point
(:func:`freeze_point`), and finite differences of :func:`frozen_loss_forward`
(the training forward, :func:`minivq.model.loss_forward`, with the quantizer
of :func:`held_quantizer`) then see exactly the function the STE
differentiates. The kinks (:func:`decisions`: the ReLU signs and the argmin
codes of the valid units) must not change at x +/- h
(:func:`minivq.gradcheck.check_backward` redraws the point otherwise).
These hooks live here, not in the training forward. Used by
``tests/test_model.py`` and ``notebooks/05_training_toy.ipynb``.
"""
import numpy as np

from ._checks import check_float, check_int, check_positive, describe
from ._encoder_checks import check_model_args
from .config import ModelConfig
from .gradcheck import check_backward
from .model import _loss_forward, init_params, loss_backward
from .quantizer import quantize_forward

__all__ = ["TINY", "tiny_config", "tiny_inputs", "freeze_point", "held_quantizer", "frozen_loss_forward",
           "decisions", "check_model_gradients"]

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


def freeze_point(params, inputs, cfg):
    """Stop-gradient values sg(q), sg(h) at the current point.

    Returns
    -------
    dict or None
        ``{m: {"Q": (B, T, D), "H": (B, T, D)}}``, None without the discrete path.
    """
    cfg, inputs = check_model_args(params, inputs, cfg)
    if not cfg.use_vq:
        return None
    _, cache = _loss_forward(params, inputs, cfg)
    return {m: {"Q": u["Q"].copy(), "H": u["H"].copy()} for m, u in cache["units"].items()}


def held_quantizer(frozen):
    """A quantizer like :func:`minivq.model.quantize_units` with sg(q), sg(h) held at ``frozen``.

    It still finds the codes at the current point (the kinks), but returns
    h + (sg(q) - sg(h)) with the base point's constants, so the loss is the
    smooth function whose gradient the straight-through estimator is.
    """
    def quantize(m, H, E):
        Q_sg, H_sg = frozen[m]["Q"], frozen[m]["H"]
        for k, a in (("Q", Q_sg), ("H", H_sg)):
            if a.shape != H.shape:
                raise ValueError(f"frozen[{m!r}][{k!r}] must have the units' shape {H.shape}, got {a.shape}")
        _, idx, c_q = quantize_forward(H, E)
        return H + (Q_sg - H_sg), idx, c_q, Q_sg, H_sg
    return quantize


def _check_frozen(frozen, cfg):
    """freeze_point's {m: {"Q": (B, T, D), "H": (B, T, D)}} (shapes are checked in the forward)."""
    if not cfg.use_vq:
        raise TypeError(f"frozen must be None for variant {cfg.variant!r}, which has no discrete path "
                        f"(freeze_point returns None), got {describe(frozen)}")
    if not isinstance(frozen, dict) or set(frozen) != set(cfg.modalities):
        raise TypeError(f"frozen must be the dict of freeze_point (one entry per modality), got {describe(frozen)}")
    for m, entry in frozen.items():
        if not isinstance(entry, dict) or set(entry) != {"Q", "H"}:
            raise TypeError(f"frozen[{m!r}] must be a dict with keys 'Q' and 'H', got {describe(entry)}")
        for k in ("Q", "H"):
            check_float(entry[k], f"frozen[{m!r}][{k!r}]", "(B, T, D)", ndim=3, coerce=False,
                        dtype=np.dtype(cfg.dtype), like="cfg.dtype")
    return frozen


def frozen_loss_forward(params, inputs, cfg, frozen):
    """:func:`minivq.model.loss_forward` with the stop-gradients held at ``frozen`` (gradient checks).

    Parameters
    ----------
    params, inputs, cfg
        As for :func:`minivq.model.loss_forward`.
    frozen : dict or None
        From :func:`freeze_point`; None (a config without the discrete path)
        gives :func:`minivq.model.loss_forward` itself.

    Returns
    -------
    loss, cache
        As :func:`minivq.model.loss_forward`; :func:`minivq.model.loss_backward`
        takes the cache.
    """
    cfg, inputs = check_model_args(params, inputs, cfg)
    if frozen is None and not cfg.use_vq:
        return _loss_forward(params, inputs, cfg)
    return _loss_forward(params, inputs, cfg, quantize=held_quantizer(_check_frozen(frozen, cfg)))


def decisions(cache):
    """The discrete decisions of one forward pass (its kinks, for gradient checks), int64 (n,).

    The ReLU signs of every encoder and, with the discrete path, the code of
    every valid unit (VQ-1): where a perturbation changes one of them, finite
    differences are meaningless (:func:`check_model_gradients`).
    """
    if not isinstance(cache, dict) or not {"cfg", "units", "caches"} <= set(cache):
        raise TypeError(f"cache must be the dict returned by loss_forward, got {describe(cache)}")
    cfg, units = cache["cfg"], cache["units"]
    kinks = [cache["caches"][m][0][2].ravel() for m in cfg.modalities]  # the encoders' ReLU signs
    kinks += [units[m]["idx"][units[m]["M"]] for m in cfg.modalities if cfg.use_vq]  # valid units
    return np.concatenate(kinks).astype(np.int64)


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
        return frozen_loss_forward(dict(zip(keys, values[:len(keys)])), values[-2], cfg, values[-1])

    def backward(dout, cache):
        grads = loss_backward(cache, float(dout))
        return tuple(grads[k] for k in keys)

    def kinks(*values):
        return decisions(forward(*values)[1])

    return check_backward(forward, backward, draw, wrt=keys, kinks=kinks, rng=seed, tol=tol)
