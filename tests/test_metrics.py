"""Tests of minivq.metrics (METHOD.md RET, LOC, CC, VQ-7) on hand-made cases."""
import numpy as np
import pytest

from minivq import metrics


def test_ranks_identity_is_perfect():
    ranks_ab, ranks_ba = metrics.retrieval_ranks(np.eye(5))
    assert ranks_ab.tolist() == [1] * 5 and ranks_ba.tolist() == [1] * 5


def test_ranks_by_hand():
    # a_0 prefers b_1; b_1 is also a_1's partner but a_0 scores it higher.
    S = np.array([[0.5, 0.9, 0.1],
                  [0.2, 0.8, 0.0],
                  [0.3, 0.1, 0.7]])
    ranks_ab, ranks_ba = metrics.retrieval_ranks(S)
    assert ranks_ab.tolist() == [2, 1, 1]
    # column 1: true a_1 scores 0.8 < a_0's 0.9 -> rank 2
    assert ranks_ba.tolist() == [1, 2, 1]


def test_ties_are_pessimistic():
    ranks_ab, ranks_ba = metrics.retrieval_ranks(np.zeros((4, 4)))
    assert ranks_ab.tolist() == [4] * 4 and ranks_ba.tolist() == [4] * 4


def test_recall_and_median():
    out = metrics.recall_at_k(np.array([1, 2, 6, 11]), ks=(1, 5, 10))
    assert out == {"R@1": 0.25, "R@5": 0.5, "R@10": 0.75, "median_rank": 4.0}


def test_retrieval_matches_loop_reference():
    rng = np.random.default_rng(0)
    S = rng.normal(size=(30, 30))
    ranks_ab, ranks_ba = metrics.retrieval_ranks(S)
    for i in range(30):
        order = np.argsort(-S[i], kind="stable")
        assert ranks_ab[i] == 1 + np.where(order == i)[0][0]
        order = np.argsort(-S[:, i], kind="stable")
        assert ranks_ba[i] == 1 + np.where(order == i)[0][0]


def test_retrieval_report_combines():
    S = np.array([[1.0, 0.0], [0.0, -1.0]])       # b2a/a2b: item 1 wrong
    S_code = np.array([[0.0, 0.0], [0.0, 5.0]])   # fixes item 1
    rep = metrics.retrieval_report(S, S_code, lambda_r=1.0, ks=(1,))
    assert rep["summary"]["mean_R@1"] == 0.5
    assert rep["combined"]["mean_R@1"] == 1.0
    assert set(rep) == {"summary", "code", "combined"}


def test_retrieval_rejects_bad_shape():
    with pytest.raises(ValueError, match="square"):
        metrics.retrieval_ranks(np.zeros((2, 3)))


def _one_hot(codes, K):
    return np.eye(K)[codes]


def test_concept_distributions_pool_by_label():
    p = _one_hot(np.array([[0, 1, 1, 2]]), 3)            # (1, 4, 3)
    labels = np.array([[-1, 5, 5, 7]])
    mask = np.array([[True, True, True, False]])
    P, found = metrics.concept_distributions(p, labels, mask, np.array([[5, 7, -1]]))
    np.testing.assert_allclose(P[0, 0], [0, 1, 0])
    assert found.tolist() == [[True, False, False]]      # 7's only unit is masked


def test_localization_by_hand_and_chance():
    K = 3
    # speech: word "4" uses code 2; image: patch 1 uses code 2 and is the 4.
    p_sp = _one_hot(np.array([[2, 2, 0]]), K)
    sp_labels = np.array([[4, 4, -1]])
    P, found = metrics.concept_distributions(p_sp, sp_labels, np.ones((1, 3), bool), np.array([[4]]))
    p_img = _one_hot(np.array([[0, 2, 1, 0]]), K)
    img_labels = np.array([[-1, 4, 4, -1]])
    out = metrics.localization_accuracy(P, np.array([[4]]), found, p_img, img_labels, np.ones((1, 4), bool))
    assert out["accuracy"] == 1.0 and out["n"] == 1
    assert out["chance"] == 0.5 and out["best_unit"].tolist() == [[1]]
    # masking the right patch makes it impossible to pick
    out = metrics.localization_accuracy(P, np.array([[4]]), found, p_img, img_labels,
                                        np.array([[True, False, True, True]]))
    assert out["accuracy"] == 0.0


