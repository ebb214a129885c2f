"""Tests of minivq.matching: Cross-Modal Code Matching (METHOD.md CM-1..4)."""
import math

import numpy as np
import pytest

from minivq.contrastive import info_nce_backward, info_nce_forward
from minivq.gradcheck import check_backward
from minivq.layers import masked_mean_backward, masked_mean_forward
from minivq.matching import (
    cmcm_loss, code_distribution_backward, code_distribution_forward,
    code_similarity_backward, code_similarity_forward,
)

# (B, T, D, K): the edge cases B = 1, T = 1, K = 1 and general shapes
SHAPES = [(1, 1, 3, 4), (1, 4, 2, 3), (3, 1, 3, 5), (2, 3, 4, 1), (3, 5, 4, 6)]


def draw_features(rng, B, T, D, dtype=np.float64):
    """Features and a mask with at least one valid unit per sample."""
    M = rng.random((B, T)) < 0.6
    M[:, 0] = True
    return rng.standard_normal((B, T, D)).astype(dtype), M


def draw_distributions(rng, B, K):
    """Rows of a softmax, kept away from 0 so finite differences of log stay accurate."""
    Z = 0.5 * rng.standard_normal((B, K))
    return np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)


def code_distribution_reference(H, M, E, tau, squared):
    """(CM-1, CM-2) unit by unit, the distance taken directly, not by the expansion."""
    B, T, _ = H.shape
    P = np.zeros((B, len(E)))
    for b in range(B):
        units = [H[b, t] for t in range(T) if M[b, t]]
        for h in units:
            sq = np.array([np.sum((h - e) ** 2) for e in E])
            d = sq if squared else np.sqrt(np.maximum(sq, 1e-12))
            logits = -d / tau
            p = np.exp(logits - logits.max())
            P[b] += p / p.sum() / len(units)
    return P


def code_distribution_forward_reference(H, M, E, tau, squared):
    """(CM-1, CM-2) unit-major, in the order of the equations, with the masked mean of minivq.layers;
    returns P and what the backward reference needs."""
    X = H[M]  # (N, D)
    sq = (X * X).sum(1)[:, None] - 2.0 * (X @ E.T) + (E * E).sum(1)[None, :]  # (N, K)
    d = sq if squared else np.sqrt(np.maximum(sq, 1e-12))
    logits = -d / tau
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)  # (N, K)
    p_units = np.zeros(M.shape + (len(E),), dtype=H.dtype)
    p_units[M] = p
    P, pool_cache = masked_mean_forward(p_units, M)  # (B, K)
    return P, (M, X, E, sq, d, p, tau, squared, pool_cache)


def code_distribution_backward_reference(dP, cache):
    """The reverse of :func:`code_distribution_forward_reference`, unit-major."""
    M, X, E, sq, d, p, tau, squared, pool_cache = cache
    dp = masked_mean_backward(dP, pool_cache)[M]  # (N, K)
    dlogits = p * (dp - np.einsum("nk,nk->n", p, dp)[:, None])
    dsq = dlogits / -tau if squared else dlogits / -tau / (2.0 * d) * (sq > 1e-12)
    dX = 2.0 * (dsq.sum(axis=1)[:, None] * X - dsq @ E)
    dE = 2.0 * (dsq.sum(axis=0)[:, None] * E - dsq.T @ X)
    dH = np.zeros(M.shape + X.shape[1:], dtype=X.dtype)
    dH[M] = dX
    return dH, dE


def code_similarity_reference(P_a, P_b, eps):
    """(CM-3) pair by pair: S_ij = sum_k P_a[i,k] log(P_b[j,k] + eps) + P_b[j,k] log(P_a[i,k] + eps)."""
    S = np.zeros((len(P_a), len(P_b)))
    for i in range(len(P_a)):
        for j in range(len(P_b)):
            for k in range(P_a.shape[1]):
                S[i, j] += P_a[i, k] * math.log(P_b[j, k] + eps) + P_b[j, k] * math.log(P_a[i, k] + eps)
    return S


