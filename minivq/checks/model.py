"""Checks of the encoders' and the model's arguments against a ModelConfig (STYLE.md "Errors").

One function per public function of :mod:`minivq.encoders` and :mod:`minivq.model`, of the
same name (see :func:`minivq.checks.checked`). Names in messages are those the caller used,
e.g. ``params['speech.W1']`` or ``x of 'speech'``.
"""
import numpy as np

from ..config import MODALITIES, ModelConfig, param_shapes
from . import layers as layer_checks
from .arrays import (check_cache, check_finite, check_float, check_int_array, check_mask, check_number,
                     check_real, check_rng, check_shape, describe)

#: Shape of each encoder's input x.
INPUT_SHAPES = {"image": "(B, H, W)", "speech": "(B, T, n_mels)", "text": "(B, T) token ids",
                "a": "(B, T, F)", "b": "(B, T, F)"}


def check_config(cfg, name="cfg"):
    """A :class:`ModelConfig` whose fields are (still) valid."""
    if not isinstance(cfg, ModelConfig):
        raise TypeError(f"{name} must be a ModelConfig, got {describe(cfg)}")
    cfg.validate()  # fields may have been changed since the config was made
    return cfg


def check_modality(modality, cfg):
    """One of MODALITIES whose input size cfg knows."""
    if not isinstance(modality, str) or modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {describe(modality)}")
    if modality in ("a", "b") and modality not in cfg.toy_dims:
        raise ValueError(f"cfg.toy_dims must give the feature size of {modality!r}, got {cfg.toy_dims}")
    return modality


def check_params(params, shapes, cfg, name="params"):
    """``params`` holds every key of ``shapes`` (key -> shape) as a finite cfg.dtype array of that shape."""
    if not isinstance(params, dict):
        raise TypeError(f"{name} must be a dict name -> ndarray (see init_params), got {describe(params)}")
    missing = [key for key in shapes if key not in params]
    if missing:
        raise ValueError(f"{name} must hold {list(shapes)}, got {sorted(map(str, params))} (missing {missing})")
    dtype = np.dtype(cfg.dtype)
    for key, shape in shapes.items():
        W = check_float(params[key], f"{name}[{key!r}]", str(shape), coerce=False, dtype=dtype, like="cfg.dtype")
        check_shape(W, f"{name}[{key!r}]", shape, "")
    return params


def _as_model_dtype(x, name, dtype):
    """x cast to the model's dtype, which must keep it finite."""
    xc = x.astype(dtype, copy=False)
    if xc.size and not (np.isfinite(xc.min()) and np.isfinite(xc.max())):
        if x.dtype.kind == "f":
            check_finite(x, name)
        raise ValueError(f"{name} has values beyond the range of cfg.dtype {dtype} (largest |x| "
                         f"{np.abs(x).max():.3g}); rescale the input")
    return xc


