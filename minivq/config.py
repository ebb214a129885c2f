"""The model's configuration: one small, JSON-able dataclass (METHOD.md choices as fields).

Every **(choice)** of METHOD.md is a field here, and so are the three
variants of the paper's ablation (:data:`VARIANTS`). ``minivq.model``
re-exports both names.
"""
from dataclasses import asdict, dataclass, field

__all__ = ["MODALITIES", "VARIANTS", "ModelConfig"]

#: The modalities an encoder exists for (:mod:`minivq.encoders`).
MODALITIES = ("image", "speech", "text", "a", "b")

#: The ablation variants: summary only; summary + shared VQ; the full method.
VARIANTS = ("summary", "vq", "full")


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
        self.modalities = tuple(self.modalities)
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if len(self.modalities) < 2 or len(set(self.modalities)) != len(self.modalities):
            raise ValueError(f"modalities must name at least two distinct modalities, got {self.modalities}")
        unknown = [m for m in self.modalities if m not in MODALITIES]
        if unknown:
            raise ValueError(f"modalities must be among {MODALITIES}, got {self.modalities}")
        if self.codebook not in ("ema", "grad"):
            raise ValueError(f"codebook must be 'ema' or 'grad', got {self.codebook!r}")
        if self.codebook_init not in ("uniform", "kmeans++"):
            raise ValueError(f"codebook_init must be 'uniform' or 'kmeans++', got {self.codebook_init!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64', got {self.dtype!r}")

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
