"""Nearest-codeword search (METHOD.md VQ-1): validation, the NumPy reference,
and the dispatch to the compiled fast kernel.

For every row x of X (N, D) find k*(x) = argmin_k ||x - e_k||^2 over the rows
of the codebook E (K, D). The tie rule, kept by all three implementations:

- equal codewords (rows of E equal elementwise) are one code, reported as
  the lowest index among the copies;
- among different codewords, equal computed scores go to the lowest index
  (as ``np.argmin``); two codes whose distances differ by less than the
  rounding of the expansion (a few ulps of ||x||^2 + ||e||^2) may go either
  way, and the implementations may differ there.

Three implementations share one contract and are tested against each other
(``tests/test_nearest.py``); ``notebooks/01_nearest_codeword.ipynb`` walks
through them in this order:

- :func:`nearest_code_reference` (here): NumPy, written for reading. It is the
  specification and the fallback when the compiled kernel is missing.
- ``minivq._nearest_teaching.nearest_teaching``: the plain Cython loop over
  rows and codes.
- ``minivq._nearest_fast.nearest_fast``: row tiles, one GEMM per tile through
  ``scipy.linalg.cython_blas``, the argmin fused while the tile is in cache,
  OpenMP threads over tiles. :func:`nearest_code` uses it.

All three rank codes by the same score, s_k = ||e_k||^2 - 2 x.e_k, which
differs from ||x - e_k||^2 only by ||x||^2, a constant of the row; the squared
distance is reported as max(||x||^2 + min_k s_k, 0).
"""
import importlib
import os
import warnings
from contextlib import contextmanager
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import numpy as np

from ._checks import as_array
from .env import env_flag

__all__ = [
    "BACKEND",
    "OPENMP",
    "nearest_code",
    "nearest_threads",
    "nearest_code_reference",
    "nearest_code_teaching",
    "check_arrays",
    "validate_inputs",
]

#: Environment variable that forces the NumPy path when set to 1/true/yes/on
#: (read once, at import; :func:`minivq.env.env_flag`).
PUREPYTHON_ENV = "MINIVQ_PUREPYTHON"

_PACKAGE_DIR = Path(__file__).resolve().parent


def _kernel_missing_message():
    """Why ``minivq._nearest_fast`` has no file to import, and what to run."""
    root = _PACKAGE_DIR.parent
    if (root / "setup.py").is_file() and (root / "pyproject.toml").is_file():
        return (
            f"minivq: you are importing minivq from the source tree at {root}, which has no "
            "compiled kernel; build it in place with `pip install -e .` or run from outside "
            "the source tree to use the installed package. Using the NumPy reference."
        )
    return (
        f"minivq: the installed package at {_PACKAGE_DIR} has no compiled kernel "
        "(minivq/_nearest_fast); reinstall it with `pip install --force-reinstall minivq` "
        "(a C compiler is needed when no wheel fits). Using the NumPy reference."
    )


def _load_fast():
    """Import the compiled fast kernel: (module, None) or (None, why not).

    Warns (RuntimeWarning) when the kernel is missing or fails to import,
    distinguishing an extension file that is not there (a source tree never
    built, or a broken install) from one that is there but does not load
    (then the import error itself is shown).
    """
    if env_flag(PUREPYTHON_ENV):
        return None, f"{PUREPYTHON_ENV} is set"
    built = [_PACKAGE_DIR / f"_nearest_fast{suffix}" for suffix in EXTENSION_SUFFIXES]
    if not any(path.is_file() for path in built):
        message = _kernel_missing_message()
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        return None, message
    try:
        from . import _nearest_fast

        return _nearest_fast, None
    except ImportError as exc:
        message = (
            f"minivq: the compiled kernel in {_PACKAGE_DIR} is there but fails to import: "
            f"{type(exc).__name__}: {exc}. Using the NumPy reference; rebuild it with "
            "`pip install --force-reinstall minivq` (or `pip install -e .` in a source tree)."
        )
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        return None, message


_fast, _compiled_error = _load_fast()


