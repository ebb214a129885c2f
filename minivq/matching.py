"""Cross-Modal Code Matching (METHOD.md CM-1..4).

Every unit gets a soft assignment over the shared codebook (CM-1), a sample
the masked mean of its units' assignments (CM-2); two samples of different
modalities are compared by the negative symmetric cross-entropy of their
code distributions (CM-3), and the batch's S^code goes through the symmetric
InfoNCE of :mod:`minivq.contrastive` (CM-4). Gradients flow to the features
of both modalities and to the codebook.

Derivations, step by step down to dH and dE:
notebooks/04_cross_modal_code_matching.ipynb.
"""
import numpy as np

from ._checks import (check_bool, check_cache, check_codebook, check_eps, check_float, check_mask,
                      check_positive, check_shape, rescaled)
from .contrastive import _info_nce_backward, _info_nce_forward
from .layers import masked_mean_backward, masked_mean_forward
from .nearest import compiled_passes

# the compiled passes of CM-1 and CM-2, built with the package: the same bits as the NumPy passes
_fast = compiled_passes("_matching_fast")

__all__ = [
    "code_distribution_forward", "code_distribution_backward",
    "code_similarity_forward", "code_similarity_backward", "cmcm_loss",
]

#: Floor of ||h - e||^2 under the square root (CM-1): d >= 1e-6, so the
#: gradient 1 / (2 d) stays finite when a unit sits on a codeword.
SQ_DIST_FLOOR = 1e-12


def code_distribution_forward(H, M, E, tau=1.0, squared=False):
    """Code distribution of every sample: the masked mean of its units' soft assignments (CM-1, CM-2).

    Parameters
    ----------
    H : ndarray, (B, T, D), float32 or float64
        Features of one modality; padded units do not affect P (but must be finite).
    M : ndarray of bool, (B, T), or None
        Valid units; every sample needs at least one.
    E : ndarray, (K, D), H's dtype
        Shared codebook.
    tau : float
        Temperature tau_c > 0 of the soft assignment (default 1).
    squared : bool
        Use d = ||h - e||^2 instead of the Euclidean distance **(choice)**.

    Returns
    -------
    P : ndarray, (B, K)
        P_b(k); each row sums to 1.
    cache : tuple
        For :func:`code_distribution_backward`.

    Notes
    -----
    (CM-1) p(k | h) = softmax_k(-d(h, e_k) / tau), d = sqrt(max(||h - e_k||^2, 1e-12)),
    with ||h - e||^2 = ||h||^2 - 2 h.e + ||e||^2 (one matrix product, no (N, K, D) array).
    (CM-2) P_b(k) = sum_t M_bt p(k | h_bt) / sum_t M_bt, the masked mean of
    :func:`minivq.layers.masked_mean_forward`.
    """
    M = _check_distribution_args(H, M, E, tau, squared, ("H", "M", "E"))
    return _code_distribution_forward(H, M, E, tau, squared)


def _check_distribution_args(H, M, E, tau, squared, names):
    """The checks of :func:`code_distribution_forward`; ``names`` spell H, M, E as the caller did."""
    check_float(H, names[0], "(B, T, D)", ndim=3, coerce=False)
    B, T, D = H.shape
    check_codebook(E, D, H.dtype, names[2])
    M = check_mask(M, (B, T), "(B, T)", names[1], coerce=False, none_is_all=True)
    n_valid = M.sum(axis=1)  # (B,)
    if not n_valid.all():
        empty = np.flatnonzero(n_valid == 0)
        raise ValueError(f"{names[1]} must mark at least one valid unit per sample (B, T); samples "
                         f"{empty.tolist()} have none")
    tau = check_positive(tau, "tau")
    squared = check_bool(squared, "squared")
    _check_distance_range(H[M], E, tau, squared, names)
    return M


