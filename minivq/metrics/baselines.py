"""The baselines the claims are scored against (METHOD.md section 7).

LOC's dense baseline ranks units by cosine to a span's mean unit, no
codebook (:func:`span_means`, :func:`cosine_relevance`); CC's is a k-means
codebook fitted post hoc on a model's units (:func:`kmeans_codebook`,
:func:`assign_codes`), scored like a learned one.
"""
import numpy as np

from ..checks.arrays import check_float, check_int, check_int_array, check_mask, valid_units
from ..nearest import nearest_code
from ..quantizer import init_codebook_kmeanspp

__all__ = ["span_means", "cosine_relevance", "kmeans_codebook", "assign_codes"]


def span_means(H, labels, mask, concepts):
    """Mean unit of the span of each named concept: the dense baseline's query (LOC).

    Parameters
    ----------
    H : ndarray, shape (B, T, D)
        Units of the query modality (e.g. speech).
    labels : ndarray of int, shape (B, T)
    mask : ndarray of bool, shape (B, T)
    concepts : ndarray of int, shape (B, L)
        Concepts named in each sample, -1 padded.

    Returns
    -------
    U : ndarray, shape (B, L, D)
        Mean of the valid units labelled concepts[b, l]; zero where none.
    found : ndarray of bool, shape (B, L)
    """
    H = check_float(H, "H", "(B, T, D)", ndim=3)
    labels = check_int_array(labels, "labels", "(B, T)", ndim=2)
    if labels.shape != H.shape[:2]:
        raise ValueError(f"labels must have shape (B, T) = {H.shape[:2]}, got {labels.shape}")
    mask = check_mask(mask, H.shape[:2], "(B, T)", "mask")
    concepts = check_int_array(concepts, "concepts", "(B, L)", ndim=2)
    if concepts.shape[0] != H.shape[0]:
        raise ValueError(f"concepts must have shape (B={H.shape[0]}, L), got {concepts.shape}")
    sel = (labels[:, None, :] == concepts[:, :, None]) & mask[:, None, :] & (concepts[:, :, None] >= 0)
    counts = sel.sum(axis=2)  # (B, L)
    U = np.einsum("blt,btd->bld", sel.astype(H.dtype), H) / np.maximum(counts, 1)[:, :, None]
    return U, counts > 0


def cosine_relevance(U, H_target, target_mask):
    """Cosine between each query vector U (B, L, D) and each target unit (B, T, D): (B, L, T), -inf on padding."""
    U = check_float(U, "U", "(B, L, D)", ndim=3)
    H_target = check_float(H_target, "H_target", "(B, T, D)", ndim=3)
    if H_target.shape[0] != U.shape[0] or H_target.shape[2] != U.shape[2]:
        raise ValueError(f"H_target must have shape (B={U.shape[0]}, T, D={U.shape[2]}), got {H_target.shape}")
    target_mask = check_mask(target_mask, H_target.shape[:2], "(B, T)", "target_mask")

    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

    cos = np.einsum("bld,btd->blt", unit(U), unit(H_target))
    return np.where(target_mask[:, None, :], cos, -np.inf)


def kmeans_codebook(H, M, K, rng, n_iter=50):
    """A post-hoc k-means codebook E (K, D) of a model's valid units: the claim-2 baseline (CC).

    Parameters
    ----------
    H : ndarray (..., D), or a list of them (units pooled over modalities)
    M : ndarray of bool (...) or None, or a list
    K : int
    rng : np.random.Generator or int
    n_iter : int
        Most Lloyd iterations (fewer when no assignment changes).

    Returns
    -------
    E : ndarray, shape (K, D)
        k-means++ seeding (VQ-8), then Lloyd steps with the nearest-codeword
        kernel (VQ-1); an empty cluster keeps its centre.
    """
    X = valid_units(H, M)  # (N, D)
    K, n_iter = check_int(K, "K", 1, len(X)), check_int(n_iter, "n_iter", 0)
    E = init_codebook_kmeanspp(X, None, K, rng)
    idx = None
    for _ in range(n_iter):
        new, _ = nearest_code(X, E)
        if idx is not None and np.array_equal(new, idx):
            break
        idx = new
        counts = np.bincount(idx, minlength=K)  # (K,)
        sums = np.zeros_like(E)
        np.add.at(sums, idx, X)
        E = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], E).astype(X.dtype)
    return E


def assign_codes(H, M, E):
    """Nearest code (VQ-1) of every valid unit of H (B, T, D) in E (K, D): (B, T) int64, 0 on padding."""
    H = check_float(H, "H", "(B, T, D)", ndim=3)
    M = check_mask(M, H.shape[:2], "(B, T)", "M")
    E = check_float(E, "E", "(K, D)", ndim=2).astype(H.dtype, copy=False)  # the units' dtype
    if E.shape[0] == 0 or E.shape[1] != H.shape[2]:
        raise ValueError(f"E must have shape (K >= 1, D = {H.shape[2]}) to match H {H.shape}, got {E.shape}")
    idx = np.zeros(H.shape[:2], dtype=np.int64)
    if M.any():
        idx[M] = nearest_code(H[M], E)[0]
    return idx