def compiled_passes(name):
    """The compiled module ``minivq.<name>`` of a fast path of training, or None: NumPy's passes then.

    None under ``MINIVQ_PUREPYTHON=1`` (NumPy only, as for :func:`nearest_code`) and in a source tree
    never built (the nearest-code kernel's import warning above already says what to run).
    """
    if env_flag(PUREPYTHON_ENV):
        return None
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ImportError:
        return None

#: Which nearest-codeword path :func:`nearest_code` runs: "cython" or "numpy".
BACKEND = "numpy" if _fast is None else "cython"
#: True when the compiled kernel was built with OpenMP (a test compile at build
#: time decides); without it ``n_threads`` above 1 runs on one thread.
OPENMP = bool(_fast is not None and _fast.openmp_enabled())

# Rows per tile of the fast kernel: a tile's (K, rows) score block should stay
# in the per-core L2 cache (2 MiB here) next to the packed codebook.
_TILE_BYTES = 1024 * 1024
_REFERENCE_CHUNK_ELEMENTS = 1 << 20
# Multiply-adds (N K D) a thread of the fast kernel must have to be worth starting (~1 ms of one core).
_MIN_THREAD_WORK = 1 << 23
# The fast kernel takes N, K and D as C ints (so does BLAS): larger would wrap.
_C_INT_MAX = int(np.iinfo(np.intc).max)


#: Threads of ``nearest_code(..., n_threads=None)`` inside :func:`nearest_threads`
#: (None: every core this process may run on).
_threads_default = None


@contextmanager
def nearest_threads(n_threads):
    """Within the block, ``nearest_code(..., n_threads=None)`` uses ``n_threads`` threads.

    Training holds BLAS to one thread (its matrices are small); the kernel
    follows the same setting there (``minivq.train.fit``), so that a second
    OpenMP thread does not wait for a core the caller is spinning on.
    """
    global _threads_default
    checked = _check_threads(n_threads)
    previous, _threads_default = _threads_default, checked
    try:
        yield checked
    finally:
        _threads_default = previous


def _default_threads():
    if _threads_default is not None:
        return _threads_default
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _check_threads(n_threads):
    if n_threads is None:
        return _default_threads()
    if isinstance(n_threads, (bool, np.bool_)) or not isinstance(n_threads, (int, np.integer)):
        raise TypeError(
            f"n_threads must be None or a positive int, got {type(n_threads).__name__} {n_threads!r}"
        )
    if n_threads < 1:
        raise ValueError(f"n_threads must be a positive int (>= 1), got {n_threads}")
    return int(n_threads)


def _as_float_matrix(a, name, shape_hint):
    a = as_array(a, name, shape_hint)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D {shape_hint}, got shape {a.shape} ({a.ndim}-D)")
    return a


def _row_sq_norms(a, name):
    """||a_i||^2 per row, (rows,); also the finiteness check of ``a``.

    A non-finite squared norm means a NaN or inf entry, or a row so large that
    its squared norm overflows the dtype; either way, a ValueError.
    """
    sq = np.einsum("ij,ij->i", a, a)
    if not np.isfinite(sq).all():
        if not np.isfinite(a).all():
            bad = np.argwhere(~np.isfinite(a))[0]
            raise ValueError(
                f"{name} must be finite, got {a[tuple(bad)]} at index {tuple(int(i) for i in bad)}"
            )
        raise ValueError(
            f"{name} has rows whose squared norm overflows {a.dtype} "
            f"(max |entry| {np.abs(a).max():.3g}); rescale the data"
        )
    return sq


def check_arrays(X, E):
    """Check dtypes and shapes of the search inputs; return C-contiguous arrays.

    Parameters
    ----------
    X : array_like, (N, D), float32 or float64
    E : array_like, (K, D), same dtype as X

    Returns
    -------
    X, E : ndarray, C-contiguous (a copy only when the layout needs one)

    Raises
    ------
    TypeError
        A dtype other than float32/float64, or X and E of different dtypes.
    ValueError
        Wrong ndim, K = 0, D = 0, or a D mismatch.
    """
    return _check_arrays(X, E, ("X", "E"))