def _check_distance_range(X, E, tau, squared, names):
    """||h - e||^2 <= 2 ||h||^2 + 2 ||e||^2 and d / tau must stay finite in the dtype."""
    info = np.finfo(X.dtype)
    if X.dtype.type(tau) < info.tiny:
        raise ValueError(f"tau must be at least {info.tiny:.3g} in {X.dtype} (it underflows to 0), got {tau!r}")
    with np.errstate(over="ignore"):
        h_sq, e_sq = np.einsum("nd,nd->n", X, X), np.einsum("kd,kd->k", E, E)
        bound = 2.0 * (float(np.max(h_sq, initial=0)) + float(np.max(e_sq)))
    if bound > float(info.max):
        raise ValueError(f"{names[0]} and {names[2]} are too large for {X.dtype}: ||h - e||^2 overflows (its "
                         f"bound 2 ||h||^2 + 2 ||e||^2 is {bound:.3g}); rescale the features and the codebook")
    d_max = bound if squared else float(np.sqrt(bound))
    if d_max / tau > float(info.max):
        raise ValueError(f"tau = {tau!r} is too small for {X.dtype}: distances up to {d_max:.3g} divided by tau "
                         f"overflow; use tau >= {d_max / float(info.max):.3g}")


def _code_distribution_forward(H, M, E, tau=1.0, squared=False):
    """:func:`code_distribution_forward` without the checks; M a bool (B, T) mask.

    The same equations as :func:`_code_distribution_forward_reference`, and
    sq and d the same arrays to the bit; the softmax runs code-major, on
    (K, N) arrays, so its max and sum over the K codes of each unit run along
    the long axis (NumPy reduces a short last axis row by row, several times
    slower than the arithmetic), and CM-2 sums each sample's units with one
    ``np.add.reduceat`` instead of pooling a padded (B, T, K) array. The
    cache holds p unit-major (N, K), as the backward reads it. The passes
    between the matrix product and the exp, and between the exp and CM-2,
    run fused in the compiled :mod:`minivq._matching_fast` when it is built
    (:func:`_softmax_codes_fast`), in NumPy otherwise
    (:func:`_softmax_codes_numpy`): the same bits either way.
    """
    counts = M.sum(axis=1)  # (B,) valid units per sample
    if not counts.all():  # a sample without units (never from the checked entries): as the reference does
        return _code_distribution_forward_reference(H, M, E, tau, squared)
    tau = float(tau)  # a Python float: -d / tau stays in H's dtype (a NumPy float64 would promote float32 H)
    X = np.take(H.reshape(-1, H.shape[2]), np.flatnonzero(M), axis=0)  # (N, D) H[M], by index: 2x faster
    sq = np.matmul(X, E.T)  # (N, K) x.e; then -2 x.e + ||x||^2 + ||e||^2, the reference's sums
    if _fast is None:
        d, p_units, P = _softmax_codes_numpy(sq, X, E, tau, squared, counts)
    else:
        d, p_units, P = _softmax_codes_fast(sq, X, E, tau, squared, counts)
    weights = M / counts[:, None].astype(H.dtype)  # (B, T), the masked mean's weights, for the backward
    return P, (M, X, E, sq, d, p_units, tau, squared, (weights, E.shape[0]))


def _softmax_codes_numpy(sq, X, E, tau, squared, counts):
    """CM-1 and CM-2 from sq = X E^T (N, K), completed in place: (d, p (N, K), P (B, K)), by NumPy passes."""
    sq *= -2.0
    sq += (X * X).sum(1)[:, None]
    sq += (E * E).sum(1)[None, :]
    if squared:
        d = sq
    else:
        d = np.maximum(sq, SQ_DIST_FLOOR)
        np.sqrt(d, out=d)  # (N, K)
    logits = np.divide(d.T, -tau, order="C")  # (K, N), = -d^T / tau, transposed as it is written
    logits -= logits.max(axis=0)  # stable: the top logit gives exp(0)
    p = np.exp(logits, out=logits)
    p /= p.sum(axis=0)  # (K, N) softmax over the codes, CM-1
    starts = np.concatenate(([0], np.cumsum(counts[:-1])))
    P = (np.add.reduceat(p, starts, axis=1) / counts.astype(sq.dtype)).T.copy()  # (B, K), CM-2
    return d, np.ascontiguousarray(p.T), P


