"""One small encoder per modality, x -> units H (B, T, D) with a mask M (METHOD.md ENC).

No encoder is shared across modalities; only the codebook is (VQ). Each is
built from the hand-derived layers of :mod:`minivq.layers`:

- ``image``: patchify, affine, ReLU, affine (one unit per patch); with
  ``cfg.image_window``: the affine map of every patch-sized crop, the max of
  each feature over the crops in each cell's window, ReLU, affine
  (:mod:`minivq.layers.patches`), so a cell finds a digit off the grid;
- ``speech``: conv1d (stride s), ReLU, conv1d (stride s) over log-mel
  frames, on the captions packed end to end (:func:`pack`);
- ``text``: embedding, conv1d (one unit per token);
- ``a``, ``b`` (toy modalities, :func:`minivq.data.toy_pairs`): affine, ReLU, affine.

Parameters live in one flat dict with keys ``"<modality>.<name>"``; the
gradients come back with the same keys (STYLE.md). Derivations:
``notebooks/02_layers_and_gradient_checks.ipynb``, ``06_spoken_digits.ipynb``.
"""
import numpy as np

from . import layers
from .checks import checked
from .checks import model as check
from .config import MODALITIES, param_shapes
from .data.batches import DATA_KEYS, modality_arrays
from .optim import he_uniform

__all__ = ["MODALITIES", "DATA_KEYS", "modality_arrays", "input_dim", "init_encoder", "encoder_forward",
           "encoder_backward", "pack", "unit_labels"]

@checked(check.input_dim)
def input_dim(modality, cfg):
    """Features per input unit of an encoder: patch * patch pixels, n_mels, vocab, or the toy size."""
    return param_shapes(modality, cfg)["W1"][-2]


@checked(check.init_encoder)
def init_encoder(modality, cfg, rng):
    """He-uniform weights of one encoder; b1 zero, b2 from U(-0.1, 0.1); ``"text.W1"`` a N(0, 1) embedding.

    b2 is not zero: a blank image cell (all zeros) would otherwise give a unit
    of exactly 0, which has no direction for the unit normalization.
    """
    p = {}
    for name, shape in param_shapes(modality, cfg).items():
        p[f"{modality}.{name}"] = (he_uniform(rng, shape, dtype=cfg.dtype) if name.startswith("W")
                                   else np.zeros(shape, dtype=cfg.dtype))
    p[f"{modality}.b2"] = rng.uniform(-0.1, 0.1, size=cfg.D).astype(cfg.dtype)
    if modality == "text":  # an embedding table is not a fan-in layer
        p["text.W1"] = rng.normal(0.0, 1.0, size=p["text.W1"].shape).astype(cfg.dtype)
    return p


@checked(check.encoder_forward)
def encoder_forward(modality, params, x, mask, cfg):
    """Encode one modality's batch into D-dimensional units (ENC).

    Parameters
    ----------
    modality : str
    params : dict with this modality's ``"<m>.*"`` entries (others are ignored)
    x : ndarray; images (B, H, W), log-mel frames (B, T, n_mels), token ids (B, T), toy features (B, T, F)
    mask : ndarray of bool (B, T_in) (one entry per patch for images), or None: all valid
    cfg : ModelConfig

    Returns
    -------
    H : ndarray, (B, T, D), cfg.dtype; L2-normalized with ``cfg.unit_norm``; zero on invalid speech units
    M : ndarray of bool, (B, T)
    cache : tuple, for :func:`encoder_backward`
    """
    P = {name: params[f"{modality}.{name}"] for name in param_shapes(modality, cfg)}
    x = x if modality == "text" else x.astype(cfg.dtype, copy=False)
    if modality == "image" and cfg.image_window is None:
        x, _ = layers.patchify(x, cfg.patch)  # (B, T, patch * patch): one unit per cell
    forward, backward = _layers_of(modality, cfg)
    H, M, caches = forward(P, x, mask, cfg)
    c_norm = None
    if cfg.unit_norm:  # every modality meets the one codebook on the unit sphere (choice)
        H, c_norm = layers.l2_normalize_forward(H)
    return H, M, (modality, backward, (H.shape, H.dtype), caches, c_norm)


