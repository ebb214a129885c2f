"""Unsupervised cross-modal localization (LOC).

A span of one modality (a spoken word's units) is summarized by its code
distribution P_w (CM-2 over the span); every unit u of the other modality
gets the relevance sum_k P_w(k) p(k | h_u) (CM-1); the localization is
correct when the most relevant unit carries the concept the span names.
"""
import numpy as np

__all__ = ["concept_distributions", "relevance", "localization_accuracy"]


def _check_units(p, labels, mask, name):
    """p (B, T, K); labels (B, T) (or None) and mask (B, T) of the same units."""
    p = np.asarray(p)
    if p.ndim != 3:
        raise ValueError(f"{name}: p must have shape (B, T, K), got {p.shape}")
    mask = np.asarray(mask, dtype=bool)
    labels = mask if labels is None else np.asarray(labels)
    if labels.shape != p.shape[:2] or mask.shape != p.shape[:2]:
        raise ValueError(
            f"{name}: labels and mask must have shape {p.shape[:2]}, got {labels.shape} and {mask.shape}"
        )
    return p, labels, mask


def _check_queries(P_query, query_concepts, p_target, name):
    """P_query (B, L, K) with the target's B and K; query_concepts (B, L)."""
    P_query = np.asarray(P_query)
    B, _, K = np.shape(p_target)
    if P_query.ndim != 3 or P_query.shape[0] != B or P_query.shape[2] != K:
        raise ValueError(f"{name}: P_query must have shape (B={B}, L, K={K}), got {P_query.shape}")
    if query_concepts is not None and np.shape(query_concepts) != P_query.shape[:2]:
        raise ValueError(f"{name}: query_concepts must have shape {P_query.shape[:2]}, "
                         f"got {np.shape(query_concepts)}")
    return P_query


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
    p, labels, mask = _check_units(p, labels, mask, "concept_distributions")
    concepts = np.asarray(concepts)
    if concepts.ndim != 2 or concepts.shape[0] != p.shape[0]:
        raise ValueError(
            f"concept_distributions: concepts must have shape (B={p.shape[0]}, L), got {concepts.shape}")
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
    p_target, _, target_mask = _check_units(p_target, None, target_mask, "relevance")
    P_query = _check_queries(P_query, None, p_target, "relevance")
    rel = np.einsum("blk,btk->blt", P_query, p_target)  # (B, L, T)
    return np.where(target_mask[:, None, :], rel, -np.inf)


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
        ``best_unit`` (B, L) int64, the most relevant unit of each query.

    Notes
    -----
    (LOC) relevance of target unit u: r_u = sum_k P_w(k) p(k | h_u); the
    prediction is argmax_u r_u over the valid units.
    """
    p_target, target_labels, target_mask = _check_units(
        p_target, target_labels, target_mask, "localization_accuracy")
    P_query = _check_queries(P_query, query_concepts, p_target, "localization_accuracy")
    query_concepts = np.asarray(query_concepts)
    best = np.argmax(relevance(P_query, p_target, target_mask), axis=2)  # (B, L)
    hit_label = np.take_along_axis(target_labels, best, axis=1)  # (B, L)
    ok = np.asarray(found, dtype=bool) & (query_concepts >= 0)
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