def _softmax_codes_fast(sq, X, E, tau, squared, counts):
    """:func:`_softmax_codes_numpy` by the two fused passes of :mod:`minivq._matching_fast` (and NumPy's exp)."""
    d = sq if squared else np.empty_like(sq)
    logits = np.empty_like(sq)  # (N, K): in C, a unit's reductions over its codes are cheap
    _fast.distances_logits(sq, X, (E * E).sum(1), d, logits, tau, SQ_DIST_FLOOR, squared)
    p_units = np.exp(logits, out=logits)
    P = np.empty((len(counts), sq.shape[1]), dtype=sq.dtype)
    _fast.normalize_codes(p_units, np.empty(sq.shape[::-1], dtype=sq.dtype), counts.astype(np.int64, copy=False), P)
    return d, p_units, P


def _code_distribution_forward_reference(H, M, E, tau=1.0, squared=False):
    """:func:`_code_distribution_forward` in the order of the equations (the reference of the tests)."""
    B, T, D = H.shape
    K = E.shape[0]
    X = H[M]  # (N, D) valid units, sample by sample
    sq = (X * X).sum(1)[:, None] - 2.0 * (X @ E.T) + (E * E).sum(1)[None, :]  # (N, K)
    d = sq if squared else np.sqrt(np.maximum(sq, SQ_DIST_FLOOR))  # (N, K)
    logits = -d / tau  # (N, K)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))  # stable: the top logit gives exp(0)
    p /= p.sum(axis=1, keepdims=True)  # (N, K) softmax, CM-1
    p_units = np.zeros((B, T, K), dtype=H.dtype)
    p_units[M] = p  # padded units stay 0; CM-2 gives them weight 0 anyway
    P, pool_cache = masked_mean_forward(p_units, M)  # (B, K), CM-2
    return P, (M, X, E, sq, d, p, tau, squared, pool_cache)


def code_distribution_backward(dP, cache):
    """Gradients of :func:`code_distribution_forward` with respect to H and E.

    Parameters
    ----------
    dP : ndarray, (B, K)
        Upstream gradient with respect to P.
    cache : tuple
        From :func:`code_distribution_forward`.

    Returns
    -------
    dH : ndarray, (B, T, D)
        Zero on padded units.
    dE : ndarray, (K, D)

    Notes
    -----
    Reverse of the forward, unit by unit (u in sample b, w_u = 1 / #valid units of b):
    dp_u = w_u dP_b; dlogit = p (dp - <p, dp>); dd = -dlogit / tau;
    dsq = dd / (2 d) where ||h - e||^2 > 1e-12, else 0 (dsq = dd if squared);
    dh_u = 2 sum_k dsq_uk (h_u - e_k); de_k = 2 sum_u dsq_uk (e_k - h_u).
    """
    M, X, E = check_cache(cache, ((np.ndarray, 2), (np.ndarray, 2), (np.ndarray, 2)) + (None,) * 6,
                          "code_distribution_forward")[:3]
    dP = check_float(dP, "dP", "(B, K)", ndim=2, dtype=X.dtype, like="P")
    check_shape(dP, "dP", (M.shape[0], E.shape[0]), "(B, K)")
    return rescaled(_code_distribution_backward, dP, cache)


def _code_distribution_backward(dP, cache):
    """:func:`code_distribution_backward` without the checks."""
    M, X, E, sq, d, p, tau, squared, pool_cache = cache
    ### BEGIN SOLUTION code_distribution_backward
    dp = masked_mean_backward(dP, pool_cache)[M]  # (N, K), CM-2: w_u dP_b
    dlogits = p * (dp - np.einsum("nk,nk->n", p, dp)[:, None])  # softmax backward: p (dp - <p, dp>)
    dd = dlogits / -tau  # logits = -d / tau
    if squared:
        dsq = dd
    else:
        dsq = dd / (2.0 * d) * (sq > SQ_DIST_FLOOR)  # (N, K); 0 below the floor, where d is constant
    dX = 2.0 * (dsq.sum(axis=1)[:, None] * X - dsq @ E)  # (N, D)
    dE = 2.0 * (dsq.sum(axis=0)[:, None] * E - dsq.T @ X)  # (K, D)
    dH = np.zeros(M.shape + X.shape[1:], dtype=X.dtype)  # (B, T, D)
    dH[M] = dX
    return dH, dE
    ### END SOLUTION


