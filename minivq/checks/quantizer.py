"""Checks of the nearest-codeword search (VQ-1, :mod:`minivq.nearest`), the quantizer (VQ-2..8,
:mod:`minivq.quantizer`) and the EMA codebook (VQ-5, VQ-6, :mod:`minivq.ema`): one function per
public function, of the same name, on its bound arguments; plus :func:`check_arrays` and
:func:`validate_inputs`, the public checks of a search's X and E."""
import numpy as np

from .arrays import (FLOAT_DTYPES, MAX_SIZE, as_array, check_cache, check_codebook, check_count, check_float,
                     check_float_dtype, check_indices, check_int, check_mask, check_number, check_rng, check_shape,
                     per_modality, valid_units)


# ------------------------------------------------------------------ VQ-1 (minivq.nearest)
def _matrix(a, name, hint):
    a = as_array(a, name, hint)
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype}")
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D {hint}, got shape {a.shape} ({a.ndim}-D)")
    return a


def _arrays(X, E, names):
    """:func:`check_arrays` with X and E spelled ``names`` (e.g. H for quantize_forward)."""
    nx, ne = names
    X, E = _matrix(X, nx, "(N, D)"), _matrix(E, ne, "(K, D)")
    if X.dtype != E.dtype:
        raise TypeError(f"{nx} and {ne} must have the same dtype, got {nx} {X.dtype} and {ne} {E.dtype}; "
                        "cast one with .astype()")
    if E.shape[0] == 0:
        raise ValueError(f"{ne} must have at least one code (K >= 1), got shape {E.shape}")
    if E.shape[1] == 0:
        raise ValueError(f"{ne} must have at least one feature (D >= 1), got shape {E.shape}")
    if X.shape[1] != E.shape[1]:
        raise ValueError(f"{nx} must have D = {E.shape[1]} columns to match {ne} {E.shape}, got {nx} of shape "
                         f"{X.shape}")
    return np.ascontiguousarray(X), np.ascontiguousarray(E)


def _sq_norms(a, name):
    """||a_i||^2 per row, which is also the finiteness check (NaN, inf, or a norm that overflows)."""
    sq = np.einsum("ij,ij->i", a, a)
    if not np.isfinite(sq).all():
        if not np.isfinite(a).all():
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
            raise ValueError(f"{name} must be finite, got {a[bad]} at index {bad}")
        raise ValueError(f"{name} has rows whose squared norm overflows {a.dtype} (max |entry| "
                         f"{np.abs(a).max():.3g}); rescale the data")
    return sq


def _validated(X, E, names):
    """:func:`validate_inputs` with X and E spelled ``names``."""
    X, E = _arrays(X, E, names)
    e_sq, x_sq = _sq_norms(E, names[1]), _sq_norms(X, names[0])
    if len(X) and not np.isfinite(x_sq.max() + e_sq.max()):
        raise ValueError(f"{names[0]} and {names[1]} are too large for {X.dtype}: ||x||^2 + ||e||^2 overflows; "
                         "rescale the data")
    return X, E, x_sq, e_sq


def check_arrays(X, E):
    """X (N, D) and E (K, D) of one float dtype, K, D >= 1: C-contiguous (a copy only when the layout needs one)."""
    return _arrays(X, E, ("X", "E"))


def validate_inputs(X, E):
    """:func:`check_arrays`, then X, E, ||x||^2 (N,), ||e||^2 (K,): finite, and ||x||^2 + ||e||^2 too."""
    return _validated(X, E, ("X", "E"))


def nearest_threads(a):
    if a["n_threads"] is not None:
        a["n_threads"] = check_int(a["n_threads"], "n_threads", 1)


def nearest_code_reference(a):
    a["X"], a["E"], _, _ = _validated(a["X"], a["E"], ("X", "E"))


nearest_code_teaching = nearest_code_reference


def nearest_code(a):
    nearest_code_reference(a)
    nearest_threads(a)


# ------------------------------------------------------------------ VQ-2..4, VQ-7, VQ-8 (minivq.quantizer)
def quantize_forward(a):
    H = check_float(a["H"], "H", "(..., D)", min_ndim=1, coerce=False)
    check_codebook(a["E"], H.shape[-1], H.dtype, units="H")
    _validated(H.reshape(-1, H.shape[-1]), a["E"], ("H", "E"))  # the squared norms must not overflow


def quantize_backward(a):
    shape, dtype = check_cache(a["cache"], (tuple, np.dtype), "quantize_forward")
    dQ = a["dQ"] = check_float(a["dQ"], "dQ", "(..., D), H's shape", dtype=dtype, like="H")
    check_shape(dQ, "dQ", shape, "H.shape")


def commitment_loss(a):
    H = check_float(a["H"], "H", "(..., D)", min_ndim=1, coerce=False)
    Q = check_float(a["Q"], "Q", "(..., D)", min_ndim=1, dtype=H.dtype, like="H", coerce=False)
    if Q.shape != H.shape:
        raise ValueError(f"Q must have the shape of H {H.shape}, got {Q.shape}")
    M = a["M"] = check_mask(a["M"], H.shape[:-1], "H.shape[:-1]", coerce=False, none_is_all=True, allow_empty=False)
    if H.shape[-1] == 0:
        raise ValueError(f"H must have at least one feature (D >= 1), got shape {H.shape}")
    beta = a["beta"] = check_number(a["beta"], "beta", 0)
    if 2 * beta / (M.sum() * H.shape[-1]) > float(np.finfo(H.dtype).max):
        raise ValueError(f"beta must keep 2 beta / (N D) within {H.dtype}, got {beta!r}")


