"""Code-concept analysis (CC) and usage per modality (VQ-7).

From the hard codes (VQ-1) of units with known concepts: the code x concept
counts, code purity, the share of used codes both modalities use, the
cross-modal agreement per concept, and cross-modal transfer.
"""
import numpy as np

from ..checks.arrays import check_bool, check_count, check_int_array, check_mask, check_real, describe
from ..quantizer import codebook_usage

__all__ = ["code_concept_counts", "code_purity", "shared_code_fraction", "cross_modal_agreement",
           "transfer_accuracy", "usage_per_modality"]


def code_concept_counts(idx, labels, mask, K, n_concepts):
    """Count matrix of hard codes (VQ-1) against unit concepts (CC).

    Parameters
    ----------
    idx : ndarray of int, shape (B, T)
        Code k*(h_bt) of every unit.
    labels : ndarray of int, shape (B, T)
        Concept of every unit, -1 for background.
    mask : ndarray of bool, shape (B, T)
    K, n_concepts : int
        Codebook size and number of concepts C.

    Returns
    -------
    counts : ndarray of int64, shape (C + 1, K)
        counts[c, k]: valid units of concept c on code k; the last row counts background.
    """
    idx, labels = check_int_array(idx, "idx", "(B, T)"), check_int_array(labels, "labels", "(B, T)")
    if labels.shape != idx.shape:
        raise ValueError(f"labels must have the shape of idx {idx.shape}, got {labels.shape}")
    mask = check_mask(mask, idx.shape, "idx.shape", "mask")
    K, n_concepts = check_count(K, "K"), check_count(n_concepts, "n_concepts")
    codes, concepts = idx[mask], labels[mask]  # (N,) valid units
    if codes.size and (codes.min() < 0 or codes.max() >= K):
        raise ValueError(f"idx must hold codes in [0, K={K}) on valid units, got [{codes.min()}, {codes.max()}]")
    if concepts.size and (concepts.max() >= n_concepts or concepts.min() < -1):
        bad = concepts.max() if concepts.max() >= n_concepts else concepts.min()
        raise ValueError(f"labels must be -1 or in [0, n_concepts={n_concepts}) on valid units, got {bad}")
    rows = np.where(concepts < 0, n_concepts, concepts)  # background -> row C
    counts = np.zeros((n_concepts + 1, K), dtype=np.int64)
    np.add.at(counts, (rows, codes), 1)
    return counts


def code_purity(counts, include_background=False):
    """Share of units whose code's majority concept is their own concept (CC).

    ``counts`` (C + 1, K) from :func:`code_concept_counts` (sum several
    modalities' to pool them). With ``include_background`` False only concept
    units are scored, but background units still vote for their codes'
    majority. NaN when no unit is scored.
    """
    counts = _check_counts(counts, "counts")
    include_background = check_bool(include_background, "include_background")
    majority = np.argmax(counts, axis=0)  # (K,)
    rows = counts if include_background else counts[:-1]
    total = rows.sum()
    if total == 0:
        return float("nan")
    on_rows = majority < rows.shape[0]  # codes whose majority is a scored row
    cols = np.arange(counts.shape[1])[on_rows]
    return float(rows[majority[on_rows], cols].sum() / total)


def _check_counts(counts, name):
    """A code-concept count matrix: finite, >= 0, shape (C + 1, K) with C >= 1 and K >= 1."""
    counts = check_real(counts, name, "(C + 1, K)", ndim=2, nonnegative=True)
    if counts.shape[0] < 2 or counts.shape[1] < 1:
        raise ValueError(f"{name} must have shape (C + 1, K) with C >= 1 and K >= 1, got {counts.shape}")
    return counts


def _check_pair(counts_a, counts_b):
    """Two code-concept count matrices of one shape (C + 1, K)."""
    counts_a, counts_b = _check_counts(counts_a, "counts_a"), _check_counts(counts_b, "counts_b")
    if counts_a.shape != counts_b.shape:
        raise ValueError(f"counts_a and counts_b must share one shape (C + 1, K), got {counts_a.shape} "
                         f"and {counts_b.shape}")
    return counts_a, counts_b