def code_similarity_forward(P_a, P_b, eps=1e-10):
    """Negative symmetric cross-entropy between every pair of code distributions (CM-3).

    Parameters
    ----------
    P_a : ndarray, (B_a, K)
        Code distributions of modality a (rows sum to 1).
    P_b : ndarray, (B_b, K)
        Code distributions of modality b.
    eps : float
        Inside the logarithms (default 1e-10); at least the dtype's smallest
        normal number (1.2e-38 in float32), so log(eps) is finite.

    Returns
    -------
    S : ndarray, (B_a, B_b)
        S_ij = sum_k P_a[i,k] log(P_b[j,k] + eps) + sum_k P_b[j,k] log(P_a[i,k] + eps).
    cache : tuple
        For :func:`code_similarity_backward`.

    Notes
    -----
    (CM-3). BOTH terms belong to the pair (i, j): S = P_a L_b^T + L_a P_b^T
    with L = log(P + eps). The CMG re-implementation's P_a L_b^T + P_b L_a^T
    pairs its second term (j, i); only the diagonal agrees.
    """
    check_float(P_a, "P_a", "(B_a, K)", ndim=2, coerce=False)
    check_float(P_b, "P_b", "(B_b, K)", ndim=2, dtype=P_a.dtype, like="P_a", coerce=False)
    if P_a.shape[1] != P_b.shape[1]:
        raise ValueError(f"P_b must have the K of P_a ({P_a.shape[1]}), got {P_b.shape} and P_a {P_a.shape}")
    for name, P in (("P_a", P_a), ("P_b", P_b)):
        if P.size and P.min() < 0:
            raise ValueError(f"{name} must hold probabilities (>= 0), got a minimum of {P.min()}")
    eps = check_eps(eps, "eps", P_a.dtype, default=1e-10)
    with np.errstate(over="ignore", invalid="ignore"):
        S, cache = _code_similarity_forward(P_a, P_b, eps)
    if not np.isfinite(S).all():
        raise ValueError(f"P_a and P_b must be code distributions (entries in [0, 1]); with largest entries "
                         f"{P_a.max(initial=0):.3g} and {P_b.max(initial=0):.3g} the similarities overflow {S.dtype}")
    return S, cache


def _code_similarity_forward(P_a, P_b, eps=1e-10):
    """:func:`code_similarity_forward` without the checks."""
    L_a = np.log(P_a + eps)  # (B_a, K)
    L_b = np.log(P_b + eps)  # (B_b, K)
    ### BEGIN SOLUTION bug_cmg_pairing
    S = P_a @ L_b.T + L_a @ P_b.T  # (B_a, B_b)
    ### END SOLUTION
    return S, (P_a, P_b, L_a, L_b, eps)


def code_similarity_backward(dS, cache):
    """Gradients of :func:`code_similarity_forward` with respect to P_a and P_b.

    Parameters
    ----------
    dS : ndarray, (B_a, B_b)
    cache : tuple
        From :func:`code_similarity_forward`.

    Returns
    -------
    dP_a : ndarray, (B_a, K)
        dS L_b + (dS P_b) / (P_a + eps).
    dP_b : ndarray, (B_b, K)
        dS^T L_a + (dS^T P_a) / (P_b + eps).

    Notes
    -----
    1 / (P + eps) reaches 1 / eps where P = 0: an entry overflows to inf when
    |dS| summed over a row exceeds eps times the dtype's largest number.
    """
    P_a, P_b = check_cache(cache, ((np.ndarray, 2),) * 4 + (float,), "code_similarity_forward")[:2]
    dS = check_float(dS, "dS", "(B_a, B_b)", ndim=2, dtype=P_a.dtype, like="P_a")
    check_shape(dS, "dS", (P_a.shape[0], P_b.shape[0]), "(B_a, B_b)")
    return rescaled(_code_similarity_backward, dS, cache)


