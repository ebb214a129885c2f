"""Fuzz of the evaluation metrics (RET, LOC, CC, VQ-7): results against loop references written
here, or a ValueError/TypeError naming the argument as the caller spelled it (issue 10)."""
from collections import Counter

import numpy as np
import pytest
from fuzz.oracle import WrongResult, arr, equal, integer, need, num
from fuzz.runner import Spec, run_spec
from fuzz.values import dims, floats, ints, mask, probs
from hypothesis import strategies as st

from minivq import metrics


def same(r, ref, what="result"):
    """Nested dicts of floats and arrays: equal (floats within 1e-12, NaN equal to NaN)."""
    if isinstance(ref, dict):
        if not isinstance(r, dict) or r.keys() != ref.keys():
            raise WrongResult(f"{what}: keys {sorted(r) if isinstance(r, dict) else r!r} != {sorted(ref)}")
        for k in ref:
            same(r[k], ref[k], f"{what}[{k!r}]")
    elif isinstance(ref, float):
        if not (isinstance(r, float) and (r == ref or abs(r - ref) <= 1e-12 or (np.isnan(r) and np.isnan(ref)))):
            raise WrongResult(f"{what}: {r!r} != {ref!r}")
    else:
        equal(r, ref, what)


def scores(a, name):
    S = arr(a[name], name, "r", ndim=2)
    need(S.shape[0] == S.shape[1] and S.shape[0] >= 1, name)
    return S


def ks_of(v):
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        v = (v,)
    need(isinstance(v, (tuple, list)) and len(v) >= 1, "ks")
    return tuple(integer(k, "ks", 1) for k in v)


# ----------------------------------------------------------------------------- RET
def ranks_ref(S):
    B = len(S)
    ab = [1 + sum(S[i, j] >= S[i, i] for j in range(B) if j != i) for i in range(B)]
    ba = [1 + sum(S[i, j] >= S[j, j] for i in range(B) if i != j) for j in range(B)]
    return np.array(ab, np.int64), np.array(ba, np.int64)


def recall_ref(ranks, ks):
    return {**{f"R@{k}": float(np.mean(ranks <= k)) for k in ks}, "median_rank": float(np.median(ranks))}


def draw_S(data, name="S"):
    B, = dims(data, "B", high=5)
    return {name: floats(data, (B, B), data.draw(st.sampled_from([np.float32, np.float64, np.int64])))}


def expect_ranks(a):
    ref = ranks_ref(scores(a, "S"))
    return lambda r: [equal(x, y) for x, y in zip(r, ref, strict=True)]


def draw_recall(data):
    B, = dims(data, "B")
    return {"ranks": ints(data, (B,), 1, B + 1), "ks": data.draw(st.sampled_from([(1, 5, 10), (2,), 3]))}


def expect_recall(a):
    ranks = arr(a["ranks"], "ranks", "i", ndim=1)
    need(ranks.size >= 1 and ranks.min() >= 1, "ranks")
    ref = recall_ref(ranks, ks_of(a["ks"]))
    return lambda r: same(r, ref)


def metrics_ref(S, ks):
    ab, ba = ranks_ref(S)
    return {"a2b": recall_ref(ab, ks), "b2a": recall_ref(ba, ks),
            "mean_R@1": 0.5 * (float(np.mean(ab <= 1)) + float(np.mean(ba <= 1)))}


def draw_metrics(data):
    return {**draw_S(data), "ks": data.draw(st.sampled_from([(1, 5, 10), (5,), (2, 3)]))}


def expect_metrics(a):
    ref = metrics_ref(scores(a, "S"), ks_of(a["ks"]))
    return lambda r: same(r, ref)


def draw_report(data):
    S = draw_S(data)["S"].astype(np.float64)
    which = data.draw(st.sampled_from(["both", "S", "S_code"]))
    return {"S": S if which != "S_code" else None, "S_code": floats(data, S.shape) if which != "S" else None,
            "lambda_r": data.draw(st.sampled_from([1.0, 0.3, 0])), "ks": (1, 5)}


def expect_report(a):
    S = None if a["S"] is None else scores(a, "S")
    Sc = None if a["S_code"] is None else scores(a, "S_code")
    need(S is None or Sc is None or S.shape == Sc.shape, "S_code", "S")
    lam, ks = num(a["lambda_r"], "lambda_r"), ks_of(a["ks"])
    ref = {}
    if S is not None:
        ref["summary"] = metrics_ref(S, ks)
    if Sc is not None:
        ref["code"] = metrics_ref(Sc, ks)
    if S is not None and Sc is not None:
        with np.errstate(all="ignore"):
            combined = S + lam * Sc
        need(np.isfinite(combined).all(), "lambda_r")
        ref["combined"] = metrics_ref(combined, ks)
    return lambda r: same(r, ref)


def draw_ceiling(data):
    B, L = dims(data, "B", "L")
    return {"concepts": ints(data, (B, L), -1, 4)}


def expect_ceiling(a):
    c = arr(a["concepts"], "concepts", "i", ndim=2)
    need(len(c) >= 1, "concepts")
    keys = [frozenset(int(x) for x in row if x >= 0) for row in c]
    n = Counter(keys)
    ref = float(np.mean([1.0 / n[k] for k in keys]))
    return lambda r: same(r, ref)