def shared_code_fraction(counts_a, counts_b):
    """|used_a & used_b| / |used_a | used_b| over the codes of two (C + 1, K) count matrices (CC).

    NaN when neither modality uses a code.
    """
    counts_a, counts_b = _check_pair(counts_a, counts_b)
    used_a, used_b = counts_a.sum(axis=0) > 0, counts_b.sum(axis=0) > 0  # (K,)
    union = np.sum(used_a | used_b)
    return float(np.sum(used_a & used_b) / union) if union else float("nan")


def cross_modal_agreement(counts_a, counts_b):
    """For how many concepts is the top code shared, and one-to-one (CC)?

    Parameters
    ----------
    counts_a, counts_b : ndarray of int, shape (C + 1, K)
        Code-concept counts of the two modalities (last row background).

    Returns
    -------
    dict
        ``top_a``, ``top_b`` int64 (C,): each concept's most frequent code,
        -1 if it never occurs; ``agree`` bool (C,): the top code is the same
        in both modalities and no other concept's top code in either (two
        digits on one code agree on nothing); ``n_agree``; ``n_distinct_a``,
        ``n_distinct_b``: distinct top codes among the concepts that occur.
    """
    counts_a, counts_b = (c[:-1] for c in _check_pair(counts_a, counts_b))  # drop the background row
    ### BEGIN SOLUTION cc_agreement
    top_a = np.where(counts_a.sum(axis=1) > 0, np.argmax(counts_a, axis=1), -1).astype(np.int64)
    top_b = np.where(counts_b.sum(axis=1) > 0, np.argmax(counts_b, axis=1), -1).astype(np.int64)
    K = counts_a.shape[1]
    n_top_a = np.bincount(top_a[top_a >= 0], minlength=K)  # (K,) concepts whose top code is k
    n_top_b = np.bincount(top_b[top_b >= 0], minlength=K)
    same = (top_a == top_b) & (top_a >= 0)
    code = np.where(same, top_a, 0)
    agree = same & (n_top_a[code] == 1) & (n_top_b[code] == 1)  # no other concept claims it
    ### END SOLUTION
    return {"agree": agree, "top_a": top_a, "top_b": top_b, "n_agree": int(agree.sum()),
            "n_distinct_a": int(np.count_nonzero(n_top_a)), "n_distinct_b": int(np.count_nonzero(n_top_b))}


def transfer_accuracy(counts_a, counts_b):
    """Cross-modal transfer: name each code on one modality's units, classify the other's (CC).

    ``counts_a``, ``counts_b`` (C + 1, K) from :func:`code_concept_counts`.
    Returns ``a_to_b``: each code is named by its majority row on a
    (background included, ties to the lower row, unused codes name nothing);
    the score is the share of b's concept units whose code is named their
    concept; ``b_to_a``, its mirror; their ``mean``.
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


def usage_per_modality(idx, masks, K):
    """Codebook usage of each modality and of all of them together (VQ-7).

    ``idx`` and ``masks`` map each modality to its hard codes (B, T) and mask
    (B, T). Returns :func:`minivq.quantizer.codebook_usage` (counts,
    perplexity, fraction_used) for each modality with a valid unit and ``"all"``.
    """
    K = check_count(K, "K")
    if not isinstance(idx, dict) or not idx:
        raise TypeError(f"idx must be a non-empty dict modality -> codes (B, T), got {describe(idx)}")
    if not isinstance(masks, dict) or masks.keys() != idx.keys():
        got = sorted(masks) if isinstance(masks, dict) else describe(masks)
        raise TypeError(f"masks must be a dict with the keys of idx {sorted(idx)}, got {got}")
    valid = {}
    for m in idx:
        codes = check_int_array(idx[m], f"idx[{m!r}]", "(B, T)")
        if codes.size and (codes.min() < 0 or codes.max() >= K):
            raise ValueError(f"idx[{m!r}] must hold codes in [0, K={K}), got [{codes.min()}, {codes.max()}]")
        valid[m] = codes[check_mask(masks[m], codes.shape, f"idx[{m!r}].shape", f"masks[{m!r}]")]
    pooled = np.concatenate(list(valid.values()))
    if pooled.size == 0:
        raise ValueError("masks must mark at least one valid unit, got none in any modality")
    out = {m: codebook_usage(v, None, K) for m, v in valid.items() if v.size}
    out["all"] = codebook_usage(pooled, None, K)
    return out