def _code_similarity_backward(dS, cache):
    """:func:`code_similarity_backward` without the checks."""
    P_a, P_b, L_a, L_b, eps = cache
    ### BEGIN SOLUTION code_similarity_backward
    dP_a = dS @ L_b + (dS @ P_b) / (P_a + eps)
    dP_b = dS.T @ L_a + (dS.T @ P_a) / (P_b + eps)
    return dP_a, dP_b
    ### END SOLUTION


def cmcm_loss(H_a, M_a, H_b, M_b, E, tau=1.0, *, squared=False, eps=1e-10):
    """Cross-Modal Code Matching loss and its gradients (CM-1..4).

    Parameters
    ----------
    H_a : ndarray, (B, T_a, D)
        Features of modality a; M_a (B, T_a) bool marks the valid units.
    H_b : ndarray, (B, T_b, D)
        Features of modality b (pair i of the batch is (H_a[i], H_b[i]));
        M_b (B, T_b) bool.
    E : ndarray, (K, D)
        Shared codebook.
    tau : float
        Temperature of the soft code assignment (CM-1).
    squared, eps : keyword-only
        See :func:`code_distribution_forward` and :func:`code_similarity_forward`.

    Returns
    -------
    loss : float
    grads : dict
        "H_a" (B, T_a, D), "H_b" (B, T_b, D), "E" (K, D). With the EMA
        codebook the training loop does not apply grads["E"].

    Notes
    -----
    (CM-1, CM-2) P^a, P^b; (CM-3) S^code; (CM-4) the symmetric InfoNCE of
    :func:`minivq.contrastive.info_nce_forward` on S^code, then the backward
    passes in reverse order. E receives gradient from both modalities.
    """
    check_float(H_a, "H_a", "(B, T_a, D)", ndim=3, coerce=False)
    check_float(H_b, "H_b", "(B, T_b, D)", ndim=3, dtype=H_a.dtype, like="H_a", coerce=False)
    if H_a.shape[0] != H_b.shape[0] or H_a.shape[2] != H_b.shape[2]:
        raise ValueError(f"H_b must hold the B pairs and D features of H_a {H_a.shape}, got {H_b.shape}")
    if H_a.shape[0] == 0:
        raise ValueError(f"H_a must hold at least one pair (B >= 1), got shape {H_a.shape}")
    M_a = _check_distribution_args(H_a, M_a, E, tau, squared, ("H_a", "M_a", "E"))
    M_b = _check_distribution_args(H_b, M_b, E, tau, squared, ("H_b", "M_b", "E"))
    eps = check_eps(eps, "eps", H_a.dtype, default=1e-10)
    return _cmcm_loss(H_a, M_a, H_b, M_b, E, tau, squared, eps)


def _cmcm_loss(H_a, M_a, H_b, M_b, E, tau, squared, eps):
    """:func:`cmcm_loss` without the checks."""
    P_a, cache_a = _code_distribution_forward(H_a, M_a, E, tau, squared)  # (B, K)
    P_b, cache_b = _code_distribution_forward(H_b, M_b, E, tau, squared)  # (B, K)
    S, cache_s = _code_similarity_forward(P_a, P_b, eps)  # (B, B)
    loss, cache_l = _info_nce_forward(S)
    dS = _info_nce_backward(1.0, cache_l)
    dP_a, dP_b = _code_similarity_backward(dS, cache_s)
    dH_a, dE_a = _code_distribution_backward(dP_a, cache_a)
    dH_b, dE_b = _code_distribution_backward(dP_b, cache_b)
    return loss, {"H_a": dH_a, "H_b": dH_b, "E": dE_a + dE_b}
