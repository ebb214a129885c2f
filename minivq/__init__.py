"""minivq: cross-modal discrete representation learning from scratch.

The method of Liu et al., "Cross-Modal Discrete Representation Learning"
(ACL 2022), in NumPy with hand-derived gradients and a Cython kernel for the
nearest-codeword search. ``METHOD.md``, at the root of the repository, gives
every equation an ID; docstrings cite those IDs.

``minivq.BACKEND`` says which nearest-codeword path runs: ``"cython"`` (the
compiled fast kernel) or ``"numpy"`` (the reference). Set the environment
variable ``MINIVQ_PUREPYTHON=1`` before import to force the NumPy path.
"""
from .nearest import BACKEND, nearest_code
from .contrastive import mms_loss
from .matching import cmcm_loss

__version__ = "0.1.0"

__all__ = ["BACKEND", "nearest_code", "mms_loss", "cmcm_loss", "__version__"]
