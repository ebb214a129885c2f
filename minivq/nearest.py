"""Nearest-codeword search (METHOD.md VQ-1): the NumPy reference, the compiled kernels, the dispatch.

For every row x of X (N, D), k*(x) = argmin_k ||x - e_k||^2 over the rows of
the codebook E (K, D). The tie rule, the reference's, kept by all three
implementations: equal codewords are one code, reported as the lowest index
among the copies; equal scores go to the lowest index (as ``np.argmin``).
Codes whose distances differ by less than the rounding of the expansion (a
few ulps of ||x||^2 + ||e||^2) may go either way.

Three implementations, tested against each other (``tests/test_nearest.py``)
and shown in this order by ``notebooks/01_nearest_codeword.ipynb``:
:func:`nearest_code_reference` (NumPy, the specification and the fallback),
:func:`nearest_code_teaching` (the plain Cython loop,
``minivq/_nearest_teaching.pyx``) and the fast kernel that
:func:`nearest_code` runs (``minivq/_nearest_fast.pyx``: row tiles, one GEMM
per tile, the argmin fused while the tile is in cache, OpenMP threads over
tiles). All three rank codes by s_k = ||e_k||^2 - 2 x.e_k (||x||^2 is a
constant of the row) and report max(||x||^2 + min_k s_k, 0). Argument checks:
:mod:`minivq.checks.quantizer`, whose :func:`check_arrays` and
:func:`validate_inputs` are public here too.
"""
import importlib
import os
import warnings
from contextlib import contextmanager
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import numpy as np

from .checks import checked
from .checks import quantizer as checks
from .checks.quantizer import check_arrays, validate_inputs
from .env import env_flag

__all__ = ["BACKEND", "OPENMP", "nearest_code", "nearest_threads", "nearest_code_reference",
           "nearest_code_teaching", "check_arrays", "validate_inputs"]

#: Environment variable that forces the NumPy path when set to 1/true/yes/on
#: (read once, at import; :func:`minivq.env.env_flag`).
PUREPYTHON_ENV = "MINIVQ_PUREPYTHON"

_PACKAGE_DIR = Path(__file__).resolve().parent


def _load_fast():
    """The compiled fast kernel: (module, None), or (None, why not) after a RuntimeWarning saying what to run."""
    if env_flag(PUREPYTHON_ENV):
        return None, f"{PUREPYTHON_ENV} is set"
    root = _PACKAGE_DIR.parent
    if not any((_PACKAGE_DIR / f"_nearest_fast{suffix}").is_file() for suffix in EXTENSION_SUFFIXES):
        if (root / "setup.py").is_file() and (root / "pyproject.toml").is_file():
            message = (f"minivq: you are importing minivq from the source tree at {root}, which has no compiled "
                       "kernel; build it in place with `pip install -e .` or run from outside the source tree "
                       "to use the installed package. Using the NumPy reference.")
        else:
            message = (f"minivq: the installed package at {_PACKAGE_DIR} has no compiled kernel "
                       "(minivq/_nearest_fast); reinstall it with `pip install --force-reinstall minivq` "
                       "(a C compiler is needed when no wheel fits). Using the NumPy reference.")
    else:
        try:
            return importlib.import_module(f"{__package__}._nearest_fast"), None
        except ImportError as exc:
            message = (f"minivq: the compiled kernel in {_PACKAGE_DIR} is there but fails to import: "
                       f"{type(exc).__name__}: {exc}. Using the NumPy reference; rebuild it with "
                       "`pip install --force-reinstall minivq` (or `pip install -e .` in a source tree).")
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    return None, message


_fast, _compiled_error = _load_fast()

#: Which nearest-codeword path :func:`nearest_code` runs: "cython" or "numpy".
BACKEND = "numpy" if _fast is None else "cython"
#: True when the compiled kernel was built with OpenMP; without it ``n_threads`` above 1 runs on one thread.
OPENMP = bool(_fast is not None and _fast.openmp_enabled())


