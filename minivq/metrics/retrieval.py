"""Retrieval (RET): ranks, Recall@k and median rank in both directions, per instance and per content.

Rank by S (SUM-3), by S^code (CM-3), or by S + lambda_r S^code. Per content, a
candidate naming the same set of concepts as the query counts as a hit
(instance recall is capped when several samples share their content).
"""
import numpy as np

from ..checks.arrays import check_int, check_int_array, check_number, check_real, describe

__all__ = ["retrieval_ranks", "recall_at_k", "retrieval_metrics", "retrieval_report", "set_ceiling_r1",
           "content_ids", "set_retrieval_ranks", "set_retrieval_metrics", "distractor_ceiling_r1"]


def _check_square(S, name="S"):
    """A finite, real, non-empty square (B, B) matrix of similarities."""
    S = check_real(S, name, "(B, B)", ndim=2)
    if S.shape[0] != S.shape[1] or S.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square (B, B) matrix, got shape {S.shape}")
    return S


def _check_ks(ks):
    """A non-empty tuple of positive ints (a single int is one k)."""
    if isinstance(ks, (int, np.integer)) and not isinstance(ks, (bool, np.bool_)):
        ks = (ks,)
    if not isinstance(ks, (tuple, list)) or not ks:
        raise TypeError(f"ks must be a non-empty tuple of ints >= 1, e.g. (1, 5, 10), got {describe(ks)}")
    return tuple(check_int(k, "ks", 1) for k in ks)


def _ranks(S, same=None):
    """1 + the number of other candidates scoring at least as high as the best relevant one, both ways.

    ``same`` (B, B) marks the relevant candidates of each query (default: the
    diagonal, the true pair). Ties count against the query.
    """
    same = np.eye(len(S), dtype=bool) if same is None else same
    relevant = np.where(same, S, S.min())  # (B, B)
    best_ab, best_ba = relevant.max(axis=1), relevant.max(axis=0)  # (B,) best relevant candidate of a_i, of b_j
    ranks_ab = 1 + np.sum(~same & (S >= best_ab[:, None]), axis=1)
    ranks_ba = 1 + np.sum(~same & (S >= best_ba[None, :]), axis=0)
    return ranks_ab.astype(np.int64), ranks_ba.astype(np.int64)


def _recall(ranks, ks):
    out = {f"R@{k}": float(np.mean(ranks <= k)) for k in ks}
    out["median_rank"] = float(np.median(ranks))
    return out


def _metrics(S, ks, same=None):
    ranks_ab, ranks_ba = _ranks(S, same)
    r1 = 0.5 * (float(np.mean(ranks_ab <= 1)) + float(np.mean(ranks_ba <= 1)))
    return {"a2b": _recall(ranks_ab, ks), "b2a": _recall(ranks_ba, ks), "mean_R@1": r1}


def retrieval_ranks(S):
    """1-based rank of the true partner of every query, both directions (RET).

    Parameters
    ----------
    S : ndarray, shape (B, B)
        S[i, j] scores item i of modality a against item j of modality b;
        the true pairs are on the diagonal.

    Returns
    -------
    ranks_ab, ranks_ba : ndarray of int64, shape (B,)
        Rank of b_i for the query a_i, and of a_j for the query b_j. Ties
        count against the query: a constant S gives rank B, never a lucky 1.
    """
    return _ranks(_check_square(S))


def recall_at_k(ranks, ks=(1, 5, 10)):
    """Recall@k (share of queries with rank <= k) of 1-based ranks (B,), and their median.

    Returns ``{"R@1": float, ..., "median_rank": float}`` for each k of ``ks`` (a tuple or one int).
    """
    ranks = check_int_array(ranks, "ranks", "(B,)", ndim=1)
    if ranks.size == 0:
        raise ValueError(f"ranks must have shape (B,) with B >= 1, got {ranks.shape}")
    if ranks.min() < 1:
        raise ValueError(f"ranks must be 1-based (>= 1), got a minimum of {ranks.min()}")
    return _recall(ranks, _check_ks(ks))


def retrieval_metrics(S, ks=(1, 5, 10)):
    """Recall@k and median rank in both directions, plus the mean R@1 (RET).

    Returns ``{"a2b": {...}, "b2a": {...}, "mean_R@1": float}``, each direction
    as :func:`recall_at_k`; ``mean_R@1`` whatever ``ks`` holds. S is (B, B).
    """
    return _metrics(_check_square(S), _check_ks(ks))


