"""Cross-modal agreement (CC, METHOD.md section 7) is one-to-one."""
import numpy as np

from minivq import metrics


def _counts(tops, K, C):
    """A (C + 1, K) count table where concept c's most frequent code is tops[c]."""
    counts = np.zeros((C + 1, K), dtype=np.int64)
    for c, k in enumerate(tops):
        if k >= 0:
            counts[c, k] = 5
            counts[c, (k + 1) % K] = 1  # a runner-up, so argmax is not a tie
    counts[C, 0] = 3  # background
    return counts


def test_shared_top_code_is_not_agreement():
    """Demo seed 0 of v0.1: digits 2 and 3 share top code 8 in both modalities, reported 10/10."""
    tops = [0, 1, 8, 8, 4, 5, 6, 7, 9, 10]
    counts = _counts(tops, K=16, C=10)
    agr = metrics.cross_modal_agreement(counts, counts)
    assert agr["n_agree"] == 8, f"n_agree {agr['n_agree']}, expect 8 (digits 2 and 3 share code 8)"
    assert agr["agree"].tolist() == [True, True, False, False] + [True] * 6
    assert agr["n_distinct_a"] == 9 and agr["n_distinct_b"] == 9
    assert agr["top_a"].tolist() == tops and agr["top_b"].tolist() == tops


def test_code_claimed_in_the_other_modality_is_not_agreement():
    """Concept 0 has top code 1 in both; concept 1 has code 1 only in modality b."""
    counts_a = _counts([1, 2, 3], K=6, C=3)
    counts_b = _counts([1, 1, 3], K=6, C=3)
    agr = metrics.cross_modal_agreement(counts_a, counts_b)
    assert agr["agree"].tolist() == [False, False, True] and agr["n_agree"] == 1
    assert agr["n_distinct_a"] == 3 and agr["n_distinct_b"] == 2


def test_distinct_counts_only_concepts_that_occur():
    counts_a = _counts([2, -1, 4], K=6, C=3)
    counts_b = _counts([2, 3, -1], K=6, C=3)
    agr = metrics.cross_modal_agreement(counts_a, counts_b)
    assert agr["top_a"].tolist() == [2, -1, 4] and agr["top_b"].tolist() == [2, 3, -1]
    assert agr["agree"].tolist() == [True, False, False]
    assert agr["n_distinct_a"] == 2 and agr["n_distinct_b"] == 2


def test_one_to_one_agreement_counts_every_concept():
    counts = _counts(list(range(10)), K=12, C=10)
    agr = metrics.cross_modal_agreement(counts, counts)
    assert agr["n_agree"] == 10 and agr["n_distinct_a"] == 10 == agr["n_distinct_b"]