def _check_arrays(X, E, names):
    """:func:`check_arrays`; ``names`` spell X and E as the caller did (e.g. "H" for quantize_forward)."""
    nx, ne = names
    X = _as_float_matrix(X, nx, "(N, D)")
    E = _as_float_matrix(E, ne, "(K, D)")
    if X.dtype != E.dtype:
        raise TypeError(
            f"{nx} and {ne} must have the same dtype, got {nx} {X.dtype} and {ne} {E.dtype}; "
            "cast one with .astype()"
        )
    K, D = E.shape
    if K == 0:
        raise ValueError(f"{ne} must have at least one code (K >= 1), got shape {E.shape}")
    if D == 0:
        raise ValueError(f"{ne} must have at least one feature (D >= 1), got shape {E.shape}")
    if X.shape[1] != D:
        raise ValueError(
            f"{nx} must have D = {D} columns to match {ne} {E.shape}, got {nx} of shape {X.shape}"
        )
    return np.ascontiguousarray(X), np.ascontiguousarray(E)


def validate_inputs(X, E):
    """:func:`check_arrays`, then the squared norms, which must be finite.

    Returns
    -------
    X, E : ndarray, C-contiguous
    x_sq : ndarray, (N,), ||x_i||^2
    e_sq : ndarray, (K,), ||e_k||^2

    Raises
    ------
    TypeError, ValueError
        As :func:`check_arrays`; also NaN or inf in X or E, or squared norms
        that overflow the dtype.
    """
    return _validate(X, E, ("X", "E"))


def _validate(X, E, names):
    """:func:`validate_inputs` with the arguments spelled ``names``."""
    X, E = _check_arrays(X, E, names)
    e_sq = _row_sq_norms(E, names[1])
    x_sq = _row_sq_norms(X, names[0])
    if X.shape[0] and not np.isfinite(x_sq.max() + e_sq.max()):
        raise ValueError(
            f"{names[0]} and {names[1]} are too large for {X.dtype}: ||x||^2 + ||e||^2 overflows; rescale the data"
        )
    return X, E, x_sq, e_sq


def _reference_scores_argmin(X, E, e_sq):
    """Rows of X against E: argmin_k of s_k = ||e_k||^2 - 2 x.e_k, and min s."""
    ### BEGIN SOLUTION nearest_reference
    scores = e_sq[None, :] - 2 * (X @ E.T)  # (n, K)
    idx = scores.argmin(axis=1)  # first minimum: ties go to the lowest index
    return idx, scores[np.arange(len(idx)), idx]
    ### END SOLUTION


def _first_copies(E):
    """first[k] = the lowest index j with E[j] == E[k] elementwise, (K,) int64; None without copies.

    BLAS may round the products of two equal codewords differently, so a copy
    can score a hair below its original; every code is then reported as its
    first copy (the tie rule of the module docstring).
    """
    rows = np.ascontiguousarray(E + E.dtype.type(0))  # -0.0 + 0.0 = 0.0: equal values, equal bytes
    keys = rows.view(np.dtype((np.void, rows.itemsize * rows.shape[1]))).ravel()  # (K,) one key per row
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    if len(first) == len(keys):
        return None
    return first[inverse.ravel()].astype(np.int64)


def nearest_code_reference(X, E):
    """Nearest codeword of every row, in NumPy: the specification (VQ-1).

    Parameters
    ----------
    X : array_like, (N, D), float32 or float64
        Features to quantize.
    E : array_like, (K, D), same dtype
        Codebook.

    Returns
    -------
    indices : ndarray, (N,), int64
        k*(x_i) = argmin_k ||x_i - e_k||^2, ties by the rule of the module
        docstring (equal codewords: the lowest index of the copies).
    sq_distances : ndarray, (N,), X's dtype
        ||x_i - e_{k*}||^2, clamped at 0.

    Notes
    -----
    (VQ-1) with the expansion ||x - e||^2 = ||x||^2 - 2 x.e + ||e||^2: the
    N x K distances become one matrix product X E^T plus two vectors of
    squared norms. ||x||^2 does not change the argmin, so the codes are ranked
    by s_k = ||e_k||^2 - 2 x.e_k. Rows are processed in chunks so the
    (chunk, K) block stays small. Derivation: notebooks/01_nearest_codeword.
    """
    return _reference(X, E, ("X", "E"))


