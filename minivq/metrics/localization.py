"""Unsupervised cross-modal localization (LOC).

A span of one modality (a spoken word's units) is summarized by its code
distribution P_w (CM-2 over the span); every unit u of the other modality
gets the relevance sum_k P_w(k) p(k | h_u) (CM-1); the localization is
correct when the most relevant unit carries the concept the span names.
"""
import numpy as np

from .._checks import check_float, check_int_array, check_mask

__all__ = ["concept_distributions", "relevance", "localization_accuracy"]


def _check_probabilities(p, name, hint):
    """A finite, non-negative float32/float64 array (soft assignments or code distributions) of ndim 3."""
    p = check_float(p, name, hint, ndim=3)
    if p.size and p.min() < 0:
        raise ValueError(f"{name} must be >= 0 {hint}, got a minimum of {p.min()}")
    return p


def _check_units(p, labels, mask, names):
    """p (B, T, K); labels (B, T) int and mask (B, T) bool of the same units.

    ``names`` spell p, labels and mask as the caller did; names[1] None: no labels.
    """
    p = _check_probabilities(p, names[0], "(B, T, K)")
    mask = check_mask(mask, p.shape[:2], "(B, T)", names[2])
    if names[1] is not None:
        labels = check_int_array(labels, names[1], "(B, T)")
        if labels.shape != p.shape[:2]:
            raise ValueError(f"{names[1]} must have shape (B, T) = {p.shape[:2]}, got {labels.shape}")
        if labels.size and labels.min() < -1:
            raise ValueError(f"{names[1]} must be -1 (background) or a concept >= 0, got {labels.min()}")
    return p, labels, mask


def _check_queries(P_query, query_concepts, p_target, with_concepts=False):
    """P_query (B, L, K) with the target's B and K; query_concepts (B, L) int when ``with_concepts``."""
    P_query = _check_probabilities(P_query, "P_query", "(B, L, K)")
    B, _, K = p_target.shape
    if P_query.shape[0] != B or P_query.shape[2] != K:
        raise ValueError(f"P_query must have shape (B={B}, L, K={K}) to match p_target, got {P_query.shape}")
    if P_query.dtype != p_target.dtype:
        raise TypeError(f"P_query must have the dtype of p_target ({p_target.dtype}), got {P_query.dtype}")
    if with_concepts:
        query_concepts = check_int_array(query_concepts, "query_concepts", "(B, L)")
        if query_concepts.shape != P_query.shape[:2]:
            raise ValueError(f"query_concepts must have shape {P_query.shape[:2]}, got {query_concepts.shape}")
    return P_query, query_concepts


def concept_distributions(p, labels, mask, concepts):
    """Code distribution of the units of each named concept (CM-2 over a span).

    Parameters
    ----------
    p : ndarray, shape (B, T, K)
        Soft code assignments p(k | h_bt) of every unit (CM-1).
    labels : ndarray of int, shape (B, T)
        Concept of each unit, -1 for background.
    mask : ndarray of bool, shape (B, T)
    concepts : ndarray of int, shape (B, L)
        Concepts named in each sample (e.g. the spoken digits), -1 padded.

    Returns
    -------
    P : ndarray, shape (B, L, K)
        P[b, l] = mean over the valid units of sample b labelled concepts[b, l]
        of p(k | h); zero rows where the concept is padding or has no unit.
    found : ndarray of bool, shape (B, L)
        Whether the concept had at least one unit.

    Notes
    -----
    (CM-2) restricted to a span: P_w(k) = sum_{t in w} p(k | h_t) / |w|. A
    digit named twice in one sample pools both of its spans.
    """
    p, labels, mask = _check_units(p, labels, mask, ("p", "labels", "mask"))
    concepts = check_int_array(concepts, "concepts", "(B, L)")
    if concepts.ndim != 2 or concepts.shape[0] != p.shape[0]:
        raise ValueError(f"concepts must have shape (B={p.shape[0]}, L), got {concepts.shape}")
    sel = (labels[:, None, :] == concepts[:, :, None]) & mask[:, None, :]  # (B, L, T)
    sel &= concepts[:, :, None] >= 0
    counts = sel.sum(axis=2)  # (B, L)
    P = np.einsum("blt,btk->blk", sel.astype(p.dtype), p)  # (B, L, K)
    P /= np.maximum(counts, 1)[:, :, None]
    return P, counts > 0


