"""One small encoder per modality, x -> units H (B, T, D) with a mask (METHOD.md ENC).

No encoder is shared across modalities; only the codebook is (VQ). Each
encoder is built from the hand-derived layers of :mod:`minivq.layers`:

- ``image``: patchify, affine, ReLU, affine (one unit per patch); with
  ``cfg.image_window``: the affine map of every patch-sized crop at a step
  of ``cfg.image_stride`` pixels (a 2-D convolution), the max of each
  feature over the crops inside each cell's window, ReLU, affine (one unit
  per patch, :mod:`minivq.layers.patches`), so a cell finds a digit that
  sits off the patch grid;
- ``speech``: conv1d with stride over log-mel frames, ReLU, conv1d with
  stride (one unit per window of frames), run on the captions packed end
  to end (:mod:`minivq.speech_encoder`);
- ``text``: embedding, conv1d (one unit per token);
- ``a`` and ``b`` (the toy modalities of :func:`minivq.data.toy_pairs`):
  affine, ReLU, affine.

With ``cfg.unit_norm`` (default) every unit is then L2-normalized, so the
modalities meet the shared codebook on one sphere **(choice)**.

Parameters live in one flat dict with keys ``"<modality>.<name>"``; the
gradients come back in a dict with the same keys (STYLE.md).
``unit_labels`` carries per-input concept labels to the units with the
centre rule of :func:`minivq.layers.conv1d_output_mask`.
"""
import numpy as np

from ._encoder_checks import check_config, check_encoder_args, check_encoder_dout, check_modality, param_shapes
from ._checks import check_int_array
from .config import MODALITIES
from .layers import unchecked as layers  # the arguments are checked once, in encoder_forward
from .layers.patches import _cell_max_backward, _cell_max_forward, _crop_grid, _patch_crops
from .optim import he_uniform
from .speech_encoder import speech_backward, speech_forward

__all__ = ["MODALITIES", "DATA_KEYS", "modality_arrays", "input_dim", "init_encoder", "encoder_forward",
           "encoder_backward", "unit_labels"]


#: Keys of each modality's (input, input mask, input labels) in the dicts of
#: :func:`minivq.data.digit_scenes` and :func:`minivq.data.toy_pairs`.
DATA_KEYS = {
    "image": ("images", "image_mask", "image_labels"),
    "speech": ("speech", "speech_mask", "speech_labels"),
    "text": ("text", "text_mask", "text_labels"),
    "a": ("a", "a_mask", "a_labels"),
    "b": ("b", "b_mask", "b_labels"),
}



def modality_arrays(data, modality, rows=slice(None)):
    """(x, mask, labels) of one modality from a data dict, restricted to ``rows``."""
    if not isinstance(modality, str) or modality not in DATA_KEYS:
        raise ValueError(f"modality must be one of {tuple(DATA_KEYS)}, got {modality!r}")
    x_key, m_key, l_key = DATA_KEYS[modality]
    if not isinstance(data, dict) or x_key not in data or m_key not in data:
        raise ValueError(f"data must be a dict holding {x_key!r} and {m_key!r} (see minivq.data), got "
                         f"{sorted(data) if isinstance(data, dict) else type(data).__name__}")
    out = []
    for key in (x_key, m_key, l_key):
        if key not in data:  # labels are optional
            out.append(None)
            continue
        try:
            out.append(np.asarray(data[key])[rows])
        except (IndexError, TypeError, ValueError) as err:
            culprit = "rows" if key == x_key else f"data[{key!r}]"  # rows that index x but not key: key is off
            raise ValueError(f"{culprit} must index the samples of data[{key!r}] (rows = {rows!r}): {err}") from None
    return tuple(out)


def input_dim(modality, cfg):
    """Features per input unit: patch*patch pixels, n_mels, vocab, or the toy dims."""
    return _input_dim(check_modality(modality, check_config(cfg)), cfg)


def _input_dim(modality, cfg):
    """:func:`input_dim` without the checks."""
    if modality == "image":
        return cfg.patch * cfg.patch
    if modality == "speech":
        return cfg.n_mels
    if modality == "text":
        return cfg.vocab
    if modality in ("a", "b"):
        if modality not in cfg.toy_dims:
            raise ValueError(f"cfg.toy_dims must give the feature size of {modality!r}, got {cfg.toy_dims}")
        return int(cfg.toy_dims[modality])
    raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")