# Rows per tile of the fast kernel: a tile's (K, rows) score block should stay in a core's L2 cache.
_TILE_BYTES = 1024 * 1024
# Rows of the reference per (rows, K) block of scores.
_REFERENCE_CHUNK_ELEMENTS = 1 << 20
# Multiply-adds (N K D) a thread of the fast kernel must have to be worth starting (~1 ms of one core).
_MIN_THREAD_WORK = 1 << 23
# Threads of nearest_code(..., n_threads=None) inside nearest_threads (None: every core this process may use).
_threads_default = None


@contextmanager
@checked(checks.nearest_threads)
def nearest_threads(n_threads):
    """Within the block, ``nearest_code(..., n_threads=None)`` uses ``n_threads`` threads (None: every core).

    Training holds BLAS to one thread; the kernel follows the same setting
    there (``minivq.train.fit``), so that a second thread does not wait for
    a core the caller is spinning on.
    """
    global _threads_default
    previous, _threads_default = _threads_default, n_threads or _default_threads()
    try:
        yield _threads_default
    finally:
        _threads_default = previous


def _default_threads():
    if _threads_default is not None:
        return _threads_default
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    return max(1, len(cores))


def _reference_scores_argmin(X, E, e_sq):
    """Rows of X against E: argmin_k of s_k = ||e_k||^2 - 2 x.e_k, and min s."""
    ### BEGIN SOLUTION nearest_reference
    scores = e_sq[None, :] - 2 * (X @ E.T)  # (n, K)
    idx = scores.argmin(axis=1)  # first minimum: ties go to the lowest index
    return idx, scores[np.arange(len(idx)), idx]
    ### END SOLUTION


def _first_copies(E):
    """first[k] = the lowest j with E[j] == E[k] elementwise, (K,) int64; None without copies.

    BLAS may round the products of two equal codewords differently, so a copy
    could score a hair below its original: every code is reported as its first copy.
    """
    rows = np.ascontiguousarray(E + E.dtype.type(0))  # -0.0 + 0.0 = 0.0: equal values, equal bytes
    keys = rows.view(np.dtype((np.void, rows.itemsize * rows.shape[1]))).ravel()  # (K,) one key per row
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return None if len(first) == len(keys) else first[inverse.ravel()].astype(np.int64)


