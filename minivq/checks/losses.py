"""Checks of the contrastive losses (MMS, :mod:`minivq.contrastive`) and of code matching (CM-1..4,
:mod:`minivq.matching`): one function per public function, of the same name, on its bound arguments."""
import numpy as np

from .arrays import (check_bool, check_cache, check_codebook, check_eps, check_float, check_int, check_mask,
                     check_number, check_positive, check_shape)


# ------------------------------------------------------------------ MMS (minivq.contrastive)
def log_softmax(a):
    Z = a["Z"] = check_float(a["Z"], "Z", "(..., n, ...)", min_ndim=1)
    axis = a["axis"] = check_int(a["axis"], "axis", -Z.ndim, Z.ndim - 1)
    if Z.shape[axis] == 0:
        raise ValueError(f"Z must have at least one entry along axis {axis}, got shape {Z.shape}")


def info_nce_forward(a):
    S = check_float(a["S"], "S", "(B, B)", ndim=2, coerce=False)
    B = S.shape[0]
    if S.shape != (B, B) or B == 0:
        raise ValueError(f"S must be a square (B, B) matrix with B >= 1, got shape {S.shape}")
    margin = a["margin"] = check_number(a["margin"], "margin")
    span = float(S.max()) - float(S.min()) + abs(margin)  # the largest |Z_ij - Z_kl|
    if span > float(np.finfo(S.dtype).max):
        raise ValueError(f"S and margin must span less than {np.finfo(S.dtype).max:.3g} ({S.dtype}), got "
                         f"max(S) - min(S) + |margin| = {span:.3g}; rescale S")


def info_nce_backward(a):
    p_rows, _ = check_cache(a["cache"], ((np.ndarray, 2), (np.ndarray, 2)), "info_nce_forward")
    dloss = a["dloss"] = check_number(a["dloss"], "dloss")
    if abs(dloss) / (2 * len(p_rows)) > float(np.finfo(p_rows.dtype).max):
        raise ValueError(f"dloss must keep dloss / (2B) within {p_rows.dtype}, got {dloss!r}")


def mms_loss(a):
    info_nce_forward(a)


# ------------------------------------------------------------------ CM-1..4 (minivq.matching)
def _distribution_args(a, names=("H", "M", "E")):
    """H (B, T, D), M (B, T) with a valid unit per sample (None: all), E (K, D), tau, squared; M converted."""
    h, m, e = names
    H = check_float(a[h], h, "(B, T, D)", ndim=3, coerce=False)
    B, T, D = H.shape
    check_codebook(a[e], D, H.dtype, e)
    M = a[m] = check_mask(a[m], (B, T), "(B, T)", m, coerce=False, none_is_all=True)
    n_valid = M.sum(axis=1)  # (B,)
    if not n_valid.all():
        raise ValueError(f"{m} must mark at least one valid unit per sample (B, T); samples "
                         f"{np.flatnonzero(n_valid == 0).tolist()} have none")
    tau = a["tau"] = check_positive(a["tau"], "tau")
    if tau < float(np.finfo(H.dtype).tiny):  # 0 (or a denormal) in H's dtype: -d / tau would overflow
        raise ValueError(f"tau must be at least {np.finfo(H.dtype).tiny:.3g} in {H.dtype} (it underflows to 0), "
                         f"got {tau!r}")
    a["squared"] = check_bool(a["squared"], "squared")


def code_distribution_forward(a):
    _distribution_args(a)


def code_distribution_backward(a):
    M, X, E = check_cache(a["cache"], ((np.ndarray, 2),) * 3 + (None,) * 6, "code_distribution_forward")[:3]
    dP = a["dP"] = check_float(a["dP"], "dP", "(B, K)", ndim=2, dtype=X.dtype, like="P")
    check_shape(dP, "dP", (M.shape[0], E.shape[0]), "(B, K)")


def code_similarity_forward(a):
    P_a = check_float(a["P_a"], "P_a", "(B_a, K)", ndim=2, coerce=False)
    P_b = check_float(a["P_b"], "P_b", "(B_b, K)", ndim=2, dtype=P_a.dtype, like="P_a", coerce=False)
    if P_a.shape[1] != P_b.shape[1]:
        raise ValueError(f"P_b must have the K of P_a ({P_a.shape[1]}), got {P_b.shape} and P_a {P_a.shape}")
    for name, P in (("P_a", P_a), ("P_b", P_b)):
        if P.size and P.min() < 0:
            raise ValueError(f"{name} must hold probabilities (>= 0), got a minimum of {P.min()}")
    a["eps"] = check_eps(a["eps"], "eps", P_a.dtype, default=1e-10)


def code_similarity_backward(a):
    P_a, P_b = check_cache(a["cache"], ((np.ndarray, 2),) * 4 + (float,), "code_similarity_forward")[:2]
    dS = a["dS"] = check_float(a["dS"], "dS", "(B_a, B_b)", ndim=2, dtype=P_a.dtype, like="P_a")
    check_shape(dS, "dS", (P_a.shape[0], P_b.shape[0]), "(B_a, B_b)")


def cmcm_loss(a):
    H_a = check_float(a["H_a"], "H_a", "(B, T_a, D)", ndim=3, coerce=False)
    H_b = check_float(a["H_b"], "H_b", "(B, T_b, D)", ndim=3, dtype=H_a.dtype, like="H_a", coerce=False)
    if H_a.shape[0] != H_b.shape[0] or H_a.shape[2] != H_b.shape[2]:
        raise ValueError(f"H_b must hold the B pairs and D features of H_a {H_a.shape}, got {H_b.shape}")
    if H_a.shape[0] == 0:
        raise ValueError(f"H_a must hold at least one pair (B >= 1), got shape {H_a.shape}")
    _distribution_args(a, ("H_a", "M_a", "E"))
    _distribution_args(a, ("H_b", "M_b", "E"))
    a["eps"] = check_eps(a["eps"], "eps", H_a.dtype, default=1e-10)
