"""The model's configuration: one small, JSON-able dataclass (METHOD.md choices as fields).

Every **(choice)** of METHOD.md is a field here, and so are the three
variants of the paper's ablation (:data:`VARIANTS`). ``minivq.model``
re-exports both names.
"""
from dataclasses import asdict, dataclass, field

from .checks.arrays import check_bool, check_int, check_number, describe

__all__ = ["MODALITIES", "VARIANTS", "ModelConfig", "param_shapes"]

#: The modalities an encoder exists for (:mod:`minivq.encoders`).
MODALITIES = ("image", "speech", "text", "a", "b")

#: The ablation variants: summary only; summary + shared VQ; the full method.
VARIANTS = ("summary", "vq", "full")

#: Integer fields (sizes and geometry) and their largest accepted value.
_INT_FIELDS = ("D", "K", "hidden", "embed_dim", "patch", "n_mels", "vocab", "speech_kernel", "speech_stride",
               "text_kernel", "image_stride")
_MAX_SIZE = 1 << 20
#: Float fields and their accepted range [low, high]. A temperature below
#: 0.01 makes the similarities (up to 1 / tau) and their gradients so large
#: that float32 training diverges or overflows; weights and the margin above
#: 100 swamp the other terms of the loss.
_FLOAT_RANGES = {"tau": (0.01, 100.0), "tau_code": (0.01, 100.0), "margin": (0.0, 100.0),
                 "lambda_cmcm": (0.0, 100.0), "beta": (0.0, 100.0)}
_BOOL_FIELDS = ("unit_norm", "cosine", "squared")
_CHOICES = {"variant": VARIANTS, "codebook": ("ema", "grad"), "codebook_init": ("uniform", "kmeans++"),
            "dtype": ("float32", "float64")}


@dataclass
class ModelConfig:
    """Everything that fixes the model's shapes and its loss (a plain, JSON-able record).

    The defaults are those of ``minivq demo`` on the spoken-digit scenes
    (one unit per 8x8 image cell; speech: two convolutions of kernel 9 and
    stride 3, so one unit every 9 frames with a receptive field of 33
    frames, about three quarters of an average spoken digit, 43 frames).

    Attributes
    ----------
    modalities : tuple of str
        Two (or more) of ``image, speech, text, a, b``.
    variant : str
        ``"summary"``, ``"vq"`` or ``"full"`` (see :data:`VARIANTS`).
    D, K, hidden, embed_dim : int
        Unit (code) dimension, codebook size, encoder width, size of r.
    patch, n_mels, vocab, toy_dims, speech_kernel, speech_stride, text_kernel
        Input sizes and encoder geometry (:mod:`minivq.encoders`).
    image_window, image_stride : int or None, int
        Side of the window in which each image cell looks for its content,
        the cell plus (image_window - patch) / 2 pixels on each side, and the
        step in pixels of the patch-sized crops tried inside it **(choice)**:
        the cell's unit takes the largest response of each hidden feature
        over those crops (:mod:`minivq.layers.patches`), so it finds a digit
        that sits off the patch grid. None (default): the cell alone, the
        plain patch embedding. 16 and 2 with patch 8: a digit whose box
        covers most of a cell lies whole in that cell's window.
    unit_norm : bool
        L2-normalize the units H before they meet the codebook **(choice)**.
    tau, cosine, margin : float, bool, float
        SUM-3 temperature, cosine (True) or dot-product similarity, MMS delta.
    tau_code, squared, lambda_cmcm : float, bool, float
        CM-1 temperature and distance **(choice)**, weight of L_CMCM (LOSS).
        tau_c = 0.1 (not METHOD.md's 1) suits units on the unit sphere, where
        d lies in [0, 2]; it was chosen on the validation split.
    beta, codebook, codebook_init : float, str, str
        Commitment weight (VQ-3); ``"ema"`` (VQ-5) or ``"grad"`` (VQ-4);
        ``"uniform"`` or ``"kmeans++"`` (VQ-8).
    dtype : str
        ``"float32"`` to train, ``"float64"`` for gradient checks.
    """

    modalities: tuple = ("image", "speech")
    variant: str = "full"
    D: int = 32
    K: int = 32
    hidden: int = 64
    embed_dim: int = 64
    patch: int = 8
    n_mels: int = 40
    vocab: int = 11
    toy_dims: dict = field(default_factory=dict)
    speech_kernel: int = 9
    speech_stride: int = 3
    text_kernel: int = 3
    image_window: int | None = None
    image_stride: int = 2
    unit_norm: bool = True
    tau: float = 0.1
    cosine: bool = True
    margin: float = 0.0
    tau_code: float = 0.1
    squared: bool = False
    lambda_cmcm: float = 1.0
    beta: float = 0.25
    codebook: str = "ema"
    codebook_init: str = "kmeans++"
    dtype: str = "float32"

    def __post_init__(self):
        self.validate()

    def validate(self):
        """Check every field (done when the config is made); a ValueError/TypeError names the field."""
        for name, choices in _CHOICES.items():
            value = getattr(self, name)
            if not isinstance(value, str) or value not in choices:
                raise ValueError(f"ModelConfig {name} must be one of {choices}, got {describe(value)}")
        self.modalities = _check_modalities(self.modalities)
        for name in _INT_FIELDS:
            setattr(self, name, check_int(getattr(self, name), f"ModelConfig {name}", 1, _MAX_SIZE))
        for name, (low, high) in _FLOAT_RANGES.items():
            setattr(self, name, check_number(getattr(self, name), f"ModelConfig {name}", low, high))
        for name in _BOOL_FIELDS:
            setattr(self, name, check_bool(getattr(self, name), f"ModelConfig {name}"))
        self.toy_dims = _check_toy_dims(self.toy_dims, self.modalities)
        self.image_window = _check_image_window(self.image_window, self.image_stride, self.patch)

    @property
    def use_vq(self):
        """True when the discrete path (VQ, SUM-2) is on."""
        return self.variant in ("vq", "full")

    @property
    def use_cmcm(self):
        """True when the CMCM loss (CM-4) is on."""
        return self.variant == "full"

    def to_dict(self):
        """JSON-able dict (round trip: ``ModelConfig(**cfg.to_dict())``)."""
        return asdict(self)


