"""minivq: cross-modal discrete representation learning from scratch.

The method of Liu et al., "Cross-Modal Discrete Representation Learning"
(ACL 2022), in NumPy with hand-derived gradients and a Cython kernel for the
nearest-codeword search. ``METHOD.md``, at the root of the repository, gives
every equation an ID; docstrings cite those IDs.

``minivq.BACKEND`` says which nearest-codeword path runs: ``"cython"`` (the
compiled fast kernel) or ``"numpy"`` (the reference). Set the environment
variable ``MINIVQ_PUREPYTHON=1`` before import to force the NumPy path.
``minivq.about()`` (also ``minivq --version``) says in one line which version,
backend and OpenMP setting this installation has, and where it lives.
"""
# The single source of the version: pyproject.toml reads it from here
# (setuptools' dynamic version, parsed without importing the package).
__version__ = "0.2.0"

from .cli.startup import arm as _arm  # noqa: E402  (first: in the `minivq` command, Ctrl-C and bad
_arm()  # switches end in one line from the start, minivq.cli.startup)

from pathlib import Path as _Path  # noqa: E402

from .nearest import BACKEND, OPENMP, nearest_code  # noqa: E402
from .contrastive import mms_loss  # noqa: E402
from .matching import cmcm_loss  # noqa: E402
from ._moved import moved_attribute as __getattr__  # noqa: E402  (the module paths 0.3 moved)

__all__ = ["BACKEND", "OPENMP", "about", "nearest_code", "mms_loss", "cmcm_loss", "__version__"]


def about():
    """One line on this installation: version, backend, OpenMP, location.

    Returns
    -------
    str
        e.g. ``"minivq 0.2.0 (backend: cython, OpenMP: on, up to 2 threads)
        from /path/to/site-packages/minivq"``. With the NumPy backend or a
        kernel built without OpenMP, ``nearest_code`` runs on one thread
        whatever ``n_threads`` says; this line is where that shows.
    """
    from . import nearest

    if BACKEND != "cython":
        forced = nearest._compiled_error == f"{nearest.PUREPYTHON_ENV} is set"
        why = nearest._compiled_error if forced else "compiled kernel not loaded, see the import warning"
        openmp = f"OpenMP: n/a, NumPy reference on one thread: {why}"
    elif OPENMP:
        openmp = f"OpenMP: on, up to {nearest._default_threads()} threads"
    else:
        openmp = "OpenMP: off, the compiled kernel runs on one thread"
    return f"minivq {__version__} (backend: {BACKEND}, {openmp}) from {_Path(__file__).resolve().parent}"
