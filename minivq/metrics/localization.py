"""Unsupervised cross-modal localization (LOC).

A span of one modality (a spoken word's units) is summarized by its code
distribution P_w (CM-2 over the span); every unit u of the other modality
gets the relevance sum_k P_w(k) p(k | h_u) (CM-1); the localization is
correct when the most relevant unit carries the concept the span names.
"""
import numpy as np

from ..checks.arrays import check_float, check_int, check_int_array, check_mask, check_real

__all__ = ["concept_distributions", "relevance", "localization_accuracy", "localize", "pointing_game"]


def _check_probabilities(p, name, hint):
    """A finite, non-negative float32/float64 array of ndim 3."""
    p = check_float(p, name, hint, ndim=3)
    if p.size and p.min() < 0:
        raise ValueError(f"{name} must be >= 0 {hint}, got a minimum of {p.min()}")
    return p


def _check_units(p, labels, mask, names):
    """p (B, T, K); labels (B, T) int (skipped when names[1] is None) and mask (B, T) bool."""
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
    """P_query (B, L, K) with the target's B, K and dtype; query_concepts (B, L) int when ``with_concepts``."""
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
    """Code distribution of the units of each named concept: (CM-2) over a span.

    Parameters
    ----------
    p : ndarray, shape (B, T, K)
        Soft code assignments p(k | h_bt) (CM-1).
    labels, mask : ndarray of int and of bool, shape (B, T)
        Concept of each unit (-1 background) and its validity.
    concepts : ndarray of int, shape (B, L)
        Concepts named in each sample, -1 padded.

    Returns
    -------
    P : ndarray, shape (B, L, K)
        Mean p(k | h) over the valid units labelled concepts[b, l] (a concept
        named twice pools both spans); zero where there is none.
    found : ndarray of bool, shape (B, L)
        Whether the concept had at least one unit.
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
    """Relevance r_u = sum_k P_w(k) p(k | h_u) of every target unit to every query span (LOC).

    P_query (B, L, K) from :func:`concept_distributions`, p_target (B, T, K)
    (CM-1), target_mask (B, T); returns (B, L, T), -inf on padded units.
    """
    p_target, _, target_mask = _check_units(p_target, None, target_mask, ("p_target", None, "target_mask"))
    P_query, _ = _check_queries(P_query, None, p_target)
    return _relevance(P_query, p_target, target_mask)


def _relevance(P_query, p_target, target_mask):
    """rel[b, l, u] = sum_k P_query[b, l, k] p_target[b, u, k]; -inf on padded target units."""
    ### BEGIN SOLUTION loc_relevance
    rel = np.einsum("blk,btk->blt", P_query, p_target)  # (B, L, T)
    return np.where(target_mask[:, None, :], rel, -np.inf)
    ### END SOLUTION


def _localize(rel, query_concepts, found, target_labels, target_mask):
    """:func:`localize` on checked arguments."""
    best = np.argmax(rel, axis=2)  # (B, L)
    hit = np.take_along_axis(target_labels, best, axis=1) == query_concepts
    has_target = target_mask.any(axis=1)  # (B,) a sample with no valid target unit has nothing to find
    best = np.where(has_target[:, None], best, -1)
    ok = found & (query_concepts >= 0) & has_target[:, None]
    on_named = ((target_labels[:, None, :] == query_concepts[:, :, None]) & target_mask[:, None, :]).sum(axis=2)
    on_any = ((target_labels >= 0) & target_mask).sum(axis=1)[:, None]  # (B, 1)
    n = int(ok.sum())
    on_valid = np.maximum(target_mask.sum(axis=1), 1)[:, None]  # (B, 1)

    def mean(x):
        return float(np.mean(x[ok])) if n else float("nan")

    return {"accuracy": mean(hit), "chance_unit": mean(on_named / on_valid),
            "chance_concept_unit": mean(on_named / np.maximum(on_any, 1)),
            "n": n, "best_unit": best.astype(np.int64)}


def localization_accuracy(P_query, query_concepts, found, p_target, target_labels, target_mask):
    """Unsupervised cross-modal localization through the codes (LOC), and its chance level.

    Parameters
    ----------
    P_query : ndarray, shape (B, L, K)
        Code distribution of each query span (:func:`concept_distributions`).
    query_concepts, found : ndarray of int and of bool, shape (B, L)
        Concept each query names (-1 padded) and whether the query exists.
    p_target : ndarray, shape (B, T, K)
        Soft code assignments of the other modality's units (CM-1).
    target_labels, target_mask : ndarray of int and of bool, shape (B, T)

    Returns
    -------
    dict
        ``accuracy`` (share of queries whose most relevant valid unit carries
        the named concept), ``chance`` (mean share of valid units that do),
        ``n`` (queries scored) and ``best_unit`` (B, L) int64. Padding, queries
        not ``found`` and samples with no valid target unit (best_unit -1) are
        skipped; with none left, accuracy and chance are NaN.
    """
    p_target, target_labels, target_mask = _check_units(
        p_target, target_labels, target_mask, ("p_target", "target_labels", "target_mask"))
    P_query, query_concepts = _check_queries(P_query, query_concepts, p_target, with_concepts=True)
    found = check_mask(found, P_query.shape[:2], "(B, L)", "found")
    loc = _localize(_relevance(P_query, p_target, target_mask), query_concepts, found, target_labels, target_mask)
    return {"accuracy": loc["accuracy"], "chance": loc["chance_unit"], "n": loc["n"], "best_unit": loc["best_unit"]}


def localize(rel, query_concepts, found, target_labels, target_mask):
    """Localization accuracy of any relevance map, with the chance of the task as posed (LOC).

    Parameters
    ----------
    rel : ndarray, shape (B, L, T)
        Relevance of each target unit to each query, -inf on padding:
        :func:`relevance` (codes) or :func:`minivq.metrics.baselines.cosine_relevance`.
    query_concepts, found, target_labels, target_mask
        As in :func:`localization_accuracy`.

    Returns
    -------
    dict
        ``accuracy``, ``n`` and ``best_unit`` as :func:`localization_accuracy`;
        ``chance_unit`` (a random valid unit carries the named concept) and
        ``chance_concept_unit`` (a random unit among those on some concept
        does: finding an object is not finding the named one).
    """
    rel = check_real(rel, "rel", "(B, L, T)", ndim=3, finite=False)
    B, L, T = rel.shape
    query_concepts = check_int_array(query_concepts, "query_concepts", "(B, L)", ndim=2)
    found = check_mask(found, (B, L), "(B, L)", "found")
    target_labels = check_int_array(target_labels, "target_labels", "(B, T)", ndim=2)
    target_mask = check_mask(target_mask, (B, T), "(B, T)", "target_mask")
    if query_concepts.shape != (B, L) or target_labels.shape != (B, T):
        raise ValueError(f"query_concepts and target_labels must have shapes {(B, L)} and {(B, T)}, "
                         f"got {query_concepts.shape} and {target_labels.shape}")
    return _localize(rel, query_concepts, found, target_labels, target_mask)


def pointing_game(best_unit, boxes, found, grid, patch):
    """Is the chosen patch's centre inside the named object's box (LOC, digits at free positions)?

    Parameters
    ----------
    best_unit, found : ndarray of int and of bool, shape (B, L)
        The most relevant image patch of each query (patchify order), and whether the query exists.
    boxes : ndarray of int, shape (B, L, 4)
        [top, left, bottom, right) pixels of each query's named object, -1 padded.
    grid, patch : (int, int), int
        Patch rows and columns; patch size in pixels.

    Returns
    -------
    dict
        ``accuracy`` over the queries with a box and ``found``, ``chance``
        (mean share of patches whose centre lies in the box), ``n``.
    """
    best_unit = check_int_array(best_unit, "best_unit", "(B, L)", ndim=2)
    boxes = check_int_array(boxes, "boxes", "(B, L, 4)", ndim=3)
    if boxes.shape != best_unit.shape + (4,):
        raise ValueError(f"boxes must have shape {best_unit.shape + (4,)}, got {boxes.shape}")
    found = check_mask(found, best_unit.shape, "(B, L)", "found")
    rows, cols = (check_int(g, "grid", 1) for g in grid)
    patch = check_int(patch, "patch", 1)
    centre = (np.arange(rows * cols) // cols * patch + patch / 2, np.arange(rows * cols) % cols * patch + patch / 2)

    def inside(cy, cx):  # cy, cx broadcast against boxes[..., 0]
        return ((boxes[..., 0, None] <= cy) & (cy < boxes[..., 2, None])
                & (boxes[..., 1, None] <= cx) & (cx < boxes[..., 3, None]))

    ok = found & (boxes[..., 0] >= 0)
    hit = inside(centre[0][best_unit][..., None], centre[1][best_unit][..., None])[..., 0]
    share = inside(centre[0], centre[1]).mean(axis=2)  # (B, L)
    n = int(ok.sum())
    return {"accuracy": float(np.mean(hit[ok])) if n else float("nan"),
            "chance": float(np.mean(share[ok])) if n else float("nan"), "n": n}
