"""Cross-Modal Code Matching (METHOD.md CM-1..4).

Every unit gets a soft assignment over the shared codebook (CM-1), a sample
the mean of its valid units' assignments (CM-2); two samples of different
modalities are compared by the negative symmetric cross-entropy of their
code distributions (CM-3), and the batch's S^code goes through the symmetric
InfoNCE of :mod:`minivq.contrastive` (CM-4). Gradients flow to the features
of both modalities and to the codebook. Argument checks:
:mod:`minivq.checks.losses`.

Derivations, step by step down to dH and dE:
notebooks/04_cross_modal_code_matching.ipynb.
"""
import numpy as np

from .checks import checked
from .checks import losses as checks
from .contrastive import info_nce_backward, info_nce_forward

__all__ = [
    "code_distribution_forward", "code_distribution_backward",
    "code_similarity_forward", "code_similarity_backward", "cmcm_loss",
]

#: Floor of ||h - e||^2 under the square root (CM-1): d >= 1e-6, so the
#: gradient 1 / (2 d) stays finite when a unit sits on a codeword.
SQ_DIST_FLOOR = 1e-12


@checked(checks.code_distribution_forward)
def code_distribution_forward(H, M, E, tau=1.0, squared=False):
    """Code distribution of every sample: the mean of its valid units' soft assignments (CM-1, CM-2).

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
    (CM-1) p(k | h) = softmax_k(-d(h, e_k) / tau), d = sqrt(max(||h - e_k||^2, 1e-12)).
    (CM-2) P_b(k) = sum_t M_bt p(k | h_bt) / sum_t M_bt.
    """
    X = H[M]  # (N, D) the valid units, sample after sample
    counts = M.sum(axis=1)  # (B,) valid units per sample
    # code-major (K, N): the softmax over the K codes of a unit runs down a column, 1.5x faster than (N, K)
    sq = (E * E).sum(1)[:, None] - 2.0 * (E @ X.T) + (X * X).sum(1)[None, :]  # (K, N) ||h - e||^2
    d = sq if squared else np.sqrt(np.maximum(sq, SQ_DIST_FLOOR))  # (K, N)
    logits = -d / tau
    p = np.exp(logits - logits.max(axis=0))  # stable: the top logit of each unit gives exp(0)
    p /= p.sum(axis=0)  # (K, N) p(k | h), CM-1
    starts = np.cumsum(counts) - counts  # first unit of each sample
    P = (np.add.reduceat(p, starts, axis=1) / counts.astype(p.dtype)).T  # (B, K), CM-2
    return P, (M, X, E, sq, d, p, tau, squared, counts)


@checked(checks.code_distribution_backward)
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
    Reverse of the forward, unit by unit (u in sample b, n_b its valid units):
    dp_u = dP_b / n_b; dlogit = p (dp - <p, dp>); dd = -dlogit / tau;
    dsq = dd / (2 d) where ||h - e||^2 > 1e-12, else 0 (dsq = dd if squared);
    dh_u = 2 sum_k dsq_ku (h_u - e_k); de_k = 2 sum_u dsq_ku (e_k - h_u).
    """
    M, X, E, sq, d, p, tau, squared, counts = cache
    ### BEGIN SOLUTION code_distribution_backward
    dp = np.repeat(dP.T / counts.astype(dP.dtype), counts, axis=1)  # (K, N), CM-2: dP_b / n_b for each unit of b
    dlogits = p * (dp - (p * dp).sum(axis=0))  # softmax backward: p (dp - <p, dp>)
    dd = dlogits / -tau  # logits = -d / tau
    if squared:
        dsq = dd
    else:
        dsq = dd / (2.0 * d) * (sq > SQ_DIST_FLOOR)  # (K, N); 0 below the floor, where d is constant
    dX = 2.0 * (dsq.sum(axis=0)[:, None] * X - dsq.T @ E)  # (N, D)
    dE = 2.0 * (dsq.sum(axis=1)[:, None] * E - dsq @ X)  # (K, D)
    dH = np.zeros(M.shape + X.shape[1:], dtype=X.dtype)  # (B, T, D)
    dH[M] = dX
    return dH, dE
    ### END SOLUTION


@checked(checks.code_similarity_forward)
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
    L_a = np.log(P_a + eps)  # (B_a, K)
    L_b = np.log(P_b + eps)  # (B_b, K)
    ### BEGIN SOLUTION bug_cmg_pairing
    S = P_a @ L_b.T + L_a @ P_b.T  # (B_a, B_b)
    ### END SOLUTION
    return S, (P_a, P_b, L_a, L_b, eps)


@checked(checks.code_similarity_backward)
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
    P_a, P_b, L_a, L_b, eps = cache
    ### BEGIN SOLUTION code_similarity_backward
    dP_a = dS @ L_b + (dS @ P_b) / (P_a + eps)
    dP_b = dS.T @ L_a + (dS.T @ P_a) / (P_b + eps)
    return dP_a, dP_b
    ### END SOLUTION


@checked(checks.cmcm_loss)
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
    P_a, cache_a = code_distribution_forward(H_a, M_a, E, tau, squared)  # (B, K)
    P_b, cache_b = code_distribution_forward(H_b, M_b, E, tau, squared)  # (B, K)
    S, cache_s = code_similarity_forward(P_a, P_b, eps)  # (B, B)
    loss, cache_l = info_nce_forward(S)
    dS = info_nce_backward(1.0, cache_l)
    dP_a, dP_b = code_similarity_backward(dS, cache_s)
    dH_a, dE_a = code_distribution_backward(dP_a, cache_a)
    dH_b, dE_b = code_distribution_backward(dP_b, cache_b)
    return loss, {"H_a": dH_a, "H_b": dH_b, "E": dE_a + dE_b}
