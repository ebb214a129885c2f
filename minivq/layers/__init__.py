"""Layers with hand-derived gradients (METHOD.md ENC, SUM-1, SUM-3).

Every layer is a pair ``out, cache = <name>_forward(...)`` and
``grads = <name>_backward(dout, cache)``, the gradients in the order of the
forward's differentiable inputs, in float32 or float64.

- :mod:`.dense`: affine, ReLU, tanh, layer norm, L2 normalization;
- :mod:`.conv`: 1-D convolution over time and its output mask;
- :mod:`.sequence`: patchify, embedding lookup, masked mean pooling;
- :mod:`.patches`: the window image encoder's crops and cell max-pool.

Derivations: ``notebooks/02_layers_and_gradient_checks.ipynb``.
"""
from .conv import conv1d_backward, conv1d_centres, conv1d_forward, conv1d_output_length, conv1d_output_mask
from .dense import (
    affine_backward, affine_forward, l2_normalize_backward, l2_normalize_forward,
    layernorm_backward, layernorm_forward, relu_backward, relu_forward, tanh_backward,
    tanh_forward,
)
from .patches import cell_max_backward, cell_max_forward, crop_grid, patch_crops
from .sequence import (
    embedding_backward, embedding_forward, masked_mean_backward, masked_mean_forward, patchify,
)

__all__ = [
    "affine_forward", "affine_backward", "relu_forward", "relu_backward",
    "tanh_forward", "tanh_backward", "layernorm_forward", "layernorm_backward",
    "conv1d_forward", "conv1d_backward", "conv1d_output_length", "conv1d_centres", "conv1d_output_mask",
    "patchify", "embedding_forward", "embedding_backward",
    "masked_mean_forward", "masked_mean_backward",
    "l2_normalize_forward", "l2_normalize_backward",
    "patch_crops", "crop_grid", "cell_max_forward", "cell_max_backward",
]