# ----------------------------------------------------------------------------- LOC
def draw_units(data):
    B, T, K, L = dims(data, "B", "T", "K", "L")
    return B, T, K, L, probs(data, (B, T, K)), ints(data, (B, T), -1, 3), mask(data, (B, T), False)


def units_args(a, names):
    p = arr(a[names[0]], names[0], ndim=3)
    need((p >= 0).all(), names[0])
    mask_ = arr(a[names[2]], names[2], "b", shape=p.shape[:2])
    labels = None
    if names[1]:
        labels = arr(a[names[1]], names[1], "i", shape=p.shape[:2])
        need(labels.size == 0 or labels.min() >= -1, names[1])
    return p, labels, mask_


def draw_concepts(data):
    B, T, K, L, p, labels, m = draw_units(data)
    return {"p": p, "labels": labels, "mask": m, "concepts": ints(data, (B, L), -1, 3)}


def expect_concepts(a):
    p, labels, m = units_args(a, ("p", "labels", "mask"))
    c = arr(a["concepts"], "concepts", "i", ndim=2)
    need(c.shape[0] == p.shape[0], "concepts")
    B, L = c.shape
    P, found = np.zeros((B, L, p.shape[2])), np.zeros((B, L), bool)
    for b in range(B):
        for i in range(L):
            sel = [t for t in range(p.shape[1]) if m[b, t] and labels[b, t] == c[b, i] and c[b, i] >= 0]
            found[b, i] = bool(sel)
            if sel:
                P[b, i] = np.mean(p[b, sel], axis=0)

    def check(r):
        if not np.allclose(r[0], P, rtol=1e-6, atol=1e-7):
            raise WrongResult(f"P {r[0]} != {P}")
        equal(r[1], found)
    return check


def query_args(a, p):
    Pq = arr(a["P_query"], "P_query", ndim=3)
    need((Pq >= 0).all(), "P_query")
    need(Pq.shape[0] == p.shape[0] and Pq.shape[2] == p.shape[2], "P_query", "p_target")
    need(Pq.dtype == p.dtype, "P_query", "p_target")
    return Pq


def draw_relevance(data):
    B, T, K, L, p, labels, m = draw_units(data)
    return {"P_query": probs(data, (B, L, K)), "p_target": p, "target_mask": m}


def expect_relevance(a):
    p, _, m = units_args(a, ("p_target", None, "target_mask"))
    Pq = query_args(a, p)
    ref = np.where(m[:, None, :], np.einsum("blk,btk->blt", Pq, p), -np.inf)

    def check(r):
        if not (isinstance(r, np.ndarray) and r.shape == ref.shape and np.allclose(r, ref, rtol=1e-6, atol=1e-7)):
            raise WrongResult(f"relevance {r} != {ref}")
    return check


def draw_localization(data):
    B, T, K, L, p, labels, m = draw_units(data)
    return {"P_query": probs(data, (B, L, K)), "query_concepts": ints(data, (B, L), -1, 3),
            "found": mask(data, (B, L), False), "p_target": p, "target_labels": labels, "target_mask": m}


def expect_localization(a):
    p, labels, m = units_args(a, ("p_target", "target_labels", "target_mask"))
    Pq = query_args(a, p)
    qc = arr(a["query_concepts"], "query_concepts", "i", shape=Pq.shape[:2])
    found = arr(a["found"], "found", "b", shape=Pq.shape[:2])
    hits, chances, best = [], [], np.full(Pq.shape[:2], -1, np.int64)
    for b in range(Pq.shape[0]):
        valid = np.flatnonzero(m[b])
        for i in range(Pq.shape[1]):
            if not valid.size:
                continue
            rel = Pq[b, i] @ p[b, valid].T
            best[b, i] = valid[int(np.argmax(rel))]
            if found[b, i] and qc[b, i] >= 0:
                hits.append(labels[b, best[b, i]] == qc[b, i])
                chances.append(np.mean(labels[b, valid] == qc[b, i]))

    def check(r):
        if r["n"] != len(hits):
            raise WrongResult(f"n {r['n']} != {len(hits)}")
        if hits:
            same(r["accuracy"], float(np.mean(hits)), "accuracy")
            same(r["chance"], float(np.mean(chances)), "chance")
            valid_best = best >= 0  # argmax ties may pick another unit of equal relevance
            if not (r["best_unit"][~valid_best] == -1).all():
                raise WrongResult("best_unit must be -1 where the sample has no valid unit")
    return check


SPECS = [
    Spec("retrieval_ranks", metrics.retrieval_ranks, draw_S, expect_ranks),
    Spec("recall_at_k", metrics.recall_at_k, draw_recall, expect_recall),
    Spec("retrieval_metrics", metrics.retrieval_metrics, draw_metrics, expect_metrics),
    Spec("retrieval_report", metrics.retrieval_report, draw_report, expect_report),
    Spec("set_ceiling_r1", metrics.set_ceiling_r1, draw_ceiling, expect_ceiling),
    Spec("concept_distributions", metrics.concept_distributions, draw_concepts, expect_concepts),
    Spec("relevance", metrics.relevance, draw_relevance, expect_relevance),
    Spec("localization_accuracy", metrics.localization_accuracy, draw_localization, expect_localization),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_fuzz(spec):
    run_spec(spec)