def test_code_concept_counts_and_purity():
    idx = np.array([[0, 0, 1, 1, 2]])
    labels = np.array([[3, 3, 3, -1, -1]])
    counts = metrics.code_concept_counts(idx, labels, np.ones_like(idx, bool), K=3, n_concepts=4)
    assert counts.shape == (5, 3)
    assert counts[3].tolist() == [2, 1, 0] and counts[4].tolist() == [0, 1, 1]
    # code 1 ties 3 vs background -> argmax picks concept 3 (lower row)
    assert metrics.code_purity(counts) == 1.0
    assert metrics.code_purity(counts, include_background=True) == 4 / 5


def test_shared_fraction_and_agreement():
    counts_a = np.zeros((3, 4), int)
    counts_b = np.zeros((3, 4), int)
    counts_a[0, 1], counts_a[1, 2] = 5, 5      # concept 0 -> code 1, concept 1 -> code 2
    counts_b[0, 1], counts_b[1, 3] = 4, 4      # concept 0 -> code 1, concept 1 -> code 3
    assert metrics.shared_code_fraction(counts_a, counts_b) == 1 / 3
    agr = metrics.cross_modal_agreement(counts_a, counts_b)
    assert agr["agree"].tolist() == [True, False] and agr["n_agree"] == 1
    assert agr["top_a"].tolist() == [1, 2] and agr["top_b"].tolist() == [1, 3]


def test_agreement_ignores_absent_concepts():
    counts = np.zeros((3, 2), int)
    agr = metrics.cross_modal_agreement(counts, counts)
    assert agr["n_agree"] == 0 and agr["top_a"].tolist() == [-1, -1]


def test_usage_per_modality():
    idx = {"a": np.array([[0, 1]]), "b": np.array([[1, 1]])}
    masks = {"a": np.ones((1, 2), bool), "b": np.ones((1, 2), bool)}
    out = metrics.usage_per_modality(idx, masks, K=4)
    assert out["all"]["counts"].tolist() == [1, 3, 0, 0]
    assert out["b"]["fraction_used"] == 0.25
    assert abs(out["a"]["perplexity"] - 2.0) < 1e-12


def test_relevance_is_the_dot_product_of_code_distributions():
    rng = np.random.default_rng(1)
    P = rng.dirichlet(np.ones(4), size=(2, 3))          # (B, L, K)
    p = rng.dirichlet(np.ones(4), size=(2, 5))          # (B, T, K)
    mask = np.ones((2, 5), bool)
    mask[1, 4] = False
    rel = metrics.relevance(P, p, mask)
    assert rel.shape == (2, 3, 5) and np.isneginf(rel[1, :, 4]).all()
    np.testing.assert_allclose(rel[0, 2, 1], P[0, 2] @ p[0, 1])


def test_set_ceiling_counts_samples_with_the_same_digit_set():
    concepts = np.array([[1, 2, -1], [2, 1, -1], [3, 4, 5], [0, 1, -1]])
    assert metrics.set_ceiling_r1(concepts) == (0.5 + 0.5 + 1 + 1) / 4


def test_set_ceiling_when_every_sample_names_the_same_number_of_concepts():
    concepts = np.array([[1, 2], [2, 1], [0, 1], [3, 4]])   # equal lengths: no ragged rows
    assert metrics.set_ceiling_r1(concepts) == (0.5 + 0.5 + 1 + 1) / 4


