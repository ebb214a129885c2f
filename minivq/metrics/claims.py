"""The paper's three claims, each scored against its strongest baseline (METHOD.md section 7).

- RET per content: :func:`set_retrieval_ranks` and :func:`set_retrieval_metrics`
  count a candidate naming the same set of concepts as a hit (instance
  recall is capped when several samples share their content).
- LOC: :func:`localize` scores any relevance map, against two chance levels
  (a random unit, and a random unit among those on some concept: finding an
  object is not finding the named one); :func:`span_means` and
  :func:`cosine_relevance` give the dense baseline (rank units by cosine to
  the span's mean unit, no codebook); :func:`pointing_game` checks the most
  relevant patch's centre against the named digit's box in pixels.
- CC: :func:`transfer_accuracy` (name codes on one modality, classify the
  other's units); :func:`kmeans_codebook` and :func:`assign_codes` make the
  post-hoc k-means codebook of a model without one (the claim-2 baseline),
  scored with :func:`minivq.metrics.cross_modal_agreement` like a learned one.

Concepts are integers 0..C-1; -1 marks background or padding.
"""
import numpy as np

from .._checks import check_float, check_int, check_int_array, check_mask, check_real, valid_units
from ..nearest import nearest_code
from ..quantizer import init_codebook_kmeanspp
from .retrieval import recall_at_k

__all__ = ["content_ids", "set_retrieval_ranks", "set_retrieval_metrics", "distractor_ceiling_r1", "span_means",
           "cosine_relevance",
           "localize", "pointing_game", "transfer_accuracy", "kmeans_codebook", "assign_codes"]


def content_ids(*concepts):
    """One integer per sample naming its set of concepts, shared across the arrays given.

    Parameters
    ----------
    *concepts : ndarray of int, shape (B_i, L_i)
        Concepts of each sample, -1 padded (order and repeats do not matter).

    Returns
    -------
    list of ndarray of int64, shape (B_i,)
        Equal ids <=> equal sets.
    """
    table, out = {}, []
    for i, c in enumerate(concepts):
        c = check_int_array(c, f"concepts[{i}]" if len(concepts) > 1 else "concepts", "(B, L)", ndim=2)
        keys = [frozenset(int(v) for v in row if v >= 0) for row in c]
        out.append(np.array([table.setdefault(k, len(table)) for k in keys], dtype=np.int64))
    return out


def set_retrieval_ranks(S, concepts_a, concepts_b=None):
    """1-based rank of the first candidate naming the query's set, both directions (RET).

    Parameters
    ----------
    S : ndarray, shape (B, B)
        Similarities, true pairs on the diagonal.
    concepts_a, concepts_b : ndarray of int, shape (B, L)
        Content of the queries a_i and of the candidates b_j (default: the
        same array: a pair names one set).

    Returns
    -------
    ranks_ab, ranks_ba : ndarray of int64, shape (B,)
        rank = 1 + the number of candidates naming another set that score at
        least as high as the best candidate naming the query's set (ties
        count against the query, as in :func:`retrieval_ranks`).
    """
    S = check_real(S, "S", "(B, B)", ndim=2)
    if S.shape[0] != S.shape[1] or S.shape[0] == 0:
        raise ValueError(f"S must be a non-empty square (B, B) matrix, got shape {S.shape}")
    ids_a, ids_b = content_ids(concepts_a, concepts_a if concepts_b is None else concepts_b)
    for name, ids in (("concepts_a", ids_a), ("concepts_b", ids_b)):
        if len(ids) != len(S):
            raise ValueError(f"{name} must have shape (B={len(S)}, L), got {len(ids)} rows")
    same = ids_a[:, None] == ids_b[None, :]  # (B, B) candidates naming the query's set
    if not np.all(np.diag(same)):
        raise ValueError("concepts_b: pair i must name the set of concepts_a[i], got a pair that does not")
    best_ab = np.where(same, S, -np.inf).max(axis=1)  # (B,) best relevant candidate of each a_i
    best_ba = np.where(same, S, -np.inf).max(axis=0)  # (B,) of each b_j
    ranks_ab = 1 + np.sum(~same & (S >= best_ab[:, None]), axis=1)
    ranks_ba = 1 + np.sum(~same & (S >= best_ba[None, :]), axis=0)
    return ranks_ab.astype(np.int64), ranks_ba.astype(np.int64)


def set_retrieval_metrics(S, concepts_a, concepts_b=None, ks=(1, 5, 10)):
    """Set-level Recall@k and median rank both ways, and their mean R@1 (RET, per content).

    Returns
    -------
    dict
        ``{"a2b": {...}, "b2a": {...}, "mean_R@1": float}`` as
        :func:`minivq.metrics.retrieval_metrics`, with set-level ranks.
    """
    ranks_ab, ranks_ba = set_retrieval_ranks(S, concepts_a, concepts_b)
    a2b, b2a = recall_at_k(ranks_ab, ks), recall_at_k(ranks_ba, ks)
    r1 = 0.5 * (float(np.mean(ranks_ab <= 1)) + float(np.mean(ranks_ba <= 1)))
    return {"a2b": a2b, "b2a": b2a, "mean_R@1": r1}