# ------------------------------------------------------------------ CM-1, CM-2
@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("tau", [1.0, 0.4])
def test_code_distribution_matches_the_loop_reference(squared, tau):
    rng = np.random.default_rng(0)
    H, M = draw_features(rng, 3, 5, 4)
    E = rng.standard_normal((6, 4))
    P, _ = code_distribution_forward(H, M, E, tau, squared)
    np.testing.assert_allclose(P, code_distribution_reference(H, M, E, tau, squared), rtol=1e-12)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=1e-14)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("squared", [False, True])
def test_code_distribution_gradient(shape, squared):
    B, T, D, K = shape

    def draw(rng):
        H, M = draw_features(rng, B, T, D)
        return {"H": H, "M": M, "E": rng.standard_normal((K, D))}

    forward = lambda H, M, E: code_distribution_forward(H, M, E, 0.7, squared)  # noqa: E731
    errors = check_backward(forward, code_distribution_backward, draw, rng=1)
    for name, err in errors.items():
        assert err < 1e-7, f"d{name} rel_error {err:.1e}, expect < 1e-7"


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("squared", [False, True])
def test_code_major_layout_equals_the_unit_major_reference(dtype, tol, squared):
    """CM-1 runs code-major, (K, N), for speed: the same P, dH and dE as the equations unit-major."""
    rng = np.random.default_rng(11 + squared)
    H, M = draw_features(rng, 6, 9, 5, dtype)
    E = rng.normal(size=(7, 5)).astype(dtype)
    H[2, 3], M[2, 3] = E[4], True  # a unit on a codeword: its distance is rounding noise near the floor
    P0, c0 = code_distribution_forward_reference(H, M, E, 0.3, squared)
    P1, c1 = code_distribution_forward(H, M, E, 0.3, squared)
    assert P1.dtype == dtype
    np.testing.assert_allclose(P1, P0, rtol=tol, atol=tol)
    dP = rng.normal(size=P0.shape).astype(dtype)
    for g0, g1 in zip(code_distribution_backward_reference(dP, c0), code_distribution_backward(dP, c1)):
        assert g1.dtype == dtype
        np.testing.assert_allclose(g1, g0, rtol=tol, atol=tol * np.abs(g0).max())


def test_code_distribution_ignores_padding():
    rng = np.random.default_rng(2)
    H, M = draw_features(rng, 3, 6, 2)
    E = rng.standard_normal((4, 2))
    P, cache = code_distribution_forward(H, M, E)
    P2, cache2 = code_distribution_forward(np.where(M[..., None], H, 1e3), M, E)  # garbage padding
    np.testing.assert_array_equal(P2, P)
    dP = rng.standard_normal(P.shape)
    dH, dE = code_distribution_backward(dP, cache)
    dH2, dE2 = code_distribution_backward(dP, cache2)
    np.testing.assert_array_equal(dH2, dH)
    np.testing.assert_array_equal(dE2, dE)
    assert not dH[~M].any(), "padded units must get zero gradient"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unit_on_a_codeword_has_finite_gradients(dtype):
    """d = sqrt(max(||h - e||^2, 1e-12)) keeps 1/(2d) finite at h = e (CM-1)."""
    rng = np.random.default_rng(3)
    E = rng.standard_normal((5, 3)).astype(dtype)
    H = E[[0, 2, 4, 1]].reshape(2, 2, 3).copy()  # every unit exactly on a codeword
    P, cache = code_distribution_forward(H, None, E)
    dH, dE = code_distribution_backward(np.ones_like(P), cache)
    assert np.isfinite(P).all() and np.isfinite(dH).all() and np.isfinite(dE).all()


# ------------------------------------------------------------------ CM-3
@pytest.mark.parametrize("B_a, B_b, K", [(1, 1, 1), (3, 3, 4), (2, 5, 3)])
def test_code_similarity_matches_the_pairwise_loop(B_a, B_b, K):
    rng = np.random.default_rng(4)
    P_a, P_b = draw_distributions(rng, B_a, K), draw_distributions(rng, B_b, K)
    P_b[0, 0] = 0.0  # log(0 + eps) is finite
    S, _ = code_similarity_forward(P_a, P_b, eps=1e-10)
    np.testing.assert_allclose(S, code_similarity_reference(P_a, P_b, 1e-10), rtol=1e-12)