def test_metrics_reject_mismatched_shapes():
    p = np.full((2, 4, 3), 1 / 3)
    mask, labels = np.ones((2, 4), bool), np.zeros((2, 4), int)
    with pytest.raises(ValueError, match="concepts"):
        metrics.concept_distributions(p, labels, mask, np.array([1, 2]))
    with pytest.raises(ValueError, match="P_query"):
        metrics.relevance(np.ones((2, 1, 5)), p, mask)
    with pytest.raises(ValueError, match="query_concepts"):
        metrics.localization_accuracy(np.ones((2, 1, 3)), np.zeros((2, 2), int), np.ones((2, 1), bool),
                                      p, labels, mask)
    valid = np.ones((1, 2), bool)
    with pytest.raises(ValueError, match="idx"):
        metrics.code_concept_counts(np.array([[0, 3]]), np.array([[0, 0]]), valid, K=3, n_concepts=1)
    with pytest.raises(ValueError, match="labels"):
        metrics.code_concept_counts(np.array([[0, 1]]), np.array([[0, 2]]), valid, K=3, n_concepts=2)
    with pytest.raises(ValueError, match="counts_a and counts_b"):
        metrics.cross_modal_agreement(np.zeros((3, 4)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match="S_code must have the shape of S"):
        metrics.retrieval_report(np.eye(3), np.eye(4))


# --- issue 10 regressions ------------------------------------------------------------------------

def test_retrieval_metrics_without_k_1_still_give_mean_r1():
    """ks without 1 raised KeyError: 'R@1'."""
    out = metrics.retrieval_metrics(np.eye(3), ks=(5,))
    assert out["mean_R@1"] == 1.0 and set(out["a2b"]) == {"R@5", "median_rank"}
    S = np.eye(3)[[1, 0, 2]]  # queries 0 and 1 retrieve each other's partner first
    assert metrics.retrieval_metrics(S, ks=(2,))["mean_R@1"] == pytest.approx(1 / 3)


def test_localization_skips_samples_with_no_valid_target_unit():
    """The padded unit won the argmax of an all -inf row: accuracy 1.0 at chance 0.0 (issue 10)."""
    P_query, concepts, found = np.ones((1, 1, 1)), np.zeros((1, 1), np.int64), np.ones((1, 1), bool)
    p_target, target_labels = np.ones((1, 1, 1)), np.zeros((1, 1), np.int64)
    out = metrics.localization_accuracy(P_query, concepts, found, p_target, target_labels, np.zeros((1, 1), bool))
    assert out["n"] == 0 and np.isnan(out["accuracy"]) and out["best_unit"].tolist() == [[-1]]
    # two samples: the second has no valid target unit, only the first counts
    p_target = np.array([[[0.9, 0.1], [0.1, 0.9]], [[0.9, 0.1], [0.1, 0.9]]])
    labels = np.array([[0, 1], [0, 1]])
    mask = np.array([[True, True], [False, False]])
    P_query = np.array([[[1.0, 0.0]], [[1.0, 0.0]]])
    out = metrics.localization_accuracy(P_query, np.zeros((2, 1), np.int64), np.ones((2, 1), bool),
                                        p_target, labels, mask)
    assert out["n"] == 1 and out["accuracy"] == 1.0 and out["chance"] == 0.5
    assert out["best_unit"].tolist() == [[0], [-1]]


@pytest.mark.parametrize("call, exc, words", [
    (lambda: metrics.retrieval_ranks(np.array([[1.0, np.nan], [0.0, 1.0]])), ValueError, "S must be finite"),
    (lambda: metrics.retrieval_ranks(np.eye(2) * 1j), TypeError, "S must be a real-valued"),
    (lambda: metrics.retrieval_metrics(np.eye(2), ks=(0,)), ValueError, "ks must be an int >= 1"),
    (lambda: metrics.recall_at_k(np.array([0, 1])), ValueError, "ranks must be 1-based"),
    (lambda: metrics.retrieval_report(np.eye(2), np.eye(2) * np.nan), ValueError, "S_code must be finite"),
    (lambda: metrics.retrieval_report(np.eye(2), np.eye(2), lambda_r="1"), TypeError, "lambda_r must be"),
    (lambda: metrics.retrieval_report(np.eye(2) * 1e308, np.eye(2) * 1e308, lambda_r=10.0), ValueError,
     "lambda_r = 10.0 makes S \\+ lambda_r S_code overflow"),
    (lambda: metrics.concept_distributions(-np.ones((1, 2, 3)), np.zeros((1, 2), int), np.ones((1, 2), bool),
                                           np.zeros((1, 1), int)), ValueError, "p must be >= 0"),
    (lambda: metrics.localization_accuracy(np.ones((1, 1, 2)), np.zeros((1, 1), int), np.ones((1, 1), bool),
                                           np.ones((1, 3, 2)), np.zeros((1, 2), int), np.ones((1, 3), bool)),
     ValueError, "target_labels must have shape"),
    (lambda: metrics.localization_accuracy(np.ones((1, 1, 2)), np.zeros((1, 1), int), np.ones((1, 1), bool),
                                           np.ones((1, 3, 2)), np.zeros((1, 3), int), np.ones((1, 3))),
     TypeError, "target_mask must be a bool mask"),
    (lambda: metrics.relevance(np.ones((1, 1, 2)), np.ones((1, 3, 2)) * np.nan, np.ones((1, 3), bool)),
     ValueError, "p_target must be finite"),
    (lambda: metrics.code_purity(-np.ones((2, 3))), ValueError, "counts must be >= 0"),
    (lambda: metrics.usage_per_modality({"a": np.zeros((1, 2), int)}, {"a": np.ones((1, 3), bool)}, 2),
     ValueError, r"masks\['a'\] must have shape"),
    (lambda: metrics.code_concept_counts(np.zeros((1, 2), int), np.array([[-2, 0]]), np.ones((1, 2), bool), 2, 1),
     ValueError, "labels must be -1 or in"),
])
def test_metrics_name_the_argument(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
