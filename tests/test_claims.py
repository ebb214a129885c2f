"""Tests of minivq.metrics.claims: each metric on hand-made cases and against a brute-force reference.

The references are written the slow, obvious way (loops, sorting with the
pessimistic tie rule spelled out), so a vectorized shortcut that miscounts
ties, padding or directions fails here.
"""
import numpy as np
import pytest

from minivq import metrics
from minivq.metrics import claims


# ------------------------------------------------------------------ set-level retrieval
def brute_set_ranks(S, sets):
    """Walk each query's candidates best first, wrong-set candidates first among equals."""
    B = len(S)
    keys = [frozenset(int(v) for v in row if v >= 0) for row in sets]

    def rank(scores, relevant):
        order = sorted(range(B), key=lambda j: (-scores[j], relevant[j]))  # ties: irrelevant first
        return 1 + next(pos for pos, j in enumerate(order) if relevant[j])

    ab = [rank(S[i], [keys[j] == keys[i] for j in range(B)]) for i in range(B)]
    ba = [rank(S[:, j], [keys[i] == keys[j] for i in range(B)]) for j in range(B)]
    return np.array(ab), np.array(ba)


def test_set_ranks_hand_made():
    # pairs 0 and 2 name {1, 2} (in another order), pair 1 names {3}
    sets = np.array([[1, 2], [3, -1], [2, 1]])
    S = np.array([[0.0, 0.9, 0.5],   # a0: wrong-set b1 first, then b2 (same set): set rank 2, instance rank 3
                  [0.1, 0.2, 0.3],   # a1: only b2 above its partner: rank 2
                  [0.8, 0.1, 0.0]])  # a2: b0 names its set: set rank 1 (instance rank 3)
    ab, ba = claims.set_retrieval_ranks(S, sets)
    assert ab.tolist() == [2, 2, 1]
    assert ba.tolist() == [1, 2, 1]  # b0: a2 (same set) 0.8 beats a1; b1: a0 (0.9) above a1; b2: a0 0.5 > a1 0.3
    inst_ab, _ = metrics.retrieval_ranks(S)
    assert inst_ab.tolist() == [3, 2, 3]


def test_set_ranks_ties_count_against_the_query():
    S = np.zeros((3, 3))
    ab, ba = claims.set_retrieval_ranks(S, np.array([[0], [1], [2]]))
    assert ab.tolist() == [3, 3, 3] and ba.tolist() == [3, 3, 3]


@pytest.mark.parametrize("seed", range(5))
def test_set_ranks_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    B = 25
    sets = rng.integers(-1, 4, size=(B, 3))  # few distinct sets, repeats and padding included
    S = rng.integers(0, 4, size=(B, B)).astype(float)  # many ties
    ab, ba = claims.set_retrieval_ranks(S, sets)
    ref_ab, ref_ba = brute_set_ranks(S, sets)
    np.testing.assert_array_equal(ab, ref_ab)
    np.testing.assert_array_equal(ba, ref_ba)
    out = claims.set_retrieval_metrics(S, sets)
    assert out["a2b"]["R@5"] == pytest.approx(np.mean(ref_ab <= 5))
    assert out["mean_R@1"] == pytest.approx(0.5 * (np.mean(ref_ab == 1) + np.mean(ref_ba == 1)))


def test_unique_sets_give_instance_ranks():
    rng = np.random.default_rng(0)
    S = rng.normal(size=(12, 12))
    sets = np.arange(12)[:, None]
    ab, ba = claims.set_retrieval_ranks(S, sets)
    ref_ab, ref_ba = metrics.retrieval_ranks(S)
    np.testing.assert_array_equal(ab, ref_ab)
    np.testing.assert_array_equal(ba, ref_ba)


