"""The layers without their argument checks, for callers that checked at their own boundary.

STYLE.md "Errors": every public layer validates its arguments, and inside a
training step that would scan the same arrays again in every layer. The
encoders (:mod:`minivq.encoders`) and the model (:mod:`minivq.model`)
validate their inputs and parameters once, at their public entry, then call
the layers through this module: the same functions, the same names, no
checks. Give these functions only what the checked versions would accept.
"""
from .conv import _conv1d_backward as conv1d_backward
from .conv import _conv1d_forward as conv1d_forward
from .conv import _conv1d_output_mask as conv1d_output_mask
from .conv import conv1d_output_length
from .dense import _affine_backward as affine_backward
from .dense import _affine_forward as affine_forward
from .dense import _l2_normalize_backward as l2_normalize_backward
from .dense import _l2_normalize_forward as l2_normalize_forward
from .dense import _layernorm_backward as layernorm_backward
from .dense import _layernorm_forward as layernorm_forward
from .dense import _relu_backward as relu_backward
from .dense import _relu_forward as relu_forward
from .sequence import _embedding_backward as embedding_backward
from .sequence import _embedding_forward as embedding_forward
from .sequence import _masked_mean_backward as masked_mean_backward
from .sequence import _masked_mean_forward as masked_mean_forward
from .sequence import _patchify as patchify

__all__ = [
    "affine_forward", "affine_backward", "relu_forward", "relu_backward",
    "layernorm_forward", "layernorm_backward", "conv1d_forward", "conv1d_backward",
    "conv1d_output_length", "conv1d_output_mask", "patchify", "embedding_forward",
    "embedding_backward", "masked_mean_forward", "masked_mean_backward",
    "l2_normalize_forward", "l2_normalize_backward",
]