def init_encoder(modality, cfg, rng):
    """He-uniform weights and biases of one encoder: b1 zero, b2 small and random.

    b2 is drawn from U(-0.1, 0.1), not zero: a blank input (an image cell with
    no ink is all zeros) would otherwise give a unit that is exactly 0 at
    initialization, which has no direction for the unit normalization; dividing
    by its eps (1e-12) made the first gradient about 1e10 times too large.

    Returns
    -------
    dict
        ``"<m>.W1", "<m>.b1", "<m>.W2", "<m>.b2"`` in ``cfg.dtype``; W1/W2 are
        (D_in, hidden)/(hidden, D) for affine layers, (k, C_in, C_out) for
        convolutions, and ``"text.W1"`` is the (vocab, hidden) embedding.
    """
    D, dt = check_config(cfg).D, cfg.dtype
    shapes = [param_shapes(check_modality(modality, cfg), cfg)[w] for w in ("W1", "W2")]
    p = {}
    for i, shape in enumerate(shapes, start=1):
        p[f"{modality}.W{i}"] = he_uniform(rng, shape, dtype=dt)
        p[f"{modality}.b{i}"] = np.zeros(shape[-1], dtype=dt)
    p[f"{modality}.b2"] = rng.uniform(-0.1, 0.1, size=D).astype(dt)
    if modality == "text":  # an embedding table is not a fan-in layer
        p["text.W1"] = rng.normal(0.0, 1.0, size=shapes[0]).astype(dt)
        del p["text.b1"]
    return p


def _mlp_forward(x, W1, b1, W2, b2):
    """affine, ReLU, affine on the last axis: (H, layer caches, ReLU signs)."""
    a, c1 = layers.affine_forward(x, W1, b1)
    h, c2 = layers.relu_forward(a)
    H, c3 = layers.affine_forward(h, W2, b2)
    return H, (c1, c2, c3), c2[0]  # c2[0]: a > 0, the ReLU's mask


def encoder_forward(modality, params, x, mask, cfg):
    """Encode one modality's batch into D-dimensional units (ENC).

    Parameters
    ----------
    modality : str
    params : dict
        Contains this modality's ``"<m>.*"`` entries (extra keys are ignored).
    x : ndarray
        images (B, H, W); log-mel frames (B, T, n_mels); token ids (B, T) int;
        toy features (B, T, F).
    mask : ndarray of bool, shape (B, T_in), or None
        Valid input units (patches for images); None: all valid.
    cfg : ModelConfig

    Returns
    -------
    H : ndarray, shape (B, T, D)
    M : ndarray of bool, shape (B, T)
        Valid units (for speech, after the strided convolutions).
    cache : tuple
        For :func:`encoder_backward`; ``cache[2]`` holds the ReLU signs
        (the kinks of a gradient check).

    Notes
    -----
    With ``cfg.unit_norm`` the units are L2-normalized, h <- h / ||h||
    **(choice)**: both modalities then meet the shared codebook on the same
    sphere, where the distances of CM-1 have one scale. Inputs or weights so
    large that a layer overflows the dtype give NaN or inf units.
    """
    P, x, mask = check_encoder_args(modality, params, x, mask, cfg)
    H, M, cache = _encoder_forward(modality, P, x, mask, cfg)
    if cfg.unit_norm:
        H, c_norm = layers.l2_normalize_forward(H)
        cache = cache[:3] + (c_norm,) + cache[4:]
    return H, M, cache


def _encoder_forward(modality, P, x, mask, cfg):
    """The encoder's layers on checked arguments (P: "W1", "b1", "W2", "b2" of the modality).

    Without the unit normalization: :func:`minivq.model.loss_forward`
    applies it where the model is read, :func:`encoder_forward` here.
    """
    H, M, caches, signs = _encode(modality, P, x, mask, cfg)
    return H, M, (modality, caches, signs, None, (H.shape, H.dtype))


def _encode(modality, P, x, mask, cfg):
    """The layers of :func:`encoder_forward`: (H, M, layer caches, ReLU signs)."""
    if modality == "speech":  # conv1d, ReLU, conv1d on the captions packed end to end
        H, M, cache, signs = speech_forward(P, x, mask, cfg.speech_kernel, cfg.speech_stride,
                                            np.dtype(cfg.dtype))
        return H, M, cache, signs
    if modality == "text":
        e, c1 = layers.embedding_forward(x, P["W1"])
        e = e * mask[:, :, None]  # padding tokens read as zeros, like the conv's padding
        pad = (cfg.text_kernel - 1) // 2
        H, c2 = layers.conv1d_forward(e, P["W2"], P["b2"], 1, pad)
        return H, mask, (c1, c2, mask), np.zeros(0, bool)
    if modality == "image" and cfg.image_window is not None:
        return _image_window_forward(P, x.astype(cfg.dtype, copy=False), mask, cfg)
    if modality == "image":
        x, patch_mask = layers.patchify(x.astype(cfg.dtype, copy=False), cfg.patch)
        mask = mask & patch_mask
    H, caches, signs = _mlp_forward(x.astype(cfg.dtype, copy=False), P["W1"], P["b1"], P["W2"], P["b2"])
    return H, mask, caches, signs