def test_set_ranks_errors_name_the_argument():
    with pytest.raises(ValueError, match="concepts_a"):
        claims.set_retrieval_ranks(np.zeros((3, 3)), np.zeros((2, 1), dtype=int))
    with pytest.raises(ValueError, match="concepts_b"):
        claims.set_retrieval_ranks(np.zeros((2, 2)), np.array([[0], [1]]), np.array([[1], [1]]))
    with pytest.raises(TypeError, match="concepts"):
        claims.set_retrieval_ranks(np.zeros((2, 2)), np.zeros((2, 1)))


def test_distractor_ceiling_hand_made_and_brute_force():
    named = np.array([[1, 2], [1, -1], [1, 2]])
    distractors = np.array([[3], [2], [4]])
    out = claims.distractor_ceiling_r1(named, distractors, (1,))
    # caption {1,2}: images {1,2,3} and {1,2,4} fit and name it; {1,2} (image 1) has |C| - 2 = 0 extra: 1.0
    # caption {1}: image 1 ({1,2}) fits; images 0, 2 hold 3 digits = 2 extra, not allowed: 1.0
    assert out["caption_to_image"] == pytest.approx(1.0)
    # image {1,2,3}: captions {1,2} (0 and 2) fit, {1} has 2 extra: 1.0; image {1,2}: caption {1} fits: 1.0
    assert out["image_to_caption"] == pytest.approx(1.0)
    both = claims.distractor_ceiling_r1(named, distractors, (1, 2))
    assert both["caption_to_image"] == pytest.approx((1 + 1 / 3 + 1) / 3)  # caption {1} now fits all 3 images
    rng = np.random.default_rng(0)
    named = np.where(rng.random((30, 3)) < 0.7, rng.integers(0, 5, size=(30, 3)), -1)
    named[:, 0] = rng.integers(0, 5, size=30)
    distractors = rng.integers(5, 8, size=(30, 1))
    out = claims.distractor_ceiling_r1(named, distractors, (1,))
    sets = [set(r[r >= 0].tolist()) for r in named]
    content = [s | set(d.tolist()) for s, d in zip(sets, distractors)]
    c2i = np.mean([np.mean([sets[j] == sets[i] for j in range(30) if sets[i] <= content[j]
                            and len(content[j]) - len(sets[i]) == 1]) for i in range(30)])
    assert out["caption_to_image"] == pytest.approx(c2i)


# ------------------------------------------------------------------ localization
def brute_localize(rel, qc, found, labels, mask):
    hits, chance_unit, chance_concept = [], [], []
    B, L, T = rel.shape
    for b in range(B):
        valid = [t for t in range(T) if mask[b, t]]
        on_any = [t for t in valid if labels[b, t] >= 0]
        for l in range(L):
            if not found[b, l] or qc[b, l] < 0:
                continue
            best = max(valid, key=lambda t: (rel[b, l, t], -t))  # first of the maxima
            hits.append(labels[b, best] == qc[b, l])
            named = [t for t in valid if labels[b, t] == qc[b, l]]
            chance_unit.append(len(named) / len(valid))
            chance_concept.append(len(named) / max(len(on_any), 1))
    return np.mean(hits), np.mean(chance_unit), np.mean(chance_concept), len(hits)


def test_localize_hand_made_chance_levels():
    # 6 units: two on digit 3, one on digit 5 (a distractor), three background
    labels = np.array([[3, 3, 5, -1, -1, -1]])
    mask = np.ones((1, 6), dtype=bool)
    rel = np.array([[[0.1, 0.2, 0.9, 0.0, 0.0, 0.0],    # points at the distractor: miss
                     [0.0, 0.7, 0.1, 0.0, 0.0, 0.0]]])  # points at digit 3: hit
    out = claims.localize(rel, np.array([[3, 3]]), np.ones((1, 2), bool), labels, mask)
    assert out["accuracy"] == 0.5 and out["n"] == 2
    assert out["chance_unit"] == pytest.approx(2 / 6)
    assert out["chance_concept_unit"] == pytest.approx(2 / 3)  # 2 of the 3 units on some digit
    assert out["best_unit"].tolist() == [[2, 1]]


