"""Hidden checks of vector quantization (VQ-2 ... VQ-6, LOSS): fresh shapes, non-unit weights, eps > 0."""
import numpy as np
from _draw import integer, mask, ok, setup

from minivq.gradcheck import check_backward
from minivq.model_check import tiny_config, tiny_inputs
from minivq.model import init_params, loss_forward
from minivq.quantizer import (EMAState, codebook_loss, commitment_loss, ema_init, ema_update, quantize_backward,
                              quantize_forward, restart_dead_codes)


def _unchanged(before, state, what):
    for name, old, now in zip("nmE", before, (state.n, state.m, state.E)):
        np.testing.assert_array_equal(now, old, err_msg=f"{what} changed the state passed in (state.{name})")


def _units(rng):
    shape = tuple(integer(rng, 1, 4) for _ in range(integer(rng, 1, 2))) + (integer(rng, 1, 4),)
    H = rng.standard_normal(shape)
    M = mask(rng, int(np.prod(shape[:-2], dtype=int)) or 1, shape[-2]).reshape(shape[:-1]) if len(shape) > 1 \
        else np.ones(shape[:-1], bool)
    return H, M, rng.standard_normal((integer(rng, 1, 6), shape[-1]))


def test_straight_through_at_fresh_shapes(request):
    rng, note = setup(request)
    for _ in range(3):
        H, _, E = _units(rng)
        note(H=H.shape, K=len(E))
        Q, _, cache = quantize_forward(H, E)
        dQ = rng.standard_normal(Q.shape)
        dH = quantize_backward(dQ, cache)
        assert dH is not dQ, "the straight-through gradient must be a copy of dQ, not dQ itself"
        np.testing.assert_array_equal(dH, dQ, err_msg=f"dH for H of shape {H.shape}")


def test_vq_loss_gradients_at_a_fresh_beta(request):
    rng, note = setup(request)
    for _ in range(3):
        H, M, E = _units(rng)
        beta = round(float(rng.uniform(0.05, 3.0)), 3)
        note(H=H.shape, K=len(E), beta=beta)
        Q, idx, _ = quantize_forward(H, E)
        commit = lambda H: commitment_loss(H, Q, M, beta)  # noqa: E731  Q is a constant: sg(q)
        ok(check_backward(commit, lambda d, dH: d * dH, {"H": H}, rng=rng),
           f"commitment loss, beta {beta}, H {H.shape}")
        code = lambda E: codebook_loss(H, idx, M, E)  # noqa: E731  the codes stay those of the forward
        ok(check_backward(code, lambda d, dE: d * dE, {"E": E.copy()}, rng=rng),
           f"codebook loss, H {H.shape}, K {len(E)}")


def ema_formula(n, m, units, codes, decay, eps):
    """(VQ-5), unit by unit, as METHOD.md writes it."""
    K = len(n)
    c, s = np.zeros(K), np.zeros_like(m)
    for h, k in zip(units, codes):
        c[k] += 1
        s[k] += h
    n, m = decay * n + (1 - decay) * c, decay * m + (1 - decay) * s
    smoothed = (n + eps) / (n.sum() + K * eps) * n.sum()
    return n, m, m / smoothed[:, None]


def _ema_steps(rng, note, steps):
    K, D = integer(rng, 2, 7), integer(rng, 1, 4)
    decay, eps = round(float(rng.uniform(0.5, 0.95)), 3), float(rng.choice([0.5, 0.1, 0.02]))
    note(K=K, D=D, decay=decay, eps=eps, steps=steps)
    state = ema_init(rng.standard_normal((K, D)))
    n, m, E = state.n.copy(), state.m.copy(), state.E.copy()
    for _ in range(steps):
        Hs = [rng.standard_normal((integer(rng, 1, 3), integer(rng, 1, 6), D)) for _ in range(2)]
        Ms = [mask(rng, *h.shape[:2]) for h in Hs]
        idx = [quantize_forward(h, state.E)[1] for h in Hs]
        before = (state.n.copy(), state.m.copy(), state.E.copy())
        new = ema_update(state, Hs, idx, Ms, decay=decay, eps=eps)
        _unchanged(before, state, "ema_update")
        units = np.concatenate([h[mk] for h, mk in zip(Hs, Ms)])
        codes = np.concatenate([i[mk] for i, mk in zip(idx, Ms)])
        n, m, E = ema_formula(n, m, units, codes, decay, eps)
        state = new
    return state, (n, m, E), f"K={K} D={D} decay={decay} eps={eps}"