def retrieval_report(S=None, S_code=None, lambda_r=1.0, ks=(1, 5, 10)):
    """Retrieval ranked by S (SUM-3), by S^code (CM-3), and by S + lambda_r S^code (RET).

    Returns :func:`retrieval_metrics` under ``"summary"``, ``"code"`` and
    ``"combined"`` for the (B, B) matrices given (either may be None).
    """
    S = None if S is None else _check_square(S, "S")
    S_code = None if S_code is None else _check_square(S_code, "S_code")
    if S is not None and S_code is not None and S.shape != S_code.shape:
        raise ValueError(f"S_code must have the shape of S {S.shape}, got {S_code.shape}")
    lambda_r = check_number(lambda_r, "lambda_r")
    ks = _check_ks(ks)
    out = {}
    if S is not None:
        out["summary"] = _metrics(S, ks)
    if S_code is not None:
        out["code"] = _metrics(S_code, ks)
    if S is not None and S_code is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            combined = S + lambda_r * S_code
        if not np.isfinite(combined).all():
            raise ValueError(f"lambda_r = {lambda_r!r} makes S + lambda_r S_code overflow {combined.dtype}; "
                             "use a smaller lambda_r")
        out["combined"] = _metrics(combined, ks)
    return out


def content_ids(*concepts):
    """One int64 id per sample naming its set of concepts, shared across the (B_i, L_i) arrays given.

    Concepts are -1 padded; order and repeats do not matter. Returns a list of
    (B_i,) arrays: equal ids <=> equal sets.
    """
    table, out = {}, []
    for i, c in enumerate(concepts):
        c = check_int_array(c, f"concepts[{i}]" if len(concepts) > 1 else "concepts", "(B, L)", ndim=2)
        keys = [frozenset(int(v) for v in row if v >= 0) for row in c]
        out.append(np.array([table.setdefault(k, len(table)) for k in keys], dtype=np.int64))
    return out


def set_ceiling_r1(concepts):
    """Expected R@1 of a perfect retriever that only knows each sample's set of concepts (RET).

    mean_i 1 / #{j : set(concepts_j) = set(concepts_i)}: it picks the true
    partner at random among the samples naming the same set. A mean-pooled
    model (SUM-1) sees sets, not order. ``concepts`` (B, L), -1 padded.
    """
    ids = content_ids(concepts)[0]
    if len(ids) == 0:
        raise ValueError(f"concepts must have shape (B >= 1, L), got {np.shape(concepts)}")
    return float(np.mean(1.0 / np.bincount(ids)[ids]))


def _same_content(B, concepts_a, concepts_b):
    """(B, B) bool: candidate b_j names the set of query a_i."""
    ids_a, ids_b = content_ids(concepts_a, concepts_a if concepts_b is None else concepts_b)
    for name, ids in (("concepts_a", ids_a), ("concepts_b", ids_b)):
        if len(ids) != B:
            raise ValueError(f"{name} must have shape (B={B}, L), got {len(ids)} rows")
    same = ids_a[:, None] == ids_b[None, :]
    if not np.all(np.diag(same)):
        raise ValueError("concepts_b: pair i must name the set of concepts_a[i], got a pair that does not")
    return same


def set_retrieval_ranks(S, concepts_a, concepts_b=None):
    """:func:`retrieval_ranks` in which any candidate naming the query's set counts as its partner (RET, per content).

    ``concepts_a`` and ``concepts_b`` (B, L), -1 padded, are the content of
    the queries and of the candidates (default: the same).
    """
    S = _check_square(S)
    return _ranks(S, _same_content(len(S), concepts_a, concepts_b))


def set_retrieval_metrics(S, concepts_a, concepts_b=None, ks=(1, 5, 10)):
    """:func:`retrieval_metrics` with the ranks of :func:`set_retrieval_ranks` (RET, per content)."""
    S = _check_square(S)
    same = _same_content(len(S), concepts_a, concepts_b)
    return _metrics(S, _check_ks(ks), same)


def _bits(concepts):
    """Each row's set of concepts 0..62 as one int64 bit mask."""
    rows = np.where(concepts >= 0, np.left_shift(1, np.clip(concepts, 0, 62)), 0)
    return np.bitwise_or.reduce(rows, axis=1).astype(np.int64)


def distractor_ceiling_r1(named, distractors, extra_counts):
    """Set-level R@1 of a retriever that sees every object but cannot tell named ones from distractors (RET).

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
        ``caption_to_image``: for a caption naming A, the share of the
        consistent images (content C contains A, |C| - |A| allowed) whose
        caption names A, averaged over queries; ``image_to_caption``, its
        mirror; their ``mean``.
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