@pytest.mark.parametrize("seed", range(4))
def test_localize_matches_brute_force_and_the_library(seed):
    rng = np.random.default_rng(seed)
    B, L, T, K = 6, 3, 9, 5
    labels = rng.integers(-1, 4, size=(B, T))
    mask = rng.random((B, T)) < 0.8
    mask[:, 0] = True
    qc = rng.integers(-1, 4, size=(B, L))
    found = rng.random((B, L)) < 0.8
    p = rng.dirichlet(np.ones(K), size=(B, T))
    P = rng.dirichlet(np.ones(K), size=(B, L))
    rel = metrics.relevance(P, p, mask)
    out = claims.localize(rel, qc, found, labels, mask)
    acc, cu, cc, n = brute_localize(rel, qc, found, labels, mask)
    assert out["n"] == n
    assert out["accuracy"] == pytest.approx(acc)
    assert out["chance_unit"] == pytest.approx(cu)
    assert out["chance_concept_unit"] == pytest.approx(cc)
    lib = metrics.localization_accuracy(P, qc, found, p, labels, mask)
    assert out["accuracy"] == pytest.approx(lib["accuracy"])
    assert out["chance_unit"] == pytest.approx(lib["chance"])


def test_span_means_and_cosine_relevance():
    H = np.array([[[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [5.0, 5.0]]])  # (1, 4, 2)
    labels = np.array([[7, 7, 2, 7]])
    mask = np.array([[True, True, True, False]])  # the last unit is padding
    U, found = claims.span_means(H, labels, mask, np.array([[7, 2, 9, -1]]))
    np.testing.assert_allclose(U[0], [[2.0, 0.0], [0.0, 2.0], [0.0, 0.0], [0.0, 0.0]])
    assert found.tolist() == [[True, True, False, False]]
    target = np.array([[[0.0, 1.0], [2.0, 0.1], [1.0, 1.0]]])
    rel = claims.cosine_relevance(U[:, :2], target, np.array([[True, True, False]]))
    ref = np.array([[[0.0, 2 / np.hypot(2, 0.1), -np.inf], [1.0, 0.1 / np.hypot(2, 0.1), -np.inf]]])
    np.testing.assert_allclose(rel, ref)


def test_pointing_game_hand_made():
    # a 2 x 3 grid of 8-pixel patches; centres at (4, 4), (4, 12), (4, 20), (12, 4), ...
    boxes = np.array([[[3, 9, 11, 17], [8, 0, 16, 8], [-1, -1, -1, -1]]])
    best = np.array([[1, 0, 0]])  # centre (4, 12) in box 0: hit; centre (4, 4) not in box 1: miss
    found = np.array([[True, True, True]])
    out = claims.pointing_game(best, boxes, found, (2, 3), 8)
    assert out["accuracy"] == 0.5 and out["n"] == 2
    assert out["chance"] == pytest.approx(1 / 6)  # each 8x8 box holds exactly one patch centre


def test_pointing_game_matches_brute_force():
    rng = np.random.default_rng(3)
    rows, cols, p = 3, 5, 4
    B, L = 7, 2
    tops, lefts = rng.integers(0, rows * p - 8 + 1, size=(B, L)), rng.integers(0, cols * p - 8 + 1, size=(B, L))
    boxes = np.stack([tops, lefts, tops + 8, lefts + 8], axis=-1)
    best = rng.integers(0, rows * cols, size=(B, L))
    found = rng.random((B, L)) < 0.7
    out = claims.pointing_game(best, boxes, found, (rows, cols), p)
    hits, shares = [], []
    for b in range(B):
        for l in range(L):
            if not found[b, l]:
                continue
            t, le, bo, r = boxes[b, l]
            inside = [t <= (u // cols) * p + p / 2 < bo and le <= (u % cols) * p + p / 2 < r
                      for u in range(rows * cols)]
            hits.append(inside[best[b, l]])
            shares.append(np.mean(inside))
    assert out["accuracy"] == pytest.approx(np.mean(hits))
    assert out["chance"] == pytest.approx(np.mean(shares))


# ------------------------------------------------------------------ codes and concepts
def test_transfer_accuracy_hand_made():
    # rows: concepts 0, 1, background; columns: codes 0..3
    a = np.array([[5, 0, 0, 0],
                  [0, 4, 1, 0],
                  [0, 0, 9, 0]])   # a names code 0 -> 0, code 1 -> 1, code 2 -> background, code 3 -> nothing
    b = np.array([[3, 0, 1, 2],
                  [0, 2, 0, 0],
                  [1, 0, 0, 0]])
    out = claims.transfer_accuracy(a, b)
    assert out["a_to_b"] == pytest.approx((3 + 2) / 8)  # b's concept units: 6 of concept 0, 2 of concept 1
    # b names code 0 -> 0, code 1 -> 1, code 2 -> 0, code 3 -> 0; a's concept units: 5 + 5
    assert out["b_to_a"] == pytest.approx((5 + 4) / 10)
    assert out["mean"] == pytest.approx(0.5 * (5 / 8 + 9 / 10))


def test_transfer_accuracy_matches_brute_force():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 4, size=(5, 7)), rng.integers(0, 4, size=(5, 7))
    a[:, 6] = 0  # a code a never uses names nothing

    def brute(src, dst):
        correct = total = 0
        for c in range(dst.shape[0] - 1):
            for k in range(dst.shape[1]):
                total += dst[c, k]
                if src[:, k].sum() > 0 and int(np.argmax(src[:, k])) == c:
                    correct += dst[c, k]
        return correct / total

    out = claims.transfer_accuracy(a, b)
    assert out["a_to_b"] == pytest.approx(brute(a, b))
    assert out["b_to_a"] == pytest.approx(brute(b, a))


def test_kmeans_finds_separated_clusters_and_assigns_codes():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    X = (centres[rng.integers(0, 3, size=300)] + 0.1 * rng.normal(size=(300, 2))).astype(np.float32)
    H, M = X.reshape(30, 10, 2), np.ones((30, 10), dtype=bool)
    E = claims.kmeans_codebook(H, M, 3, rng=0)
    assert sorted(map(tuple, np.round(E).astype(int))) == [(0, 0), (0, 10), (10, 0)]
    idx = claims.assign_codes(H, M, E)
    ref = np.argmin(((H[..., None, :] - E) ** 2).sum(-1), axis=-1)
    np.testing.assert_array_equal(idx, ref)
    M[0, :5] = False
    assert (claims.assign_codes(H, M, E)[0, :5] == 0).all()


def test_kmeans_is_seeded():
    rng = np.random.default_rng(2)
    H = rng.normal(size=(4, 20, 3))
    E1 = claims.kmeans_codebook([H, H[:2]], [None, None], 5, rng=7)
    E2 = claims.kmeans_codebook([H, H[:2]], [None, None], 5, rng=7)
    np.testing.assert_array_equal(E1, E2)
    with pytest.raises(ValueError, match="K"):
        claims.kmeans_codebook(H[:1, :2], None, 5, rng=0)


def test_localize_skips_a_sample_with_no_valid_target_unit():
    """The minimal case the API fuzz found in localization_accuracy: a padded unit is no hit."""
    from minivq.metrics.claims import localize
    rel = np.full((1, 1, 2), -np.inf)
    out = localize(rel, np.array([[3]]), np.array([[True]]), np.array([[3, 3]]), np.array([[False, False]]))
    assert out["n"] == 0 and np.isnan(out["accuracy"]) and out["best_unit"].tolist() == [[-1]]


def test_assign_codes_names_a_codebook_of_the_wrong_width():
    from minivq.metrics.claims import assign_codes
    with pytest.raises(ValueError, match=r"E must have shape \(K >= 1, D = 3\) to match H \(1, 2, 3\), got \(4, 2\)"):
        assign_codes(np.zeros((1, 2, 3)), np.ones((1, 2), bool), np.zeros((4, 2)))