def _reference(X, E, names):
    """:func:`nearest_code_reference` with the arguments spelled ``names``."""
    X, E, x_sq, e_sq = _validate(X, E, names)
    N, K = X.shape[0], E.shape[0]
    indices = np.empty(N, dtype=np.int64)
    sq_distances = np.empty(N, dtype=X.dtype)
    chunk = max(1, _REFERENCE_CHUNK_ELEMENTS // K)
    for start in range(0, N, chunk):
        rows = slice(start, start + chunk)
        idx, best = _reference_scores_argmin(X[rows], E, e_sq)
        indices[rows] = idx
        sq_distances[rows] = np.maximum(x_sq[rows] + best, 0)
    first = _first_copies(E) if N else None
    return (indices if first is None else first[indices]), sq_distances


def nearest_code_teaching(X, E):
    """Nearest codeword of every row by the plain compiled loop (VQ-1).

    Same contract as :func:`nearest_code_reference`; runs the Cython teaching
    kernel ``minivq._nearest_teaching`` (one loop over rows, codes and
    features), for reading and for comparison, never for speed.

    Raises
    ------
    RuntimeError
        The compiled teaching kernel is not built (``minivq.BACKEND == "numpy"``).
    """
    if _fast is None:
        raise RuntimeError(
            f"the compiled teaching kernel is not available ({_compiled_error}); "
            "install minivq with `pip install .` and unset MINIVQ_PUREPYTHON"
        )
    from . import _nearest_teaching

    X, E, _, _ = validate_inputs(X, E)
    N, K = X.shape[0], E.shape[0]
    indices = np.empty(N, dtype=np.int64)
    sq_distances = np.empty(N, dtype=X.dtype)
    if N:
        _nearest_teaching.nearest_teaching(X, E, np.empty(K, X.dtype), indices, sq_distances)
    return indices, sq_distances


class _BlasOneThread:
    """Context manager holding every loaded BLAS library to one thread.

    The fast kernel runs its own threads over row tiles; a multi-threaded BLAS
    inside each would oversubscribe the cores. threadpoolctl finds the BLAS
    libraries once; entering and leaving are then two ctypes calls per
    library (about a microsecond), cheap enough for the smallest searches.
    Not safe against other Python threads changing BLAS threads meanwhile.
    """

    _libs = None  # [(get_num_threads, set_num_threads)] per BLAS library

    @staticmethod
    def _find_libs():
        try:
            from threadpoolctl import ThreadpoolController

            controllers = ThreadpoolController().select(user_api="blas").lib_controllers
        except Exception:  # threadpoolctl unable to inspect: leave BLAS as is
            return []
        libs = []
        for c in controllers:
            get = put = None
            if c.internal_api == "openblas" and getattr(c, "threading_layer", "") != "openmp":
                # OpenBLAS's own pool: call its C functions directly (~0.3 us each)
                symbol = getattr(c, "_get_symbol", lambda name: None)
                get, put = symbol("openblas_get_num_threads"), symbol("openblas_set_num_threads")
            if get is None or put is None:
                get, put = c.get_num_threads, c.set_num_threads
            libs.append((get, put))
        return libs

    @classmethod
    def holds(cls):
        """True when every loaded BLAS library runs on one thread (as training holds them)."""
        if cls._libs is None:
            cls._libs = cls._find_libs()
        return all(get() == 1 for get, _ in cls._libs)

    def __enter__(self):
        if _BlasOneThread._libs is None:
            _BlasOneThread._libs = self._find_libs()
        self._saved = [get() for get, _ in self._libs]
        for (_, put), n in zip(self._libs, self._saved):
            if n != 1:
                put(1)
        return self

    def __exit__(self, *exc):
        for (_, put), n in zip(self._libs, self._saved):
            if n != 1:
                put(n)
        return False


def nearest_code(X, E, *, n_threads=None):
    """Index of, and squared distance to, the nearest codeword of every row.

    Parameters
    ----------
    X : array_like, (N, D), float32 or float64
        Features to quantize, any memory layout (array-likes are converted).
    E : array_like, (K, D), same dtype as X
        Codebook, K >= 1, D >= 1.
    n_threads : int or None, keyword-only
        Threads of the compiled kernel (OpenMP, over row tiles); None uses
        every core this process may run on (or the :func:`nearest_threads`
        setting). An upper bound: a search uses at most one thread per row
        tile and per 2^23 multiply-adds (N K D), since a smaller share costs
        more to start than it saves. BLAS is held to one thread inside.
        Ignored, once validated, when ``minivq.BACKEND == "numpy"``; a kernel
        built without OpenMP (``minivq.OPENMP`` False; ``minivq.about()``
        says "OpenMP: off") runs on one thread whatever n_threads says.

    Returns
    -------
    indices : ndarray, (N,), int64
        argmin_k ||x_i - e_k||^2; equal codewords count as their lowest
        index, equal scores go to the lowest index (module docstring).
    sq_distances : ndarray, (N,), X's dtype
        The minimum squared distances, clamped at 0.

    Raises
    ------
    TypeError
        A non-float dtype, X and E of different dtypes, a non-int n_threads.
    ValueError
        A wrong ndim, K = 0, D = 0, a D mismatch, NaN or inf, n_threads < 1;
        for the compiled kernel, N, K or D above 2^31 - 1 (split X).

    Notes
    -----
    (VQ-1). Dispatches to the compiled fast kernel when ``minivq.BACKEND`` is
    "cython", else to :func:`nearest_code_reference`. See
    notebooks/01_nearest_codeword.ipynb.
    """
    return _search(X, E, _check_threads(n_threads), ("X", "E"))


def _search(X, E, threads, names):
    """:func:`nearest_code` after its thread check (None: the default); errors spell X and E as ``names``."""
    threads = _default_threads() if threads is None else threads
    if _fast is None:
        return _reference(X, E, names)
    X, E = _check_arrays(X, E, names)
    N, K = X.shape[0], E.shape[0]
    if max(N, K, X.shape[1]) > _C_INT_MAX:
        raise ValueError(
            f"{names[0]} {X.shape} and {names[1]} {E.shape} are too large for the compiled kernel: N, K and D "
            f"must each be at most {_C_INT_MAX}; search in chunks of rows"
        )
    if N == 0:
        _validate(X, E, names)  # E must still be finite
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=X.dtype)
    indices = np.empty(N, dtype=np.int64)
    sq_distances = np.empty(N, dtype=X.dtype)
    x_sq = np.empty(N, dtype=X.dtype)
    e_sq = np.empty(K, dtype=X.dtype)
    tile_rows = int(min(N, _fast.TILE_MAX_ROWS, max(16, _TILE_BYTES // (K * X.itemsize))))
    n_tiles = -(-N // tile_rows)
    # a thread gets at least _MIN_THREAD_WORK multiply-adds: below that, starting it costs more than it
    # saves (and in a training step its spinning would hold the core BLAS needs next)
    threads = min(threads, n_tiles, max(1, N * K * X.shape[1] // _MIN_THREAD_WORK)) if OPENMP else 1
    scratch = np.empty((threads, K, tile_rows), dtype=X.dtype)
    with _BlasOneThread():
        status = _fast.nearest_fast(X, E, x_sq, e_sq, indices, sq_distances, scratch, threads)
    if status:  # a norm is not finite: the search did not run; say why
        _validate(X, E, names)
        # validation passed, but the kernel sums in another order: an overflow at the edge
        raise ValueError(
            f"{names[0]} and {names[1]} are too large for {X.dtype}: a squared norm (or ||x||^2 + ||e||^2) "
            "overflows in the kernel; rescale the data"
        )
    return indices, sq_distances