def _bits(concepts):
    """Each row's set of concepts 0..62 as one int64 bit mask."""
    rows = np.where(concepts >= 0, np.left_shift(1, np.clip(concepts, 0, 62)), 0)
    return np.bitwise_or.reduce(rows, axis=1).astype(np.int64)


def distractor_ceiling_r1(named, distractors, extra_counts):
    """Set-level R@1 of a retriever that sees every object but cannot tell named ones from distractors.

    Parameters
    ----------
    named : ndarray of int, shape (B, L)
        Concepts a caption names, -1 padded.
    distractors : ndarray of int, shape (B, L_d)
        Unnamed concepts also in the image, -1 padded.
    extra_counts : sequence of int
        The numbers of distractors an image may hold.

    Returns
    -------
    dict
        ``caption_to_image``: for each caption naming A, the share of the
        images consistent with it (content C containing A with |C| - |A| an
        allowed count) whose caption names A, averaged over queries;
        ``image_to_caption``: for each image of content C, the same share
        among the captions B contained in C with |C| - |B| allowed; their
        ``mean``. A perfect set retriever picks at random among the
        consistent candidates, so this is its expected set-level R@1 (RET).
    """
    named = check_int_array(named, "named", "(B, L)", ndim=2)
    distractors = check_int_array(distractors, "distractors", "(B, L_d)", ndim=2)
    if len(named) != len(distractors) or len(named) == 0:
        raise ValueError(f"named and distractors must have the same B >= 1 rows, "
                         f"got {len(named)} and {len(distractors)}")
    A, C = _bits(named), _bits(named) | _bits(distractors)  # (B,) caption sets, image contents
    size = np.array([bin(int(x)).count("1") for x in np.concatenate([A, C])]).reshape(2, -1)
    extra = np.isin(size[1][None, :] - size[0][:, None], list(extra_counts))  # extra[i, j]: |C_j| - |A_i| allowed
    fits = ((A[:, None] & ~C[None, :]) == 0) & extra  # (B, B) caption i is consistent with image j
    same = A[:, None] == A[None, :]
    c2i = np.mean((fits & same).sum(axis=1) / fits.sum(axis=1))  # the true image always fits
    i2c = np.mean((fits & same).sum(axis=0) / fits.sum(axis=0))
    return {"caption_to_image": float(c2i), "image_to_caption": float(i2c), "mean": float(0.5 * (c2i + i2c))}


def _units_labels_mask(H, labels, mask, names):
    """H (B, T, D) float; labels (B, T) int; mask (B, T) bool."""
    H = check_float(H, names[0], "(B, T, D)", ndim=3)
    labels = check_int_array(labels, names[1], "(B, T)", ndim=2)
    if labels.shape != H.shape[:2]:
        raise ValueError(f"{names[1]} must have shape (B, T) = {H.shape[:2]}, got {labels.shape}")
    return H, labels, check_mask(mask, H.shape[:2], "(B, T)", names[2])


def span_means(H, labels, mask, concepts):
    """Mean unit of the span of each named concept (the dense baseline's query, LOC).

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
    H, labels, mask = _units_labels_mask(H, labels, mask, ("H", "labels", "mask"))
    concepts = check_int_array(concepts, "concepts", "(B, L)", ndim=2)
    if concepts.shape[0] != H.shape[0]:
        raise ValueError(f"concepts must have shape (B={H.shape[0]}, L), got {concepts.shape}")
    sel = (labels[:, None, :] == concepts[:, :, None]) & mask[:, None, :] & (concepts[:, :, None] >= 0)
    counts = sel.sum(axis=2)  # (B, L)
    U = np.einsum("blt,btd->bld", sel.astype(H.dtype), H) / np.maximum(counts, 1)[:, :, None]
    return U, counts > 0


def cosine_relevance(U, H_target, target_mask):
    """Cosine between each query vector and each target unit; -inf on padded units.

    Parameters
    ----------
    U : ndarray, shape (B, L, D)
    H_target : ndarray, shape (B, T, D)
    target_mask : ndarray of bool, shape (B, T)

    Returns
    -------
    ndarray, shape (B, L, T)
    """
    U = check_float(U, "U", "(B, L, D)", ndim=3)
    H_target = check_float(H_target, "H_target", "(B, T, D)", ndim=3)
    if H_target.shape[0] != U.shape[0] or H_target.shape[2] != U.shape[2]:
        raise ValueError(f"H_target must have shape (B={U.shape[0]}, T, D={U.shape[2]}), got {H_target.shape}")
    target_mask = check_mask(target_mask, H_target.shape[:2], "(B, T)", "target_mask")
    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    cos = np.einsum("bld,btd->blt", unit(U), unit(H_target))
    return np.where(target_mask[:, None, :], cos, -np.inf)


def localize(rel, query_concepts, found, target_labels, target_mask):
    """Localization accuracy of a relevance map, with the chance of the task as posed (LOC).

    Parameters
    ----------
    rel : ndarray, shape (B, L, T)
        Relevance of each target unit to each query (-inf on padding), e.g.
        :func:`minivq.metrics.relevance` (codes) or :func:`cosine_relevance`.
    query_concepts : ndarray of int, shape (B, L)
    found : ndarray of bool, shape (B, L)
        Which queries exist (padding and empty spans are skipped).
    target_labels : ndarray of int, shape (B, T)
    target_mask : ndarray of bool, shape (B, T)

    Returns
    -------
    dict
        ``accuracy`` (the most relevant unit, first on ties, carries the
        named concept), ``chance_unit`` (a random valid unit does),
        ``chance_concept_unit`` (a random unit among those on some concept
        does: the right chance when finding any object is easy), ``n``, and
        ``best_unit`` (B, L) int64 (-1 in a sample with no valid target
        unit, whose queries are skipped, as in
        :func:`minivq.metrics.localization_accuracy`).
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