def _geometry(T, k, s, T_name, k_name):
    """T_out of a convolution of kernel k, stride s, padding (k - 1) // 2 over T frames, checked."""
    layer_checks.conv1d_output_length({T_name: T, k_name: k, "stride": s, "padding": (k - 1) // 2},
                                      names=(T_name, k_name))
    return (T + 2 * ((k - 1) // 2) - k) // s + 1


def _unit_mask(m, mask, cfg):
    """Valid units of modality m from its input mask (B, T_in): the speech convolutions shorten it."""
    if m != "speech":
        return mask
    k, s = cfg.speech_kernel, cfg.speech_stride
    for _ in range(2):
        T = mask.shape[1]
        centre = np.arange(_geometry(T, k, s, "T", "k")) * s  # the window centres (padding (k - 1) // 2)
        mask = np.where(centre < T, mask[:, np.minimum(centre, T - 1)], False)
    return mask


def check_x(modality, x, cfg, name):
    """The encoder input of one modality, converted to cfg.dtype (text: int ids in [0, vocab))."""
    hint = INPUT_SHAPES[modality]
    if modality == "text":
        x = check_int_array(x, name, hint, ndim=2)
        if x.size and (x.min() < 0 or x.max() >= cfg.vocab):
            raise ValueError(f"{name} must hold token ids in [0, vocab = {cfg.vocab}), got [{x.min()}, {x.max()}]")
    else:
        x = check_real(x, name, hint, ndim=3, finite=False)
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must hold at least one sample and one step {hint}, got shape {x.shape}")
    if modality == "image":
        if x.shape[1] % cfg.patch or x.shape[2] % cfg.patch or not x.shape[2]:
            raise ValueError(f"{name} must have H and W that are positive multiples of patch = {cfg.patch}, "
                             f"got {x.shape}")
    elif modality == "speech":
        k, s = cfg.speech_kernel, cfg.speech_stride
        T1 = _geometry(x.shape[1], k, s, f"{name}'s T", "cfg.speech_kernel")
        _geometry(T1, k, s, f"{name}'s T after one convolution", "cfg.speech_kernel")
    elif modality == "text":
        k = cfg.text_kernel
        _geometry(x.shape[1], k, 1, f"{name}'s T", "cfg.text_kernel")
    width = {"speech": cfg.n_mels, "a": cfg.toy_dims.get("a"), "b": cfg.toy_dims.get("b")}.get(modality)
    if width is not None and x.shape[2] != width:
        raise ValueError(f"{name} must have {width} features per step (last axis) {hint}, got shape {x.shape}")
    return x if modality == "text" else _as_model_dtype(x, name, np.dtype(cfg.dtype))


def check_input_mask(modality, x, mask, cfg, name):
    """The input mask as bool (B, T_in): one per patch for images, per step otherwise; None: all valid."""
    T_in = (x.shape[1] // cfg.patch) * (x.shape[2] // cfg.patch) if modality == "image" else x.shape[1]
    return check_mask(mask, (x.shape[0], T_in), "(B, T_in)", name, none_is_all=True)


def encoder_forward(a):
    cfg, m = check_config(a["cfg"]), check_modality(a["modality"], a["cfg"])
    check_params(a["params"], {f"{m}.{k}": v for k, v in param_shapes(m, cfg).items()}, cfg)
    a["x"] = check_x(m, a["x"], cfg, f"x of {m!r}")
    a["mask"] = check_input_mask(m, a["x"], a["mask"], cfg, f"mask of {m!r}")


def encoder_backward(a):
    shape, dtype = check_cache(a["cache"], (str, None, tuple, tuple, None), "encoder_forward")[2]
    dH = a["dH"] = check_float(a["dH"], "dH", "(B, T, D)", dtype=dtype, like="the units H")
    check_shape(dH, "dH", shape, "(B, T, D)")


def input_dim(a):
    check_modality(a["modality"], check_config(a["cfg"]))


def init_encoder(a):
    check_modality(a["modality"], check_config(a["cfg"]))
    if not isinstance(a["rng"], np.random.Generator):
        raise TypeError(f"rng must be a np.random.Generator, got {describe(a['rng'])}")


def unit_labels(a):
    check_modality(a["modality"], check_config(a["cfg"]))
    a["labels"] = check_int_array(a["labels"], "labels", "(B, T_in)", ndim=2)


def init_params(a):
    check_config(a["cfg"])
    a["rng"] = check_rng(a["rng"])


# ------------------------------------------------------------------ the whole model
def _shapes(cfg, modalities):
    """Parameter name -> shape of what ``modalities`` need: encoders, heads, and E (init_params' keys)."""
    shapes = {}
    for m in modalities:
        shapes.update({f"{m}.{k}": v for k, v in param_shapes(m, cfg).items()})
        for h in ("z", "q") if cfg.use_vq else ("z",):
            shapes.update({f"{m}.W{h}": (cfg.D, cfg.embed_dim), f"{m}.c{h}": (cfg.embed_dim,)})
    if cfg.use_vq:
        shapes["E"] = (cfg.K, cfg.D)
    return shapes


def _check_inputs(inputs, cfg, require_all):
    """``inputs`` maps modalities of cfg to (x, mask) pairs of one batch size B; returns them checked.

    Every sample must keep at least one valid unit (the masked means of SUM-1 and CM-2).
    """
    if not isinstance(inputs, dict) or not inputs:
        raise TypeError(f"inputs must be a non-empty dict modality -> (x, mask), got {describe(inputs)}")
    unknown = [m for m in inputs if m not in cfg.modalities]
    missing = [m for m in cfg.modalities if m not in inputs] if require_all else []
    if unknown or missing:
        which = "the keys" if require_all else "keys among"
        raise ValueError(f"inputs must have {which} {list(cfg.modalities)}, got {list(inputs)}")
    checked = {}
    for m, pair in inputs.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"inputs[{m!r}] must be a pair (x, mask), got {type(pair).__name__}")
        x = check_x(m, pair[0], cfg, f"x of {m!r}")
        mask = check_input_mask(m, x, pair[1], cfg, f"mask of {m!r}")
        empty = np.flatnonzero(~_unit_mask(m, mask, cfg).any(axis=1))
        if empty.size:
            raise ValueError(f"mask of {m!r} must leave at least one valid unit in every sample; samples "
                             f"{empty.tolist()} have none")
        checked[m] = (x, mask)
    sizes = {m: len(x) for m, (x, _) in checked.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"inputs must hold one batch size B in every modality, got {sizes}")
    return checked


def loss_forward(a):
    a["inputs"] = check_model_args(a["params"], a["inputs"], a["cfg"])


def represent(a):
    a["inputs"] = check_model_args(a["params"], a["inputs"], a["cfg"], require_all=False)


def loss_backward(a):
    cache = a["cache"]
    if not isinstance(cache, dict) or any(k not in cache for k in ("cfg", "r", "pairs", "dE", "caches", "param_keys")):
        raise TypeError(f"cache must be the dict returned by loss_forward, got {describe(cache)}")
    dloss = a["dloss"] = check_number(a["dloss"], "dloss")
    if abs(dloss) > float(np.finfo(cache["cfg"].dtype).max):
        raise ValueError(f"dloss must be within {cache['cfg'].dtype}, got {dloss!r}")


def check_model_args(params, inputs, cfg, require_all=True):
    """params and inputs against cfg; returns the inputs checked (converted to cfg.dtype)."""
    cfg = check_config(cfg)
    inputs = _check_inputs(inputs, cfg, require_all)
    shapes = _shapes(cfg, cfg.modalities if require_all else list(inputs))
    check_params(params, shapes, cfg)
    if require_all and set(params) != set(shapes):
        extra = sorted(set(map(str, params)) - set(shapes))
        raise ValueError(f"params must hold exactly the keys of init_params(cfg); unexpected {extra}")
    return inputs