def test_code_similarity_pairing_pitfall():
    """CMG's P_a log(P_b)^T + P_b log(P_a)^T pairs its second term (j, i): same diagonal, different off-diagonal."""
    rng = np.random.default_rng(5)
    P_a, P_b = draw_distributions(rng, 4, 6), draw_distributions(rng, 4, 6)
    S, _ = code_similarity_forward(P_a, P_b)
    cmg = P_a @ np.log(P_b + 1e-10).T + P_b @ np.log(P_a + 1e-10).T
    np.testing.assert_allclose(np.diag(S), np.diag(cmg), rtol=1e-13)
    off = ~np.eye(4, dtype=bool)
    assert np.abs(S - cmg)[off].min() > 1e-3


@pytest.mark.parametrize("B_a, B_b, K", [(1, 1, 1), (1, 3, 2), (3, 3, 4), (4, 2, 5)])
def test_code_similarity_gradient(B_a, B_b, K):
    draw = lambda rng: {"P_a": draw_distributions(rng, B_a, K), "P_b": draw_distributions(rng, B_b, K)}  # noqa: E731
    errors = check_backward(code_similarity_forward, code_similarity_backward, draw, rng=6)
    for name, err in errors.items():
        assert err < 1e-7, f"d{name} rel_error {err:.1e}, expect < 1e-7"


# ------------------------------------------------------------------ CM-4
def draw_pairs(rng, B, T_a, T_b, D, K, dtype=np.float64):
    H_a, M_a = draw_features(rng, B, T_a, D, dtype)
    H_b, M_b = draw_features(rng, B, T_b, D, dtype)
    return {"H_a": H_a, "M_a": M_a, "H_b": H_b, "M_b": M_b, "E": rng.standard_normal((K, D)).astype(dtype)}


@pytest.mark.parametrize("B, T_a, T_b, D, K", [(1, 1, 1, 2, 3), (2, 1, 3, 3, 1), (3, 4, 2, 3, 5), (4, 3, 5, 2, 6)])
def test_cmcm_gradient(B, T_a, T_b, D, K):
    forward = lambda *args: cmcm_loss(*args, tau=0.8)  # noqa: E731
    backward = lambda dout, g: (dout * g["H_a"], dout * g["H_b"], dout * g["E"])  # noqa: E731
    errors = check_backward(forward, backward, lambda rng: draw_pairs(rng, B, T_a, T_b, D, K), rng=7)
    for name, err in errors.items():
        assert err < 1e-7, f"d{name} rel_error {err:.1e}, expect < 1e-7"


def test_cmcm_composes_the_pieces():
    """(CM-4) InfoNCE on S^code, both directions averaged; E gets gradient from both modalities."""
    args = draw_pairs(np.random.default_rng(8), 4, 5, 3, 3, 6)
    loss, grads = cmcm_loss(*args.values())
    P_a, _ = code_distribution_forward(args["H_a"], args["M_a"], args["E"])
    P_b, _ = code_distribution_forward(args["H_b"], args["M_b"], args["E"])
    S = code_similarity_reference(P_a, P_b, 1e-10)
    rows = np.mean([-(S[i, i] - np.log(np.exp(S[i]).sum())) for i in range(4)])
    cols = np.mean([-(S[j, j] - np.log(np.exp(S[:, j]).sum())) for j in range(4)])
    assert loss == pytest.approx(0.5 * (rows + cols), rel=1e-12)
    assert set(grads) == {"H_a", "H_b", "E"}
    # E's gradient is the sum of what flows through P^a and through P^b
    dS = info_nce_backward(1.0, info_nce_forward(S)[1])
    dP_a, dP_b = code_similarity_backward(dS, code_similarity_forward(P_a, P_b)[1])
    _, dE_a = code_distribution_backward(dP_a, code_distribution_forward(args["H_a"], args["M_a"], args["E"])[1])
    _, dE_b = code_distribution_backward(dP_b, code_distribution_forward(args["H_b"], args["M_b"], args["E"])[1])
    np.testing.assert_allclose(grads["E"], dE_a + dE_b, rtol=1e-10, atol=1e-14)
    assert np.abs(dE_a).max() > 0 and np.abs(dE_b).max() > 0