def test_ema_update_with_smoothing_at_fresh_sizes(request):
    rng, note = setup(request)
    for _ in range(2):
        state, (n, m, E), what = _ema_steps(rng, note, 1)
        np.testing.assert_allclose(state.m, m, rtol=1e-10, atol=1e-12, err_msg=f"m after one step ({what})")
        np.testing.assert_allclose(state.E, E, rtol=1e-10, atol=1e-12,
                                   err_msg=f"E after one step ({what}): E = m / (Laplace-smoothed n)")


def test_ema_state_keeps_the_raw_count_over_fresh_steps(request):
    rng, note = setup(request)
    state, (n, m, E), what = _ema_steps(rng, note, 20)
    np.testing.assert_allclose(state.n, n, rtol=1e-10, err_msg=f"n after 20 steps ({what})")
    np.testing.assert_allclose(state.E, E, rtol=1e-8, atol=1e-12, err_msg=f"E after 20 steps ({what})")


def _restart(rng, note):
    K, D = integer(rng, 3, 8), integer(rng, 1, 4)
    n = rng.uniform(0.5, 5.0, K)
    dead = rng.permutation(K)[:integer(rng, 1, K - 1)]
    n[dead] = rng.uniform(1e-4, 0.05, len(dead))
    E = rng.standard_normal((K, D))
    state = EMAState(n=n, m=E * n[:, None], E=E)
    Hs = [rng.standard_normal((integer(rng, 1, 3), integer(rng, 1, 4), D)) for _ in range(2)]
    Ms = [mask(rng, *h.shape[:2]) for h in Hs]
    threshold = round(float(rng.uniform(0.1, 0.4)), 3)
    note(K=K, D=D, dead=sorted(int(k) for k in dead), threshold=threshold)
    before = (state.n.copy(), state.m.copy(), state.E.copy())
    new, restarted = restart_dead_codes(state, Hs, Ms, threshold, rng)
    return state, before, new, restarted, Hs, Ms, threshold, np.sort(dead)


def test_restart_dead_codes_at_fresh_sizes(request):
    rng, note = setup(request)
    for _ in range(3):
        state, before, new, restarted, Hs, Ms, threshold, dead = _restart(rng, note)
        np.testing.assert_array_equal(restarted, dead, err_msg="the restarted codes: those with n_k < threshold")
        pool = np.concatenate([h[mk] for h, mk in zip(Hs, Ms)])
        for k in dead:
            assert any(np.array_equal(new.E[k], h) for h in pool), f"restarted code {k} is not a valid unit"
        live = np.setdiff1d(np.arange(len(state.n)), dead)
        np.testing.assert_array_equal(new.E[live], before[2][live], err_msg="a live code moved")


def test_restart_resets_the_ema_state_of_restarted_codes(request):
    rng, note = setup(request)
    for _ in range(3):
        state, before, new, _, _, _, threshold, dead = _restart(rng, note)
        _unchanged(before, state, "restart_dead_codes")
        np.testing.assert_array_equal(new.n[dead], threshold, err_msg="n of a restarted code: the threshold")
        np.testing.assert_allclose(new.m[dead], new.E[dead] * threshold, rtol=1e-12,
                                   err_msg="m of a restarted code: e_k times the threshold")


def test_beta_weights_the_commitment_loss_at_a_fresh_beta(request):
    rng, note = setup(request)
    for modalities in (("image", "speech"), ("a", "b")):
        beta = round(float(rng.uniform(0.05, 3.0)), 3)
        note(modalities=modalities, beta=beta)
        cfg = tiny_config(modalities, codebook="grad", beta=beta)
        params = init_params(cfg, rng)
        _, cache = loss_forward(params, tiny_inputs(cfg, rng), cfg)
        sq = sum(float(np.mean((u["H"] - u["Q"])[u["M"]] ** 2)) for u in cache["units"].values())
        parts = cache["parts"]
        assert abs(parts["commit"] - beta * sq) <= 1e-10 * beta * sq, \
            f"beta {beta}: commitment loss {parts['commit']:.6g}, expect beta * {sq:.6g}"
        assert abs(parts["codebook"] - sq) <= 1e-10 * sq, f"beta {beta}: codebook loss {parts['codebook']:.6g}, " \
                                                          f"expect {sq:.6g} (no beta)"