def pointing_game(best_unit, boxes, found, grid, patch):
    """Pointing game on free positions: is the chosen patch's centre inside the named box?

    Parameters
    ----------
    best_unit : ndarray of int, shape (B, L)
        The most relevant image patch of each query (patchify order).
    boxes : ndarray of int, shape (B, L, 4)
        [top, left, bottom, right) pixels of the named object of each query, -1 padded.
    found : ndarray of bool, shape (B, L)
    grid : (int, int)
        Patch rows and columns of the image.
    patch : int
        Patch size in pixels.

    Returns
    -------
    dict
        ``accuracy`` (hits over the queries with a box and ``found``),
        ``chance`` (mean share of patches whose centre lies in the box), ``n``.
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


def transfer_accuracy(counts_a, counts_b):
    """Cross-modal transfer: name each code on one modality's units, classify the other's (CC).

    Parameters
    ----------
    counts_a, counts_b : ndarray of int, shape (C + 1, K)
        Code-concept counts (:func:`minivq.metrics.code_concept_counts`), last row background.

    Returns
    -------
    dict
        ``a_to_b`` (codes named by their majority row on a, background
        included, ties to the lower row; a code a never uses names nothing;
        score: the share of b's concept units whose code is named their
        concept), ``b_to_a``, and their ``mean``.
    """
    a = check_real(counts_a, "counts_a", "(C + 1, K)", ndim=2, nonnegative=True)
    b = check_real(counts_b, "counts_b", "(C + 1, K)", ndim=2, nonnegative=True)
    if a.shape != b.shape or a.shape[0] < 2:
        raise ValueError(f"counts_a and counts_b must share one shape (C + 1, K) with C >= 1, "
                         f"got {a.shape} and {b.shape}")

    def score(src, dst):
        name = np.where(src.sum(axis=0) > 0, np.argmax(src, axis=0), -1)  # (K,) row naming each code
        total = dst[:-1].sum()
        correct = sum(dst[c, name == c].sum() for c in range(dst.shape[0] - 1))
        return float(correct / total) if total else float("nan")

    out = {"a_to_b": score(a, b), "b_to_a": score(b, a)}
    out["mean"] = 0.5 * (out["a_to_b"] + out["b_to_a"])
    return out


def kmeans_codebook(H, M, K, rng, n_iter=50):
    """A post-hoc k-means codebook of a model's units (the claim-2 baseline, CC).

    Parameters
    ----------
    H : ndarray (..., D), or a list (units pooled over modalities)
    M : ndarray of bool (...) or None, or a list
    K : int
    rng : np.random.Generator or int
    n_iter : int
        Most Lloyd iterations (stops earlier when no assignment changes).

    Returns
    -------
    E : ndarray, shape (K, D)
        k-means++ seeding (:func:`minivq.quantizer.init_codebook_kmeanspp`),
        then Lloyd steps with the nearest-codeword kernel (VQ-1); an empty
        cluster keeps its centre.
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
    """Nearest code (VQ-1) of every valid unit, shape (B, T), 0 on padding."""
    H = check_float(H, "H", "(B, T, D)", ndim=3)
    M = check_mask(M, H.shape[:2], "(B, T)", "M")
    E = check_float(E, "E", "(K, D)", ndim=2).astype(H.dtype, copy=False)  # the units' dtype, as before
    if E.shape[0] == 0 or E.shape[1] != H.shape[2]:
        raise ValueError(f"E must have shape (K >= 1, D = {H.shape[2]}) to match H {H.shape}, got {E.shape}")
    idx = np.zeros(H.shape[:2], dtype=np.int64)
    if M.any():
        idx[M] = nearest_code(H[M], E)[0]
    return idx