def test_cmcm_k1_is_chance():
    """With one code every sample has P = [1]: S^code is constant and the loss is log B."""
    args = draw_pairs(np.random.default_rng(9), 5, 3, 4, 2, 1)
    loss, grads = cmcm_loss(*args.values())
    assert loss == pytest.approx(math.log(5))
    assert all(np.abs(g).max() < 1e-12 for g in grads.values())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cmcm_finite_at_large_scale(dtype):
    args = draw_pairs(np.random.default_rng(10), 6, 5, 4, 8, 16, dtype)
    for name in ("H_a", "H_b", "E"):
        args[name] = args[name] * dtype(1e6)
    loss, grads = cmcm_loss(*args.values())
    assert np.isfinite(loss)
    for name, g in grads.items():
        assert np.isfinite(g).all(), f"grads[{name!r}] not finite at scale 1e6 ({dtype.__name__})"
        assert g.dtype == dtype


def test_errors_name_the_argument():
    args = draw_pairs(np.random.default_rng(11), 2, 3, 3, 2, 4)
    M_empty = args["M_a"].copy()
    M_empty[1] = False
    with pytest.raises(ValueError, match="M"):
        code_distribution_forward(args["H_a"], M_empty, args["E"])
    with pytest.raises(ValueError, match="H"):
        code_distribution_forward(args["H_a"][0], args["M_a"][0], args["E"])
    with pytest.raises(TypeError, match="E"):
        code_distribution_forward(args["H_a"], args["M_a"], args["E"].astype(np.float32))
    with pytest.raises(ValueError, match="tau"):
        code_distribution_forward(args["H_a"], args["M_a"], args["E"], tau=0.0)
    with pytest.raises(ValueError, match="P_a"):
        code_similarity_forward(np.ones((2, 3)) / 3, np.ones((2, 4)) / 4)
    with pytest.raises(ValueError, match="H_a"):
        cmcm_loss(args["H_a"][:1], args["M_a"][:1], args["H_b"], args["M_b"], args["E"])


def test_more_errors_name_the_argument():
    args = draw_pairs(np.random.default_rng(13), 2, 3, 3, 2, 4)
    H_a, M_a, H_b, M_b, E = args.values()
    P, cache = code_distribution_forward(H_a, M_a, E)
    with pytest.raises(ValueError, match="dP"):
        code_distribution_backward(np.ones((2, 3)), cache)
    with pytest.raises(TypeError, match="dP"):
        code_distribution_backward(np.ones((2, 4), dtype=np.float32), cache)
    with pytest.raises(TypeError, match="P_b"):
        code_similarity_forward(P, P.astype(np.float32))
    with pytest.raises(ValueError, match="P_a"):
        code_similarity_forward(-P, P)
    with pytest.raises(ValueError, match="eps"):
        code_similarity_forward(P, P, eps=0.0)
    with pytest.raises(TypeError, match="H_a"):
        cmcm_loss(H_a.tolist(), M_a, H_b, M_b, E)
    with pytest.raises(TypeError, match="H_b"):
        cmcm_loss(H_a, M_a, H_b.astype(np.float32), M_b, E)
    with pytest.raises(ValueError, match="M_b"):
        cmcm_loss(H_a, M_a, H_b, M_b[:, :2], E)


