"""Hidden checks of the contrastive and code-matching losses (MMS, CM-1 ... CM-4) at fresh shapes and weights."""
import math

import numpy as np
from _draw import distributions, integer, mask, ok, setup

from minivq.contrastive import info_nce_backward, info_nce_forward
from minivq.gradcheck import check_backward
from minivq.matching import (code_distribution_backward, code_distribution_forward, code_similarity_backward,
                             code_similarity_forward)

def test_info_nce_backward_at_a_fresh_size_and_margin(request):
    rng, note = setup(request)
    for _ in range(3):
        B, margin, scale = integer(rng, 1, 7), round(float(rng.uniform(-0.5, 0.5)), 3), float(rng.uniform(0.5, 4))
        note(B=B, margin=margin, scale=scale)
        draw = lambda r: {"S": scale * r.standard_normal((B, B)), "margin": margin}  # noqa: E731
        ok(check_backward(info_nce_forward, info_nce_backward, draw, rng=rng), f"B={B}, margin={margin}")


def test_code_similarity_pairs_i_with_j_at_fresh_sizes(request):
    rng, note = setup(request)
    for _ in range(3):
        B_a, B_b, K = integer(rng, 2, 6), integer(rng, 2, 6), integer(rng, 1, 6)
        note(B_a=B_a, B_b=B_b, K=K)
        P_a, P_b = distributions(rng, B_a, K), distributions(rng, B_b, K)
        S, _ = code_similarity_forward(P_a, P_b, eps=1e-10)
        want = np.array([[sum(P_a[i, k] * math.log(P_b[j, k] + 1e-10) + P_b[j, k] * math.log(P_a[i, k] + 1e-10)
                              for k in range(K)) for j in range(B_b)] for i in range(B_a)])
        assert S.shape == want.shape, f"S has shape {S.shape}, expected (B_a, B_b) = {want.shape}"
        np.testing.assert_allclose(S, want, rtol=1e-10, err_msg=f"S^code (CM-3), B_a={B_a}, B_b={B_b}, K={K}")


def test_code_similarity_backward_at_fresh_sizes(request):
    rng, note = setup(request)
    for _ in range(3):
        B_a, B_b, K = integer(rng, 1, 5), integer(rng, 1, 5), integer(rng, 1, 6)
        note(B_a=B_a, B_b=B_b, K=K)
        draw = lambda r: {"P_a": distributions(r, B_a, K), "P_b": distributions(r, B_b, K)}  # noqa: E731
        ok(check_backward(code_similarity_forward, code_similarity_backward, draw, rng=rng),
            f"B_a={B_a}, B_b={B_b}, K={K}")


def test_code_distribution_backward_at_fresh_sizes_and_temperatures(request):
    rng, note = setup(request)
    # K, D >= 2: with one code, or in 1-D beyond every code, P does not move with h (a zero gradient
    # that finite differences see only as rounding noise)
    for squared in (False, True, False):
        B, T, D, K = integer(rng, 1, 4), integer(rng, 1, 5), integer(rng, 2, 4), integer(rng, 2, 6)
        tau = round(float(rng.uniform(0.3, 2.0)), 3)
        note(B=B, T=T, D=D, K=K, tau=tau, squared=squared)
        draw = lambda r: {"H": r.standard_normal((B, T, D)), "M": mask(r, B, T),  # noqa: E731
                          "E": r.standard_normal((K, D))}
        forward = lambda H, M, E: code_distribution_forward(H, M, E, tau, squared)  # noqa: E731
        ok(check_backward(forward, code_distribution_backward, draw, wrt=["H", "E"], rng=rng),
            f"B={B} T={T} D={D} K={K} tau={tau} squared={squared}")
