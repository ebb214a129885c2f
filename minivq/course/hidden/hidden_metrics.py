"""Hidden checks of the claims' metrics (LOC, CC) on inputs drawn at grading time."""
import numpy as np
from _draw import distributions, integer, mask, setup

from minivq.metrics.concepts import cross_modal_agreement
from minivq.metrics.localization import relevance


def test_relevance_at_fresh_sizes(request):
    rng, note = setup(request)
    for _ in range(3):
        B, L, T, K = integer(rng, 1, 3), integer(rng, 1, 3), integer(rng, 1, 6), integer(rng, 1, 5)
        note(B=B, L=L, T=T, K=K)
        P = distributions(rng, B * L, K).reshape(B, L, K)
        p = distributions(rng, B * T, K).reshape(B, T, K)
        M = mask(rng, B, T)
        rel = relevance(P, p, M)
        assert rel.shape == (B, L, T), f"relevance has shape {rel.shape}, expected (B, L, T) = {(B, L, T)}"
        for b in range(B):
            for t in range(T):
                for l_ in range(L):
                    want = sum(P[b, l_, k] * p[b, t, k] for k in range(K)) if M[b, t] else -np.inf
                    assert np.isclose(rel[b, l_, t], want, rtol=1e-12) or rel[b, l_, t] == want, \
                        f"rel[{b}, {l_}, {t}] = {rel[b, l_, t]}, expected {want} (B={B} L={L} T={T} K={K})"


def agreement_formula(counts_a, counts_b):
    """(CC) concept by concept: the top codes, and whether they agree one to one."""
    C = counts_a.shape[0] - 1
    top = []
    for counts in (counts_a, counts_b):
        top.append([int(np.argmax(counts[c])) if counts[c].sum() > 0 else -1 for c in range(C)])
    agree = []
    for c in range(C):
        a, b = top[0][c], top[1][c]
        agree.append(a == b and a >= 0 and top[0].count(a) == 1 and top[1].count(b) == 1)
    return top[0], top[1], agree


def test_agreement_at_fresh_counts(request):
    rng, note = setup(request)
    for _ in range(4):
        C, K = integer(rng, 1, 6), integer(rng, 1, 6)
        note(C=C, K=K)
        counts = []
        for _ in range(2):
            c = rng.integers(0, 4, size=(C + 1, K)) * (rng.random((C + 1, K)) < 0.5)
            c[rng.random(C + 1) < 0.2] = 0  # some concepts absent
            counts.append(c)
        got = cross_modal_agreement(*counts)
        top_a, top_b, agree = agreement_formula(*counts)
        what = f"C={C}, K={K}, counts_a={counts[0].tolist()}, counts_b={counts[1].tolist()}"
        assert got["top_a"].tolist() == top_a and got["top_b"].tolist() == top_b, f"top codes, {what}"
        assert got["agree"].tolist() == agree, f"agree {got['agree'].tolist()}, expected {agree}, {what}"
        assert got["n_agree"] == sum(agree), f"n_agree, {what}"