def _check_modalities(modalities):
    """A list or tuple of at least two distinct names from MODALITIES; returns a tuple."""
    if not isinstance(modalities, (list, tuple)) or not all(isinstance(m, str) for m in modalities):
        raise TypeError(f"ModelConfig modalities must be a list of names from {MODALITIES}, "
                        f"got {describe(modalities)}")
    modalities = tuple(modalities)
    if len(modalities) < 2 or len(set(modalities)) != len(modalities):
        raise ValueError(f"ModelConfig modalities must name at least two distinct modalities, got {modalities}")
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown:
        raise ValueError(f"ModelConfig modalities must be among {MODALITIES}, got {modalities}")
    return modalities


def _check_image_window(window, stride, patch):
    """None, or an int >= patch with window - patch even; stride (checked as an int field) must divide
    patch and window - patch, so every cell's window holds the same grid of crops."""
    if window is None:
        return None
    window = check_int(window, "ModelConfig image_window", 1, _MAX_SIZE)
    if window < patch or (window - patch) % 2:
        raise ValueError(f"ModelConfig image_window must be None or an int >= patch = {patch} with "
                         f"image_window - patch even (the same margin on each side), got {window}")
    if patch % stride or (window - patch) % stride:
        raise ValueError(f"ModelConfig image_stride must divide patch = {patch} and image_window - patch = "
                         f"{window - patch}, got {stride}")
    return window


def _check_toy_dims(toy_dims, modalities):
    """{"a": F_a, "b": F_b}: a positive int for every toy modality in use (others may be given too)."""
    if not isinstance(toy_dims, dict):
        raise TypeError(f"ModelConfig toy_dims must be a dict like {{'a': 16, 'b': 16}}, got {describe(toy_dims)}")
    unknown = [k for k in toy_dims if k not in ("a", "b")]
    missing = [m for m in modalities if m in ("a", "b") and m not in toy_dims]
    if unknown or missing:
        raise ValueError(f"ModelConfig toy_dims must give the feature size of the toy modalities {missing or ''} "
                         f"(keys 'a', 'b' only), got {toy_dims}")
    return {k: check_int(v, f"ModelConfig toy_dims[{k!r}]", 1, _MAX_SIZE) for k, v in toy_dims.items()}


def param_shapes(modality, cfg):
    """{"W1", "b1", "W2", "b2"} -> shape for one encoder (text has no b1: its first layer is a lookup)."""
    F = {"image": cfg.patch * cfg.patch, "speech": cfg.n_mels, "text": cfg.vocab}.get(modality)
    F, Hd, D = cfg.toy_dims[modality] if F is None else F, cfg.hidden, cfg.D  # features per input unit
    if modality == "speech":
        return {"W1": (cfg.speech_kernel, F, Hd), "b1": (Hd,), "W2": (cfg.speech_kernel, Hd, D), "b2": (D,)}
    if modality == "text":
        return {"W1": (F, Hd), "W2": (cfg.text_kernel, Hd, D), "b2": (D,)}
    return {"W1": (F, Hd), "b1": (Hd,), "W2": (Hd, D), "b2": (D,)}