def codebook_loss(a):
    H = check_float(a["H"], "H", "(..., D)", min_ndim=1, coerce=False)
    K = check_codebook(a["E"], H.shape[-1], H.dtype, units="H").shape[0]
    check_indices(a["idx"], H.shape[:-1], K)
    a["M"] = check_mask(a["M"], H.shape[:-1], "H.shape[:-1]", coerce=False, none_is_all=True, allow_empty=False)


def codebook_usage(a):
    K = a["K"] = check_count(a["K"], "K")
    n_valid = 0
    for idx_m, M_m in zip(*per_modality(a["idx"], a["M"], names=("idx", "M"))):
        check_indices(idx_m, getattr(idx_m, "shape", ()), K)
        n_valid += check_mask(M_m, idx_m.shape, "idx.shape", coerce=False, none_is_all=True).sum()
    if n_valid == 0:
        raise ValueError("M must mark at least one valid unit, got none")


def init_codebook_uniform(a):
    K, D = a["K"], a["D"] = check_count(a["K"], "K"), check_count(a["D"], "D")
    if K * D > MAX_SIZE:
        raise ValueError(f"K and D must make a codebook of at most {MAX_SIZE} entries, got K * D = {K * D}")
    dtype = a["dtype"] = check_float_dtype(a["dtype"])
    if a["scale"] is not None:  # the width 2 scale must stay finite
        a["scale"] = check_number(a["scale"], "scale", 0, float(np.finfo(dtype).max) / 2, low_open=True)
    a["rng"] = check_rng(a["rng"])


def init_codebook_kmeanspp(a):
    a["K"] = check_count(a["K"], "K", 1 << 16)
    if valid_units(a["H"], a["M"]).shape[1] == 0:
        raise ValueError("H must have at least one feature (D >= 1), got D = 0")
    a["rng"] = check_rng(a["rng"])


# ------------------------------------------------------------------ VQ-5, VQ-6 (minivq.ema)
def ema_state(state):
    """An EMAState (from ema_init): n (K,), m (K, D), E (K, D) of one dtype, K >= 1, finite, n > 0."""
    if isinstance(state, type) or not all(hasattr(state, field) for field in ("n", "m", "E")):
        raise TypeError(f"state must be an EMAState (see ema_init), got {type(state).__name__}")
    E = check_float(state.E, "state.E", "(K, D)", ndim=2, coerce=False)
    check_float(state.m, "state.m", "(K, D)", ndim=2, dtype=E.dtype, like="state.E", coerce=False)
    check_float(state.n, "state.n", "(K,)", ndim=1, dtype=E.dtype, like="state.E", coerce=False)
    if E.shape[0] == 0 or state.m.shape != E.shape or state.n.shape != E.shape[:1]:
        raise ValueError(f"state must hold n (K,), m (K, D) and E (K, D) with K >= 1, got {state.n.shape}, "
                         f"{state.m.shape}, {E.shape}")
    if state.n.min() <= 0:
        raise ValueError(f"state.n must hold counts > 0, got a minimum of {state.n.min()}")
    return state


def ema_init(a):
    E = check_float(a["E"], "E", "(K, D)", ndim=2, coerce=False)
    if E.shape[0] == 0:
        raise ValueError(f"E must hold at least one code (K >= 1), got shape {E.shape}")
    n_init = a["n_init"] = check_number(a["n_init"], "n_init", 0, low_open=True)
    with np.errstate(over="ignore"):
        if not (np.isfinite(E.dtype.type(n_init)) and np.isfinite(np.abs(E).max(initial=0) * E.dtype.type(n_init))):
            raise ValueError(f"n_init must keep m = n_init E finite in {E.dtype}, got {n_init!r} "
                             f"(max |E| {np.abs(E).max(initial=0):.3g})")


def ema_update(a):
    K, D = ema_state(a["state"]).E.shape
    dtype = a["state"].E.dtype
    a["decay"] = check_number(a["decay"], "decay", 0, 1, low_open=True, high_open=True)
    a["eps"] = check_number(a["eps"], "eps", 0, 1e30)
    for H_m, idx_m, M_m in zip(*per_modality(a["H"], a["idx"], a["M"], names=("H", "idx", "M"))):
        check_float(H_m, "H", "(..., D)", min_ndim=1, dtype=dtype, like="state.E", coerce=False)
        if H_m.shape[-1] != D:
            raise ValueError(f"H must have D = {D} features (state.E is {(K, D)}), got shape {H_m.shape}")
        check_indices(idx_m, H_m.shape[:-1], K)
        check_mask(M_m, H_m.shape[:-1], "H.shape[:-1]", coerce=False, none_is_all=True)


def restart_dead_codes(a):
    state = ema_state(a["state"])
    dtype = state.E.dtype
    threshold = a["threshold"] = check_number(a["threshold"], "threshold", 0, float(np.finfo(dtype).max),
                                              low_open=True)
    X = valid_units(a["H"], a["M"], D=state.E.shape[1], dtype=dtype, like="state.E")  # (N, D)
    with np.errstate(over="ignore"):
        if not np.isfinite(np.abs(X).max() * dtype.type(threshold)):
            raise ValueError(f"threshold must keep m = e threshold finite in {dtype}, got {threshold!r} "
                             f"(max |H| {np.abs(X).max():.3g})")
    a["rng"] = check_rng(a["rng"])
