"""Fuzz of the code-concept metrics (CC) and usage per modality (VQ-7): loop references
written here, or a ValueError/TypeError naming the argument (issue 10). Machinery: tests/fuzz/."""
import numpy as np
import pytest
from fuzz.oracle import WrongResult, arr, boolean, equal, integer, need
from fuzz.runner import Spec, run_spec
from fuzz.values import dims, ints, mask
from hypothesis import strategies as st
from test_fuzz_metrics import same

from minivq import metrics


def draw_counts_args(data):
    B, T = dims(data, "B", "T")
    K, C = data.draw(st.integers(1, 5)), data.draw(st.integers(1, 4))
    return {"idx": ints(data, (B, T), 0, K), "labels": ints(data, (B, T), -1, C), "mask": mask(data, (B, T), False),
            "K": K, "n_concepts": C}


def expect_counts(a):
    idx = arr(a["idx"], "idx", "i")
    labels = arr(a["labels"], "labels", "i", shape=idx.shape, also=("idx",))
    m = arr(a["mask"], "mask", "b", shape=idx.shape, also=("idx",))
    K = integer(a["K"], "K", 1, 1 << 24)
    C = integer(a["n_concepts"], "n_concepts", 1, 1 << 24)
    codes, concepts = idx[m], labels[m]
    need(codes.size == 0 or (codes.min() >= 0 and codes.max() < K), "idx")
    need(concepts.size == 0 or (concepts.min() >= -1 and concepts.max() < C), "labels")
    ref = np.zeros((C + 1, K), np.int64)
    for k, c in zip(codes, concepts):
        ref[C if c < 0 else c, k] += 1
    return lambda r: equal(r, ref)


def draw_counts(data, name="counts"):
    C, K = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 5))
    return {name: ints(data, (C + 1, K), 0, 4)}


def counts_of(a, name):
    c = arr(a[name], name, "r", ndim=2, finite=True)
    need(c.shape[0] >= 2 and c.shape[1] >= 1, name)
    need((c >= 0).all(), name)
    return c


def draw_purity(data):
    return {**draw_counts(data), "include_background": data.draw(st.booleans())}


def expect_purity(a):
    c = counts_of(a, "counts")
    bg = boolean(a["include_background"], "include_background")
    rows = c if bg else c[:-1]
    majority = [int(np.argmax(c[:, k])) for k in range(c.shape[1])]
    total = rows.sum()
    hit = sum(rows[majority[k], k] for k in range(c.shape[1]) if majority[k] < len(rows))
    ref = float(hit / total) if total else float("nan")
    return lambda r: same(r, ref)


def draw_pair(data):
    a = draw_counts(data, "counts_a")
    return {**a, "counts_b": ints(data, a["counts_a"].shape, 0, 4)}


def pair_of(a):
    ca, cb = counts_of(a, "counts_a"), counts_of(a, "counts_b")
    need(ca.shape == cb.shape, "counts_a", "counts_b")
    return ca, cb


def expect_shared(a):
    ca, cb = pair_of(a)
    ua, ub = ca.sum(0) > 0, cb.sum(0) > 0
    ref = float((ua & ub).sum() / (ua | ub).sum()) if (ua | ub).any() else float("nan")
    return lambda r: same(r, ref)


def expect_agreement(a):
    ca, cb = (c[:-1] for c in pair_of(a))
    top = [np.array([int(np.argmax(row)) if row.sum() > 0 else -1 for row in c], np.int64) for c in (ca, cb)]
    agree = np.array([top[0][c] >= 0 and top[0][c] == top[1][c]
                      and (top[0] == top[0][c]).sum() == 1 and (top[1] == top[0][c]).sum() == 1
                      for c in range(len(ca))], bool)

    def check(r):
        equal(r["top_a"], top[0])
        equal(r["top_b"], top[1])
        equal(r["agree"], agree)
        if r["n_agree"] != int(agree.sum()):
            raise WrongResult(f"n_agree {r['n_agree']} != {agree.sum()}")
    return check


def draw_usage(data):
    K = data.draw(st.integers(1, 5))
    names = data.draw(st.sampled_from([("image",), ("image", "speech")]))
    idx = {m: ints(data, tuple(dims(data, "B", "T")), 0, K) for m in names}
    return {"idx": idx, "masks": {m: mask(data, v.shape) for m, v in idx.items()}, "K": K}


def expect_usage(a):
    K = integer(a["K"], "K", 1, 1 << 24)
    idx, masks = a["idx"], a["masks"]
    need(isinstance(idx, dict) and len(idx) >= 1, "idx")
    need(isinstance(masks, dict) and masks.keys() == idx.keys(), "masks")
    valid = {}
    for m in idx:
        codes = arr(idx[m], f"idx[{m!r}]", "i")
        need(codes.size == 0 or (codes.min() >= 0 and codes.max() < K), f"idx[{m!r}]")
        valid[m] = codes[arr(masks[m], f"masks[{m!r}]", "b", shape=codes.shape, also=(f"idx[{m!r}]",))]
    pooled = np.concatenate(list(valid.values()))
    need(pooled.size >= 1, "masks")

    def usage(codes):
        counts = np.bincount(codes, minlength=K)
        p = counts[counts > 0] / counts.sum()
        return {"counts": counts.astype(np.int64), "perplexity": float(np.exp(-(p * np.log(p)).sum())),
                "fraction_used": float(np.mean(counts > 0))}
    ref = {**{m: usage(v) for m, v in valid.items() if v.size}, "all": usage(pooled)}

    def check(r):
        if r.keys() != ref.keys():
            raise WrongResult(f"keys {sorted(r)} != {sorted(ref)}")
        for m in ref:
            equal(r[m]["counts"], ref[m]["counts"])
            for k in ("perplexity", "fraction_used"):
                if abs(r[m][k] - ref[m][k]) > 1e-9 * max(1, ref[m][k]):
                    raise WrongResult(f"{m} {k}: {r[m][k]} != {ref[m][k]}")
    return check


SPECS = [
    Spec("code_concept_counts", metrics.code_concept_counts, draw_counts_args, expect_counts),
    Spec("code_purity", metrics.code_purity, draw_purity, expect_purity),
    Spec("shared_code_fraction", metrics.shared_code_fraction, draw_pair, expect_shared),
    Spec("cross_modal_agreement", metrics.cross_modal_agreement, draw_pair, expect_agreement),
    Spec("usage_per_modality", metrics.usage_per_modality, draw_usage, expect_usage),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_fuzz(spec):
    run_spec(spec)