def _image_window_forward(P, x, mask, cfg):
    """Crops, affine, max over each cell's window, ReLU, affine: (H, mask, caches, kinks).

    The masked cells' pixels read as zeros (a valid cell's window never sees
    padding). The kinks are the ReLU signs and the winning crop of every
    (cell, feature): a gradient check must not move either.
    """
    B, Hpx, Wpx = x.shape
    rows, cols = Hpx // cfg.patch, Wpx // cfg.patch
    _, _, _, pool, step = _crop_grid(Hpx, Wpx, cfg.patch, cfg.image_window, cfg.image_stride)
    crops = _patch_crops(x, cfg.patch, cfg.image_window, cfg.image_stride, mask)  # (B, Py, Px, p p)
    a, c1 = layers.affine_forward(crops, P["W1"], P["b1"])  # (B, Py, Px, hidden)
    m, c_max = _cell_max_forward(a, pool, step, rows, cols)  # (B, T, hidden)
    h, c2 = layers.relu_forward(m)
    H, c3 = layers.affine_forward(h, P["W2"], P["b2"])
    kinks = np.concatenate([(m > 0).ravel(), c_max[0].ravel()])
    return H, mask, ("window", c1, c_max, c2, c3), kinks


def encoder_backward(dH, cache):
    """Gradients of :func:`encoder_forward` with respect to its parameters.

    Parameters
    ----------
    dH : ndarray, shape (B, T, D)
    cache : tuple from :func:`encoder_forward`

    Returns
    -------
    dict
        ``"<m>.W1"``, ``"<m>.b1"`` (not for text), ``"<m>.W2"``, ``"<m>.b2"``.
    """
    return _encoder_backward(check_encoder_dout(dH, cache), cache)


def _encoder_backward(dH, cache):
    """:func:`encoder_backward` without the checks."""
    m, caches, _, c_norm = cache[:4]
    if c_norm is not None:
        dH = layers.l2_normalize_backward(dH, c_norm)
    if m == "text":
        c1, c2, mask = caches
        de, dW2, db2 = layers.conv1d_backward(dH, c2)
        dW1 = layers.embedding_backward(de * mask[:, :, None], c1)
        return {f"{m}.W1": dW1, f"{m}.W2": dW2, f"{m}.b2": db2}
    if m == "speech":
        return {f"speech.{name}": g for name, g in speech_backward(dH, caches).items()}
    if isinstance(caches[0], str):  # "window": image with cfg.image_window: the max routes dm to the winning crops
        _, c1, c_max, c2, c3 = caches
        dh, dW2, db2 = layers.affine_backward(dH, c3)
        da = _cell_max_backward(layers.relu_backward(dh, c2), c_max)
    else:
        c1, c2, c3 = caches
        dh, dW2, db2 = layers.affine_backward(dH, c3)
        da = layers.relu_backward(dh, c2)
    _, dW1, db1 = layers.affine_backward(da, c1, need_dx=False)  # the input is data: no dx
    return {f"{m}.W1": dW1, f"{m}.b1": db1, f"{m}.W2": dW2, f"{m}.b2": db2}


def _strided_labels(labels, k, stride, padding, T_out):
    """Label of each conv output unit = label of its window centre (else -1)."""
    B, T = labels.shape
    c = np.arange(T_out) * stride - padding + (k - 1) // 2  # (T_out,) window centres
    inside = (c >= 0) & (c < T)
    out = np.full((B, T_out), -1, dtype=labels.dtype)
    out[:, inside] = labels[:, c[inside]]
    return out


def unit_labels(modality, labels, cfg):
    """Concept labels of the encoder's units from the labels of its inputs.

    Parameters
    ----------
    modality : str
    labels : ndarray of int, shape (B, T_in)
        Per-input labels (patches in patchify order, frames, tokens), -1
        for background.
    cfg : ModelConfig

    Returns
    -------
    ndarray of int, shape (B, T)
        For speech, unit t takes the label of frame c = t*stride - pad +
        (k-1)//2 of each convolution in turn (the centre rule of
        ``conv1d_output_mask``); other modalities keep their labels.
    """
    check_modality(modality, check_config(cfg))
    labels = check_int_array(labels, "labels", "(B, T_in)", ndim=2)
    if modality != "speech":
        return labels
    labels = labels.astype(np.int64, copy=False)  # room for the -1 of units beyond the input
    k, s = cfg.speech_kernel, cfg.speech_stride
    pad = (k - 1) // 2
    for _ in range(2):
        T_out = layers.conv1d_output_length(labels.shape[1], k, s, pad)
        labels = _strided_labels(labels, k, s, pad, T_out)
    return labels