def relevance(P_query, p_target, target_mask):
    """Relevance of every target unit to every query span (LOC).

    Parameters
    ----------
    P_query : ndarray, shape (B, L, K)
        Code distribution of each query span (CM-2 over the span).
    p_target : ndarray, shape (B, T, K)
        Soft code assignments p(k | h_u) of the target units (CM-1).
    target_mask : ndarray of bool, shape (B, T)

    Returns
    -------
    ndarray, shape (B, L, T)
        r_u = sum_k P_w(k) p(k | h_u); -inf on padded units.
    """
    p_target, _, target_mask = _check_units(p_target, None, target_mask, ("p_target", None, "target_mask"))
    P_query, _ = _check_queries(P_query, None, p_target)
    return _relevance(P_query, p_target, target_mask)


def _relevance(P_query, p_target, target_mask):
    """:func:`relevance` without the checks."""
    ### BEGIN SOLUTION loc_relevance
    rel = np.einsum("blk,btk->blt", P_query, p_target)  # (B, L, T)
    return np.where(target_mask[:, None, :], rel, -np.inf)
    ### END SOLUTION


def localization_accuracy(P_query, query_concepts, found, p_target, target_labels, target_mask):
    """Unsupervised cross-modal localization (LOC) and its chance level.

    Parameters
    ----------
    P_query : ndarray, shape (B, L, K)
        Code distribution of each query span (from :func:`concept_distributions`).
    query_concepts : ndarray of int, shape (B, L)
        Concept each query names, -1 padded.
    found : ndarray of bool, shape (B, L)
        Which queries exist (padding and empty spans are skipped).
    p_target : ndarray, shape (B, T, K)
        Soft code assignments of the other modality's units (CM-1).
    target_labels : ndarray of int, shape (B, T)
    target_mask : ndarray of bool, shape (B, T)

    Returns
    -------
    dict
        ``accuracy`` (fraction of queries whose most relevant target unit has
        the named concept), ``chance`` (mean fraction of valid target units
        carrying the named concept), ``n`` (number of queries), and
        ``best_unit`` (B, L) int64, the most relevant unit of each query
        (-1 in a sample with no valid target unit). Queries that are padding,
        not ``found``, or in a sample with no valid target unit are skipped;
        with none left, accuracy and chance are NaN and n is 0.

    Notes
    -----
    (LOC) relevance of target unit u: r_u = sum_k P_w(k) p(k | h_u); the
    prediction is argmax_u r_u over the valid units.
    """
    p_target, target_labels, target_mask = _check_units(
        p_target, target_labels, target_mask, ("p_target", "target_labels", "target_mask"))
    P_query, query_concepts = _check_queries(P_query, query_concepts, p_target, with_concepts=True)
    found = check_mask(found, P_query.shape[:2], "(B, L)", "found")
    best = np.argmax(_relevance(P_query, p_target, target_mask), axis=2)  # (B, L)
    hit_label = np.take_along_axis(target_labels, best, axis=1)  # (B, L)
    has_target = target_mask.any(axis=1)  # (B,) a sample with no valid target unit has nothing to find
    best = np.where(has_target[:, None], best, -1)
    ok = found & (query_concepts >= 0) & has_target[:, None]
    on_concept = (target_labels[:, None, :] == query_concepts[:, :, None]) & target_mask[:, None, :]
    frac = on_concept.sum(axis=2) / np.maximum(target_mask.sum(axis=1), 1)[:, None]  # (B, L)
    n = int(ok.sum())
    if n == 0:
        return {"accuracy": float("nan"), "chance": float("nan"), "n": 0, "best_unit": best.astype(np.int64)}
    return {
        "accuracy": float(np.mean((hit_label == query_concepts)[ok])),
        "chance": float(np.mean(frac[ok])),
        "n": n,
        "best_unit": best.astype(np.int64),
    }