@checked(checks.nearest_code_reference)
def nearest_code_reference(X, E):
    """Nearest codeword of every row, in NumPy: the specification (VQ-1).

    Parameters
    ----------
    X : array_like, (N, D), float32 or float64
    E : array_like, (K, D), X's dtype

    Returns
    -------
    indices : ndarray, (N,), int64
        k*(x_i) = argmin_k ||x_i - e_k||^2, ties by the rule of the module docstring.
    sq_distances : ndarray, (N,), X's dtype
        ||x_i - e_{k*}||^2, clamped at 0 (NaN for a unit that is not finite).

    Notes
    -----
    (VQ-1) with ||x - e||^2 = ||x||^2 - 2 x.e + ||e||^2: one matrix product
    per chunk of rows. Derivation: notebooks/01_nearest_codeword.ipynb.
    """
    N, K = X.shape[0], E.shape[0]
    x_sq, e_sq = np.einsum("nd,nd->n", X, X), np.einsum("kd,kd->k", E, E)  # (N,), (K,)
    indices, sq_distances = np.empty(N, dtype=np.int64), np.empty(N, dtype=X.dtype)
    chunk = max(1, _REFERENCE_CHUNK_ELEMENTS // K)
    for start in range(0, N, chunk):
        rows = slice(start, start + chunk)
        indices[rows], best = _reference_scores_argmin(X[rows], E, e_sq)
        sq_distances[rows] = np.maximum(x_sq[rows] + best, 0)
    first = _first_copies(E) if N else None
    return (indices if first is None else first[indices]), sq_distances


@checked(checks.nearest_code_teaching)
def nearest_code_teaching(X, E):
    """Nearest codeword of every row by the plain compiled loop (VQ-1), for reading, not for speed.

    The contract of :func:`nearest_code_reference`; runs
    ``minivq._nearest_teaching`` (one loop over rows, codes and features).
    A RuntimeError when the compiled kernels are not built (``minivq.BACKEND == "numpy"``).
    """
    if _fast is None:
        raise RuntimeError(f"the compiled teaching kernel is not available ({_compiled_error}); "
                           "install minivq with `pip install .` and unset MINIVQ_PUREPYTHON")
    from . import _nearest_teaching

    indices, sq_distances = np.empty(len(X), dtype=np.int64), np.empty(len(X), dtype=X.dtype)
    _nearest_teaching.nearest_teaching(X, E, np.empty(len(E), X.dtype), indices, sq_distances)
    return indices, sq_distances


class _BlasOneThread:
    """Context manager holding every loaded BLAS library to one thread (the fast kernel runs its own).

    threadpoolctl finds the libraries once; entering and leaving are then two
    ctypes calls per library.
    """

    _libs = None  # [(get_num_threads, set_num_threads)] per BLAS library

    @classmethod
    def _controls(cls):
        if cls._libs is None:
            try:
                from threadpoolctl import ThreadpoolController

                controllers = ThreadpoolController().select(user_api="blas").lib_controllers
            except Exception:  # threadpoolctl unable to inspect: leave BLAS as is
                controllers = []
            cls._libs = []
            for c in controllers:
                get = put = None
                if c.internal_api == "openblas" and getattr(c, "threading_layer", "") != "openmp":
                    symbol = getattr(c, "_get_symbol", lambda name: None)  # OpenBLAS's own pool: its C functions
                    get, put = symbol("openblas_get_num_threads"), symbol("openblas_set_num_threads")
                cls._libs.append((c.get_num_threads, c.set_num_threads) if get is None or put is None else (get, put))
        return cls._libs

    def __enter__(self):
        self._saved = [(put, get()) for get, put in self._controls()]
        for put, n in self._saved:
            if n != 1:
                put(1)
        return self

    def __exit__(self, *exc):
        for put, n in self._saved:
            if n != 1:
                put(n)
        return False


@checked(checks.nearest_code)
def nearest_code(X, E, *, n_threads=None):
    """Index of, and squared distance to, the nearest codeword of every row (VQ-1).

    Parameters
    ----------
    X : array_like, (N, D), float32 or float64, any memory layout
    E : array_like, (K, D), X's dtype, K >= 1, D >= 1
    n_threads : int or None, keyword-only
        Threads of the compiled kernel, at most one per row tile and per 2^23
        multiply-adds; None: every core (or the :func:`nearest_threads`
        setting). One thread without OpenMP or with the NumPy backend.

    Returns
    -------
    indices : ndarray, (N,), int64
        argmin_k ||x_i - e_k||^2, ties by the rule of the module docstring.
    sq_distances : ndarray, (N,), X's dtype
        The minimum squared distances, clamped at 0.

    Notes
    -----
    (VQ-1) by the fast kernel when ``minivq.BACKEND`` is "cython", else by
    :func:`nearest_code_reference`. Derivation: notebooks/01_nearest_codeword.ipynb.
    """
    if _fast is None or len(X) == 0:
        return nearest_code_reference(X, E)
    X, E = np.ascontiguousarray(X), np.ascontiguousarray(E)  # the kernel reads C order
    (N, D), K = X.shape, E.shape[0]
    indices, sq_distances = np.empty(N, dtype=np.int64), np.empty(N, dtype=X.dtype)
    tile_rows = int(min(N, _fast.TILE_MAX_ROWS, max(16, _TILE_BYTES // (K * X.itemsize))))
    threads = min(n_threads or _default_threads(), -(-N // tile_rows), max(1, N * K * D // _MIN_THREAD_WORK))
    threads = threads if OPENMP else 1
    scratch = np.empty((threads, K, tile_rows), dtype=X.dtype)
    with _BlasOneThread():
        declined = _fast.nearest_fast(X, E, np.empty(N, X.dtype), np.empty(K, X.dtype), indices, sq_distances,
                                      scratch, threads)
    if declined:  # a squared norm that is not finite (a unit of a diverged model): the reference says NaN
        return nearest_code_reference(X, E)
    return indices, sq_distances