@checked(check.encoder_backward)
def encoder_backward(dH, cache):
    """Gradients of :func:`encoder_forward` with respect to its parameters, ``{"<m>.W1": ..., ...}``."""
    modality, backward, _, caches, c_norm = cache
    if c_norm is not None:
        dH = layers.l2_normalize_backward(dH, c_norm)
    return {f"{modality}.{name}": g for name, g in backward(dH, caches).items()}


def _layers_of(modality, cfg):
    """The (forward, backward) pair of one encoder's layers."""
    if modality == "image" and cfg.image_window is not None:
        return _window_forward, _window_backward
    return {"speech": (_speech_forward, _speech_backward),
            "text": (_text_forward, _text_backward)}.get(modality, (_mlp_forward, _mlp_backward))


def _mlp_forward(P, x, mask, cfg):
    """image (after patchify) and toy a/b: affine, ReLU, affine on every unit."""
    a, c1 = layers.affine_forward(x, P["W1"], P["b1"])
    h, c2 = layers.relu_forward(a)
    H, c3 = layers.affine_forward(h, P["W2"], P["b2"])
    return H, mask, (c1, c2, c3)


def _mlp_backward(dH, caches):
    c1, c2, c3 = caches
    dh, dW2, db2 = layers.affine_backward(dH, c3)
    _, dW1, db1 = layers.affine_backward(layers.relu_backward(dh, c2), c1, need_dx=False)  # x is data
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def _window_forward(P, x, mask, cfg):
    """image with cfg.image_window: crops, affine, max over each cell's window, ReLU, affine."""
    B, Hpx, Wpx = x.shape
    _, _, _, pool, step = layers.crop_grid(Hpx, Wpx, cfg.patch, cfg.image_window, cfg.image_stride)
    crops = layers.patch_crops(x, cfg.patch, cfg.image_window, cfg.image_stride, mask)  # (B, Py, Px, p p)
    a, c1 = layers.affine_forward(crops, P["W1"], P["b1"])  # (B, Py, Px, hidden)
    m, c_max = layers.cell_max_forward(a, pool, step, Hpx // cfg.patch, Wpx // cfg.patch)  # (B, T, hidden)
    h, c2 = layers.relu_forward(m)
    H, c3 = layers.affine_forward(h, P["W2"], P["b2"])
    return H, mask, (c1, c_max, c2, c3)


def _window_backward(dH, caches):
    c1, c_max, c2, c3 = caches
    dh, dW2, db2 = layers.affine_backward(dH, c3)
    da = layers.cell_max_backward(layers.relu_backward(dh, c2), c_max)
    _, dW1, db1 = layers.affine_backward(da, c1, need_dx=False)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


def _text_forward(P, ids, mask, cfg):
    """text: embedding, then conv1d (stride 1, 'same' padding); padding tokens read as zeros."""
    e, c1 = layers.embedding_forward(ids, P["W1"])
    H, c2 = layers.conv1d_forward(e * mask[:, :, None], P["W2"], P["b2"], 1, (cfg.text_kernel - 1) // 2)
    return H, mask, (c1, c2, mask)


def _text_backward(dH, caches):
    c1, c2, mask = caches
    de, dW2, db2 = layers.conv1d_backward(dH, c2)
    return {"W1": layers.embedding_backward(de * mask[:, :, None], c1), "W2": dW2, "b2": db2}


def pack(x, mask, reach, total_stride):
    """Lay the valid frames of B sequences end to end in one sequence (1, L, C), for strided convolutions.

    Each sequence starts at ``offsets[b]``, a multiple of ``total_stride`` (the
    product of the strides), so every output unit sees its own frames at the
    same places as in the padded batch; after its last valid frame come at
    least ``reach`` zero frames (the stack's reach, sum_l (k_l // 2) prod_{j<l}
    s_j), so no unit reads a neighbour. Invalid frames read as zeros.
    Returns (packed (1, L, C), packed mask (1, L), offsets (B,)).
    """
    B, T, C = x.shape
    extent = np.where(mask.any(axis=1), T - np.argmax(mask[:, ::-1], axis=1), 0)  # last valid frame + 1
    length = -(-(extent + reach) // total_stride) * total_stride  # (B,) each sequence and its gap
    offsets = np.concatenate(([0], np.cumsum(length[:-1])))
    packed = np.zeros((1, length.sum(), C), dtype=x.dtype)
    packed_mask = np.zeros((1, length.sum()), dtype=bool)
    for b, (o, n) in enumerate(zip(offsets.tolist(), extent.tolist())):  # one slice copy per sequence
        packed[0, o:o + n] = x[b, :n]
        packed_mask[0, o:o + n] = mask[b, :n]
    if np.count_nonzero(mask) != extent.sum():  # frames the mask marks invalid inside a sequence read as zeros
        packed[~packed_mask] = 0
    return packed, packed_mask, offsets


def _speech_forward(P, x, mask, cfg):
    """speech: conv1d, ReLU, conv1d (kernel k, stride s, padding (k - 1) // 2) on the packed captions.

    Packing skips the padding of the batch (half its frames on the demo's
    batches); hidden frames that no caption's valid frame centres read as
    zeros, as the padding would. H[M] = the packed units at rows offsets / s^2 + t.
    """
    k, s = cfg.speech_kernel, cfg.speech_stride
    pad = (k - 1) // 2
    xp, packed_mask, offsets = pack(x, mask, (k // 2) * (1 + s), s * s)
    a, c1 = layers.conv1d_forward(xp, P["W1"], P["b1"], s, pad)  # (1, T1, hidden)
    h, c_relu = layers.relu_forward(a)
    M1 = layers.conv1d_output_mask(packed_mask, k, s, pad)[..., None]  # (1, T1, 1) hidden frames on a caption
    Hp, c2 = layers.conv1d_forward(h * M1, P["W2"], P["b2"], s, pad)  # (1, T2, D)
    M = layers.conv1d_output_mask(layers.conv1d_output_mask(mask, k, s, pad), k, s, pad)  # (B, T_out)
    rows = (offsets[:, None] // (s * s) + np.arange(M.shape[1]))[M]  # packed unit of each valid unit
    H = np.zeros(M.shape + Hp.shape[2:], dtype=Hp.dtype)
    H[M] = Hp[0, rows]
    return H, M, (c1, c_relu, M1, c2, M, rows, Hp.shape)


def _speech_backward(dH, caches):
    c1, c_relu, M1, c2, M, rows, packed_shape = caches
    dHp = np.zeros(packed_shape, dtype=dH.dtype)
    dHp[0, rows] = dH[M]
    dh, dW2, db2 = layers.conv1d_backward(dHp, c2)
    da = layers.relu_backward(dh * M1, c_relu)
    _, dW1, db1 = layers.conv1d_backward(da, c1, need_dx=False)  # the frames are data
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


@checked(check.unit_labels)
def unit_labels(modality, labels, cfg):
    """Concept labels (B, T) of the encoder's units from the labels (B, T_in) of its inputs (-1: none).

    Speech unit t takes the label of the frame at its window centre, through
    both convolutions (:func:`minivq.layers.conv1d_centres`); other
    modalities keep their labels.
    """
    if modality != "speech":
        return labels
    k, s = cfg.speech_kernel, cfg.speech_stride
    labels = labels.astype(np.int64, copy=False)  # room for the -1 of units beyond the input
    for _ in range(2):
        c = layers.conv1d_centres(labels.shape[1], k, s, (k - 1) // 2)
        inside = (c >= 0) & (c < labels.shape[1])
        out = np.full((len(labels), len(c)), -1, dtype=labels.dtype)
        out[:, inside] = labels[:, c[inside]]
        labels = out
    return labels
