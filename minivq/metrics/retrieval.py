"""Retrieval (RET): ranks, Recall@k and median rank, both directions.

Rank by S (SUM-3), by S^code (CM-3), or by S + lambda_r S^code.
"""
from collections import Counter

import numpy as np

from .._checks import check_int, check_int_array, check_number, check_real, describe

__all__ = ["retrieval_ranks", "recall_at_k", "retrieval_metrics", "retrieval_report", "set_ceiling_r1"]


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


def retrieval_ranks(S):
    """1-based rank of the true partner of every query, both directions (RET).

    Parameters
    ----------
    S : ndarray, shape (B, B)
        Similarities; S[i, j] compares item i of modality a with item j of
        modality b, and the true pairs are on the diagonal.

    Returns
    -------
    ranks_ab : ndarray of int64, shape (B,)
        Rank of b_i among all b for the query a_i (1 = retrieved first).
    ranks_ba : ndarray of int64, shape (B,)
        Rank of a_j among all a for the query b_j.

    Notes
    -----
    Ties count against the query (pessimistic rank): rank = 1 + the number of
    wrong candidates scoring at least as high as the true one, so a constant S
    gives rank B, never a lucky 1.
    """
    return _retrieval_ranks(_check_square(S))


def _retrieval_ranks(S):
    """:func:`retrieval_ranks` without the checks."""
    diag = np.diag(S)
    off = ~np.eye(S.shape[0], dtype=bool)
    ranks_ab = 1 + np.sum((S >= diag[:, None]) & off, axis=1)  # (B,)
    ranks_ba = 1 + np.sum((S >= diag[None, :]) & off, axis=0)  # (B,)
    return ranks_ab.astype(np.int64), ranks_ba.astype(np.int64)


def recall_at_k(ranks, ks=(1, 5, 10)):
    """Recall@k (fraction of queries with rank <= k) and the median rank.

    Parameters
    ----------
    ranks : ndarray of int, shape (B,)
        1-based ranks (>= 1).
    ks : tuple of int
        Each k >= 1 (a single int is one k).

    Returns
    -------
    dict
        ``{"R@1": float, ..., "median_rank": float}``.
    """
    ranks = check_int_array(ranks, "ranks", "(B,)", ndim=1)
    if ranks.size == 0:
        raise ValueError(f"ranks must have shape (B,) with B >= 1, got {ranks.shape}")
    if ranks.min() < 1:
        raise ValueError(f"ranks must be 1-based (>= 1), got a minimum of {ranks.min()}")
    return _recall_at_k(ranks, _check_ks(ks))


def _recall_at_k(ranks, ks):
    """:func:`recall_at_k` without the checks."""
    out = {f"R@{k}": float(np.mean(ranks <= k)) for k in ks}
    out["median_rank"] = float(np.median(ranks))
    return out


def retrieval_metrics(S, ks=(1, 5, 10)):
    """Recall@k and median rank in both directions, plus the mean R@1 (RET).

    Parameters
    ----------
    S : ndarray, shape (B, B)
        Similarities with the true pairs on the diagonal.
    ks : tuple of int

    Returns
    -------
    dict
        ``{"a2b": {...}, "b2a": {...}, "mean_R@1": float}`` where each
        direction holds the output of :func:`recall_at_k`; ``mean_R@1`` is
        there whatever ``ks`` holds.
    """
    return _retrieval_metrics(_check_square(S), _check_ks(ks))


def _retrieval_metrics(S, ks):
    """:func:`retrieval_metrics` on a checked S."""
    ranks_ab, ranks_ba = _retrieval_ranks(S)
    a2b, b2a = _recall_at_k(ranks_ab, ks), _recall_at_k(ranks_ba, ks)
    r1 = 0.5 * (float(np.mean(ranks_ab <= 1)) + float(np.mean(ranks_ba <= 1)))
    return {"a2b": a2b, "b2a": b2a, "mean_R@1": r1}


def retrieval_report(S=None, S_code=None, lambda_r=1.0, ks=(1, 5, 10)):
    """Retrieval ranked by S (SUM-3), by S^code (CM-3), and by S + lambda_r S^code.

    Parameters
    ----------
    S : ndarray, shape (B, B) or None
        Summary similarities (SUM-3).
    S_code : ndarray, shape (B, B) or None
        Code similarities (CM-3).
    lambda_r : float
        Weight of S^code in the combined ranking (RET).
    ks : tuple of int

    Returns
    -------
    dict
        Keys ``"summary"``, ``"code"``, ``"combined"`` for the matrices given,
        each the output of :func:`retrieval_metrics`.
    """
    S = None if S is None else _check_square(S, "S")
    S_code = None if S_code is None else _check_square(S_code, "S_code")
    if S is not None and S_code is not None and S.shape != S_code.shape:
        raise ValueError(f"S_code must have the shape of S {S.shape}, got {S_code.shape}")
    lambda_r = check_number(lambda_r, "lambda_r")
    ks = _check_ks(ks)
    out = {}
    if S is not None:
        out["summary"] = _retrieval_metrics(S, ks)
    if S_code is not None:
        out["code"] = _retrieval_metrics(S_code, ks)
    if S is not None and S_code is not None:
        with np.errstate(over="ignore", invalid="ignore"):
            combined = S + lambda_r * S_code
        if not np.isfinite(combined).all():
            raise ValueError(f"lambda_r = {lambda_r!r} makes S + lambda_r S_code overflow {combined.dtype}; "
                             "use a smaller lambda_r")
        out["combined"] = _retrieval_metrics(combined, ks)
    return out


def set_ceiling_r1(concepts):
    """Expected R@1 of a perfect retriever that only knows each sample's set of concepts.

    Parameters
    ----------
    concepts : ndarray of int, shape (B, L)
        Concepts of each sample (e.g. the digits of a scene), -1 padded.

    Returns
    -------
    float
        mean_i 1 / #{j : set(concepts_j) = set(concepts_i)}: samples naming
        the same digits are indistinguishable to such a retriever, which then
        picks the true partner among them at random. A mean-pooled model
        (SUM-1) sees sets, not order, so this bounds what to expect (RET).
    """
    concepts = check_int_array(concepts, "concepts", "(B, L)", ndim=2)
    if len(concepts) == 0:
        raise ValueError(f"concepts must have shape (B >= 1, L), got {concepts.shape}")
    keys = [frozenset(int(c) for c in row if c >= 0) for row in concepts]
    counts = Counter(keys)  # digit set -> number of samples naming it
    return float(np.mean([1.0 / counts[key] for key in keys]))