def test_matches_torch_autograd():
    """An independent autograd implementation of METHOD.md CM-1..4 (direct distances, pair-by-pair S^code)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    for squared in (False, True):
        args = draw_pairs(rng, 4, 5, 3, 3, 6)
        loss, grads = cmcm_loss(*args.values(), tau=0.5, squared=squared)
        t = {k: torch.tensor(v, requires_grad=np.issubdtype(v.dtype, np.floating)) for k, v in args.items()}

        def distribution(H, M):
            rows = []
            for b in range(M.shape[0]):
                sq = ((H[b][M[b]][:, None, :] - t["E"][None]) ** 2).sum(-1)  # (T_b, K)
                d = sq if squared else torch.sqrt(torch.clamp(sq, min=1e-12))
                rows.append(torch.softmax(-d / 0.5, dim=1).mean(0))
            return torch.stack(rows)

        P_a, P_b = distribution(t["H_a"], t["M_a"]), distribution(t["H_b"], t["M_b"])
        S = torch.stack([torch.stack([(P_a[i] * torch.log(P_b[j] + 1e-10)).sum()
                                      + (P_b[j] * torch.log(P_a[i] + 1e-10)).sum() for j in range(4)])
                         for i in range(4)])
        ce, target = torch.nn.functional.cross_entropy, torch.arange(4)
        t_loss = 0.5 * (ce(S, target) + ce(S.T, target))
        t_loss.backward()
        assert loss == pytest.approx(t_loss.item(), rel=1e-12)
        for name in ("H_a", "H_b", "E"):
            np.testing.assert_allclose(grads[name], t[name].grad.numpy(), rtol=1e-9, atol=1e-13)


def test_cmcm_loss_is_exported_at_top_level():
    """Frozen interface: ``minivq.cmcm_loss`` (the lead adds the export to minivq/__init__.py)."""
    import minivq

    assert minivq.cmcm_loss is cmcm_loss


# --- issue 10 regressions: errors name their real cause; dS is checked -------------------------

def test_a_temperature_that_underflows_is_named_and_an_overflow_is_nan():
    """tau = 1e-46 in float32 said "H must be finite, got nan" although H was finite. Distances
    that overflow (over tau, or squared) give NaN with NumPy's warning, never a wrong finite P."""
    rng = np.random.default_rng(20)
    H, E = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((5, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=r"tau must be at least .* in float32 \(it underflows to 0\), got 1e-46"):
        cmcm_loss(H, None, H, None, E, tau=1e-46)
    with pytest.raises(ValueError, match="tau must be at least .* in float64"):
        cmcm_loss(H.astype(np.float64), None, H.astype(np.float64), None, E.astype(np.float64), tau=1e-320)
    with pytest.warns(RuntimeWarning, match="overflow"), np.errstate(invalid="ignore"):  # d / tau = 1e310
        P, _ = code_distribution_forward(H.astype(np.float64) * 1e10, None, E.astype(np.float64), tau=1e-300)
    assert np.isnan(P).all()
    big = rng.standard_normal((2, 3, 4)) * 1e155
    with pytest.warns(RuntimeWarning, match="overflow"), np.errstate(invalid="ignore"):  # ||h - e||^2 = 1e310
        loss, _ = cmcm_loss(big, None, big, None, E.astype(np.float64), squared=True)
    assert np.isnan(loss)
    loss, grads = cmcm_loss(H, None, H, None, E, tau=1e-30)  # tiny but representable: a finite answer
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in grads.values())


def test_code_similarity_checks_eps_and_ds():
    P = draw_distributions(np.random.default_rng(21), 3, 4)
    P[0, 0] = 0.0
    with pytest.raises(ValueError, match=r"eps must be >= 1.18e-38 .*float32"):
        code_similarity_forward(P.astype(np.float32), P.astype(np.float32), eps=1e-50)
    S, cache = code_similarity_forward(P, P)
    with pytest.raises(ValueError, match=r"dS must have shape \(B_a, B_b\) = \(3, 3\)"):
        code_similarity_backward(np.ones((3, 2)), cache)
    with pytest.raises(TypeError, match="dS must have the dtype of P_a"):
        code_similarity_backward(np.ones((3, 3), np.float32), cache)
    with pytest.raises(ValueError, match="dS must be finite"):
        code_similarity_backward(np.full((3, 3), np.nan), cache)
    with pytest.raises(TypeError, match="dS must have dtype float32 or float64"):
        code_similarity_backward(np.ones((3, 3), complex), cache)
    with pytest.warns(RuntimeWarning, match="overflow"):  # 1e307 log(1e307) is beyond float64: inf, not an error
        assert np.isinf(code_similarity_forward(np.full((2, 3), 1e307), np.full((2, 3), 1e307))[0]).all()
    with pytest.raises(TypeError, match="squared must be True or False"):
        code_distribution_forward(np.ones((1, 2, 3)), None, np.ones((2, 3)), squared="no")
