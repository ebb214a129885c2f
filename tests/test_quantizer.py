"""Tests of minivq.quantizer: the STE quantizer, the two VQ losses, the EMA codebook,
dead-code restart, usage and initialization (METHOD.md VQ-2..8)."""
import inspect

import numpy as np
import pytest

from minivq.gradcheck import check_backward
from minivq.nearest import nearest_code_reference
from minivq.quantizer import (
    EMAState, codebook_loss, codebook_usage, commitment_loss, ema_init, ema_update,
    init_codebook_kmeanspp, init_codebook_uniform, quantize_backward, quantize_forward,
    restart_dead_codes,
)

# (B, T, D, K): the edge cases B = 1, T = 1, K = 1 and a general shape
SHAPES = [(1, 1, 3, 4), (1, 5, 2, 3), (3, 1, 4, 5), (2, 4, 3, 1), (3, 6, 4, 7)]


def draw_units(rng, B, T, D, K, dtype=np.float64):
    """Features, a mask with at least one valid unit per sample, a codebook."""
    M = rng.random((B, T)) < 0.6
    M[:, 0] = True
    return rng.standard_normal((B, T, D)).astype(dtype), M, rng.standard_normal((K, D)).astype(dtype)


# ------------------------------------------------------------------ VQ-1, VQ-2
@pytest.mark.parametrize("shape", [(7, 3), (2, 5, 3), (2, 3, 4, 3)])
def test_quantize_decode_round_trip(shape):
    rng = np.random.default_rng(0)
    H, E = rng.standard_normal(shape), rng.standard_normal((6, shape[-1]))
    Q, idx, _ = quantize_forward(H, E)
    assert Q.shape == H.shape and idx.shape == H.shape[:-1] and idx.dtype == np.int64
    np.testing.assert_array_equal(E[idx], Q)  # decode: indices back to codewords
    ref, _ = nearest_code_reference(H.reshape(-1, shape[-1]), E)
    np.testing.assert_array_equal(idx.ravel(), ref)  # VQ-1


def test_ste_backward_is_a_copy():
    rng = np.random.default_rng(1)
    H, M, E = draw_units(rng, 2, 3, 4, 5)
    _, _, cache = quantize_forward(H, E)
    dQ = rng.standard_normal(H.shape)
    dH = quantize_backward(dQ, cache)
    np.testing.assert_array_equal(dH, dQ)  # VQ-2: dL/dh = dL/dq
    assert dH is not dQ
    with pytest.raises(ValueError, match="dQ"):
        quantize_backward(dQ[:1], cache)


@pytest.mark.parametrize("shape", SHAPES)
def test_ste_is_the_gradient_of_the_copy(shape):
    """(VQ-2) The STE is the exact gradient of h + sg(q - h), sg frozen at the base point."""
    rng = np.random.default_rng(2)
    H, _, E = draw_units(rng, *shape)
    Q0, _, cache = quantize_forward(H, E)
    frozen = Q0 - H  # sg(q - h)

    errors = check_backward(lambda H: (H + frozen, cache), quantize_backward, {"H": H}, rng=3)
    assert errors["H"] < 1e-7, f"STE dH rel_error {errors['H']:.1e}, expect < 1e-7"


# ------------------------------------------------------------------ VQ-3, VQ-4
@pytest.mark.parametrize("shape", SHAPES)
def test_commitment_gradient_kink_aware(shape):
    """(VQ-3) dH, with q = e_{k*(h)} recomputed at every perturbed point; k* must not move."""

    def forward(H, M, E):
        Q, _, _ = quantize_forward(H, E)
        loss, dH = commitment_loss(H, Q, M, beta=0.25)
        return loss, dH

    def kinks(H, M, E):
        return quantize_forward(H, E)[1]

    draw = lambda rng: dict(zip("HME", draw_units(rng, *shape)))  # noqa: E731
    errors = check_backward(forward, lambda dout, dH: dout * dH, draw, wrt=["H"], kinks=kinks, rng=4)
    assert errors["H"] < 1e-7, f"commitment dH rel_error {errors['H']:.1e}, expect < 1e-7"


@pytest.mark.parametrize("shape", SHAPES)
def test_codebook_gradient_kink_aware(shape):
    """(VQ-4) dE, with k*(h) recomputed from the perturbed codebook; k* must not move."""

    def forward(H, M, E):
        _, idx, _ = quantize_forward(H, E)
        return codebook_loss(H, idx, M, E)

    def kinks(H, M, E):
        return quantize_forward(H, E)[1]

    draw = lambda rng: dict(zip("HME", draw_units(rng, *shape)))  # noqa: E731
    errors = check_backward(forward, lambda dout, dE: dout * dE, draw, wrt=["E"], kinks=kinks, rng=5)
    assert errors["E"] < 1e-7, f"codebook dE rel_error {errors['E']:.1e}, expect < 1e-7"


def test_beta_weights_commitment_never_codebook():
    rng = np.random.default_rng(6)
    H, M, E = draw_units(rng, 2, 5, 3, 4)
    Q, idx, _ = quantize_forward(H, E)
    l1, d1 = commitment_loss(H, Q, M, beta=0.25)
    l2, d2 = commitment_loss(H, Q, M, beta=1.0)
    assert l2 == pytest.approx(4 * l1) and np.allclose(d2, 4 * d1)
    assert "beta" not in inspect.signature(codebook_loss).parameters
    lc, _ = codebook_loss(H, idx, M, E)
    assert lc == pytest.approx(l2)  # the same squared error, without beta


def test_vq_losses_ignore_padding():
    rng = np.random.default_rng(7)
    H, M, E = draw_units(rng, 3, 5, 2, 4)
    Q, idx, _ = quantize_forward(H, E)
    lc, dH = commitment_loss(H, Q, M)
    lb, dE = codebook_loss(H, idx, M, E)
    H2 = H.copy()
    H2[~M] = 1e3  # garbage in the padding
    Q2, idx2, _ = quantize_forward(H2, E)
    lc2, dH2 = commitment_loss(H2, Q2, M)
    lb2, dE2 = codebook_loss(H2, idx2, M, E)
    assert lc2 == lc and lb2 == lb
    np.testing.assert_array_equal(dH2, dH)
    np.testing.assert_array_equal(dE2, dE)
    assert not dH[~M].any(), "padded units must get zero gradient"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vq_losses_finite_at_large_scale(dtype):
    rng = np.random.default_rng(8)
    H, M, E = draw_units(rng, 4, 6, 8, 16, dtype)
    H, E = H * dtype(1e6), E * dtype(1e6)
    Q, idx, _ = quantize_forward(H, E)
    lc, dH = commitment_loss(H, Q, M)
    lb, dE = codebook_loss(H, idx, M, E)
    assert np.isfinite([lc, lb]).all() and np.isfinite(dH).all() and np.isfinite(dE).all()
    assert dH.dtype == dtype and dE.dtype == dtype


def test_vq_errors_name_the_argument():
    rng = np.random.default_rng(9)
    H, M, E = draw_units(rng, 2, 3, 4, 5)
    Q, idx, _ = quantize_forward(H, E)
    with pytest.raises(TypeError, match="E"):
        quantize_forward(H, E.astype(np.float32))
    with pytest.raises(ValueError, match="E"):
        quantize_forward(H, E[:, :2])
    with pytest.raises(ValueError, match="M"):
        commitment_loss(H, Q, M[:, :2])
    with pytest.raises(ValueError, match="M"):
        commitment_loss(H, Q, np.zeros_like(M))
    with pytest.raises(TypeError, match="M"):
        commitment_loss(H, Q, M.astype(float))
    with pytest.raises(ValueError, match="idx"):
        codebook_loss(H, idx + 5, M, E)
    with pytest.raises(ValueError, match="H"):
        quantize_forward(np.full_like(H, np.nan), E)


def test_vq_dtype_mix_and_bad_numbers_name_the_argument():
    rng = np.random.default_rng(19)
    H, M, E = draw_units(rng, 2, 3, 4, 5)
    Q, _, cache = quantize_forward(H, E)
    with pytest.raises(TypeError, match="dQ"):
        quantize_backward(np.ones(H.shape, dtype=np.float32), cache)
    with pytest.raises(TypeError, match="Q"):
        commitment_loss(H, Q.astype(np.float32), M)
    with pytest.raises(ValueError, match="beta"):
        commitment_loss(H, Q, M, beta=-1.0)
    with pytest.raises(ValueError, match="scale"):
        init_codebook_uniform(4, 2, rng=0, scale=-1.0)
    with pytest.raises(TypeError, match="dtype"):
        init_codebook_uniform(4, 2, rng=0, dtype=np.int64)


# ------------------------------------------------------------------ VQ-5
def test_ema_init_is_consistent():
    E = np.arange(6.0).reshape(3, 2)
    state = ema_init(E)
    assert isinstance(state, EMAState)
    np.testing.assert_array_equal(state.n, np.ones(3))
    np.testing.assert_array_equal(state.m, E)
    np.testing.assert_array_equal(state.E, E)
    assert state.E is not E
    with pytest.raises(ValueError, match="n_init"):
        ema_init(E, n_init=0.0)


def test_ema_one_step_by_hand():
    """(VQ-5) with g = 1/2 and eps = 0, every number written out."""
    state = ema_init(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]))
    H = np.array([[[0.2, 0.0], [0.0, 0.2], [1.0, 2.0], [100.0, 100.0]]])  # (1, 4, 2)
    idx = np.array([[0, 0, 1, 2]])
    M = np.array([[True, True, True, False]])  # the unit at (100, 100) is padding
    new = ema_update(state, H, idx, M, decay=0.5, eps=0.0)
    # c = [2, 1, 0]; s = [(0.2, 0.2), (1, 2), (0, 0)]
    np.testing.assert_allclose(new.n, [0.5 + 1.0, 0.5 + 0.5, 0.5])
    np.testing.assert_allclose(new.m, [[0.1, 0.1], [1.0, 1.5], [2.5, 2.5]])
    np.testing.assert_allclose(new.E, [[0.1 / 1.5, 0.1 / 1.5], [1.0, 1.5], [5.0, 5.0]])


def test_ema_stores_the_raw_count_not_the_smoothed_one():
    state = ema_init(np.array([[0.0], [1.0], [2.0]]))
    H, idx = np.array([[[0.5], [0.7]]]), np.array([[0, 0]])
    new = ema_update(state, H, idx, None, decay=0.5, eps=0.1)
    raw = np.array([1.5, 0.5, 0.5])
    smoothed = (raw + 0.1) / (raw.sum() + 3 * 0.1) * raw.sum()
    np.testing.assert_allclose(new.n, raw)  # never written back smoothed
    np.testing.assert_allclose(new.E, new.m / smoothed[:, None])


def ema_reference_step(n, m, units, codes, decay, eps):
    """The formula of (VQ-5), unit by unit."""
    K = len(n)
    c, s = np.zeros(K), np.zeros_like(m)
    for h, k in zip(units, codes):
        c[k] += 1
        s[k] += h
    n = decay * n + (1 - decay) * c
    m = decay * m + (1 - decay) * s
    total = n.sum()
    return n, m, m / ((n + eps) / (total + K * eps) * total)[:, None]


def test_ema_fifty_masked_steps_two_modalities_against_the_formula():
    rng = np.random.default_rng(10)
    K, D = 6, 3
    state = ema_init(rng.standard_normal((K, D)))
    n, m = state.n.copy(), state.m.copy()
    for _ in range(50):
        Ha, Ma, _ = draw_units(rng, 3, 5, D, K)
        Hb, Mb, _ = draw_units(rng, 3, 7, D, K)
        E_before = state.E.copy()
        Qa, idx_a, _ = quantize_forward(Ha, state.E)  # the codebook BEFORE the update
        Qb, idx_b, _ = quantize_forward(Hb, state.E)
        state = ema_update(state, [Ha, Hb], [idx_a, idx_b], [Ma, Mb], decay=0.9, eps=1e-5)
        units = np.concatenate([Ha[Ma], Hb[Mb]])
        codes = np.concatenate([idx_a[Ma], idx_b[Mb]])
        n, m, E_ref = ema_reference_step(n, m, units, codes, 0.9, 1e-5)
        np.testing.assert_array_equal(Qa, E_before[idx_a])  # Q is the old codebook's
    np.testing.assert_allclose(state.n, n, rtol=1e-12)
    np.testing.assert_allclose(state.m, m, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(state.E, E_ref, rtol=1e-10)


def test_ema_pools_the_units_of_every_modality():
    """(VQ-5) two modalities update the one codebook as their valid units pooled in one array would."""
    rng = np.random.default_rng(19)
    Ha, Ma, E = draw_units(rng, 3, 5, 2, 4)
    Hb, Mb, _ = draw_units(rng, 2, 7, 2, 4)
    state = ema_init(E)
    idx_a, idx_b = quantize_forward(Ha, E)[1], quantize_forward(Hb, E)[1]
    two = ema_update(state, [Ha, Hb], [idx_a, idx_b], [Ma, Mb], decay=0.8, eps=0.0)
    units, codes = np.concatenate([Ha[Ma], Hb[Mb]]), np.concatenate([idx_a[Ma], idx_b[Mb]])
    pooled = ema_update(state, units[None], codes[None], None, decay=0.8, eps=0.0)
    for name in ("n", "m", "E"):
        np.testing.assert_allclose(getattr(two, name), getattr(pooled, name), rtol=1e-12, err_msg=name)
    c = np.bincount(codes, minlength=4)
    np.testing.assert_allclose(two.n, 0.8 * state.n + 0.2 * c, rtol=1e-12)  # valid units only, both modalities


def test_ema_update_returns_a_new_state():
    rng = np.random.default_rng(11)
    H, M, E = draw_units(rng, 2, 4, 3, 5)
    state = ema_init(E)
    before = (state.n.copy(), state.m.copy(), state.E.copy())
    _, idx, _ = quantize_forward(H, state.E)
    new = ema_update(state, H, idx, M)
    for old, kept in zip(before, (state.n, state.m, state.E)):
        np.testing.assert_array_equal(old, kept)
    assert new.E is not state.E


def test_ema_errors_name_the_argument():
    rng = np.random.default_rng(18)
    H, M, E = draw_units(rng, 2, 3, 4, 5)
    state = ema_init(E)
    _, idx, _ = quantize_forward(H, E)
    with pytest.raises(TypeError, match="state"):
        ema_update((state.n, state.m, state.E), H, idx, M)
    with pytest.raises(ValueError, match="H must have D = 4"):
        ema_update(state, H[..., :3], idx, M)
    with pytest.raises(TypeError, match="H"):
        ema_update(state, H.astype(np.float32), idx, M)
    with pytest.raises(ValueError, match="eps"):
        ema_update(state, H, idx, M, eps=-1.0)
    with pytest.raises(TypeError, match="H"):
        restart_dead_codes(state, H.astype(np.float32), M, threshold=10.0, rng=0)


# ------------------------------------------------------------------ VQ-6
def test_restart_dead_code_is_not_dragged_back():
    rng = np.random.default_rng(12)
    E = np.array([[0.0, 0.0], [1.0, 0.0], [50.0, 50.0]])  # code 2 is far from every unit
    state = ema_init(E)
    H = rng.uniform(-0.2, 1.2, size=(4, 6, 2))
    M = np.ones((4, 6), dtype=bool)
    M[:, -2:] = False
    H[~M] = 1e3  # padding: must never be drawn
    for _ in range(300):
        _, idx, _ = quantize_forward(H, state.E)
        state = ema_update(state, H, idx, M)
    assert state.n[2] < 0.1
    restarted_state, restarted = restart_dead_codes(state, H, M, threshold=0.1, rng=13)
    np.testing.assert_array_equal(restarted, [2])
    e2 = restarted_state.E[2].copy()
    assert any(np.array_equal(e2, h) for h in H[M]), "restarted code must be a valid unit of the batch"
    assert restarted_state.n[2] == 0.1
    np.testing.assert_allclose(restarted_state.m[2], e2 * 0.1)
    # next step: no unit is assigned to code 2 (H2 is far from it); it must stay at e2
    H2 = H + 10.0
    idx2 = np.zeros((4, 6), dtype=np.int64)
    after = ema_update(restarted_state, H2, idx2, M)
    np.testing.assert_allclose(after.E[2], e2, rtol=1e-4)
    # without the reset of n and m, the same step drags it back towards (50, 50)
    naive = EMAState(n=state.n, m=state.m, E=restarted_state.E)
    assert np.linalg.norm(ema_update(naive, H2, idx2, M).E[2] - e2) > 10


def test_restart_pools_modalities_and_leaves_live_codes():
    rng = np.random.default_rng(14)
    state = ema_init(rng.standard_normal((4, 2)))
    state = EMAState(n=np.array([5.0, 1e-3, 5.0, 1e-4]), m=state.m, E=state.E)
    Ha, Hb = rng.standard_normal((1, 1, 2)), rng.standard_normal((2, 1, 2))
    new, restarted = restart_dead_codes(state, [Ha, Hb], [None, None], threshold=1.0, rng=15)
    np.testing.assert_array_equal(restarted, [1, 3])
    pool = np.concatenate([Ha.reshape(-1, 2), Hb.reshape(-1, 2)])
    for k in restarted:
        assert any(np.array_equal(new.E[k], h) for h in pool)
    np.testing.assert_array_equal(new.E[[0, 2]], state.E[[0, 2]])
    same, none = restart_dead_codes(new, Ha, None, threshold=1e-6, rng=0)
    assert none.size == 0 and same is new


# ------------------------------------------------------------------ VQ-7, VQ-8
def test_codebook_usage():
    idx = np.array([[0, 0, 1, 3], [3, 3, 2, 2]])
    M = np.array([[True, True, True, False], [True, True, False, False]])
    u = codebook_usage(idx, M, K=5)
    np.testing.assert_array_equal(u["counts"], [2, 1, 0, 2, 0])
    p = np.array([2, 1, 2]) / 5
    assert u["perplexity"] == pytest.approx(np.exp(-np.sum(p * np.log(p))))
    assert u["fraction_used"] == pytest.approx(3 / 5)
    assert codebook_usage(np.arange(8), None, 8)["perplexity"] == pytest.approx(8.0)
    assert codebook_usage(np.zeros(8, dtype=np.int64), None, 8)["perplexity"] == pytest.approx(1.0)
    both = codebook_usage([idx, idx], [M, M], 5)
    np.testing.assert_array_equal(both["counts"], 2 * u["counts"])


def test_init_uniform():
    E = init_codebook_uniform(8, 3, rng=0)
    assert E.shape == (8, 3) and E.dtype == np.float64 and np.abs(E).max() <= 1 / 8
    E32 = init_codebook_uniform(4, 2, rng=0, scale=2.0, dtype=np.float32)
    assert E32.dtype == np.float32 and np.abs(E32).max() <= 2.0
    with pytest.raises(ValueError, match="K"):
        init_codebook_uniform(0, 3, rng=0)


def test_init_kmeanspp_seeds_from_valid_units():
    rng = np.random.default_rng(16)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    H = (centres[rng.integers(0, 3, size=(4, 30))] + 0.01 * rng.standard_normal((4, 30, 2)))
    M = rng.random((4, 30)) < 0.8
    H[~M] = -1e3
    E = init_codebook_kmeanspp(H, M, 3, rng=17)
    valid = H[M]
    assert all(any(np.array_equal(e, h) for h in valid) for e in E)
    # D^2 seeding finds the three well-separated clusters
    assert len(set(nearest_code_reference(E, centres)[0])) == 3
    E_small = init_codebook_kmeanspp(H[:1, :1], None, 4, rng=0)  # fewer units than codes
    assert E_small.shape == (4, 2) and np.all(E_small == H[0, 0])


# --- issue 10 regressions: checks on every path, finite state, named arguments ----------------

def test_restart_checks_its_arguments_even_when_no_code_is_dead():
    E = np.random.default_rng(0).standard_normal((4, 3))
    state = ema_init(E, n_init=10.0)  # every n_k = 10: nothing below threshold 1
    H = np.ones((2, 3))
    with pytest.raises(TypeError, match="H must have dtype float32 or float64"):
        restart_dead_codes(state, H.astype(int), None, 1.0, 0)
    with pytest.raises(TypeError, match="M must be a bool"):
        restart_dead_codes(state, H, np.ones(2), 1.0, 0)
    with pytest.raises(TypeError, match="rng must be a np.random.Generator or a non-negative int seed"):
        restart_dead_codes(state, H, None, 1.0, "seed")
    new, restarted = restart_dead_codes(state, H, None, 1.0, 0)
    assert new is state and restarted.size == 0


@pytest.mark.parametrize("call, exc, words", [
    (lambda E: ema_init(E, n_init=np.inf), ValueError, "n_init must be a finite number > 0, got inf"),
    (lambda E: ema_init(E, n_init="1"), TypeError, "n_init must be a finite number > 0, got str"),
    (lambda E: ema_init(E * 1e10, n_init=1e300), ValueError, "n_init must keep m = n_init E finite"),
    (lambda E: restart_dead_codes(ema_init(E), E, None, np.inf, 0), ValueError, "threshold must be a finite number"),
    (lambda E: ema_update(ema_init(E), E, np.zeros(4, np.int64), None, decay="0.9"), TypeError,
     "decay must be a finite number > 0 and < 1, got str"),
    (lambda E: ema_update(ema_init(E), E, np.zeros(4, np.int64), None, eps=None), TypeError, "eps must be"),
    (lambda E: init_codebook_uniform(4, 3, rng=[1]), TypeError, "rng must be a np.random.Generator"),
    (lambda E: init_codebook_uniform(4, 3, 0, dtype="abc"), TypeError, "dtype must be float32 or float64"),
    (lambda E: init_codebook_uniform(4, 3, 0, scale=1e308), ValueError, "scale must be a finite number"),
    (lambda E: init_codebook_kmeanspp(E, None, 2, rng=1.5), TypeError, "rng must be"),
    (lambda E: quantize_backward(np.full((4, 3), np.nan), quantize_forward(E, E)[2]), ValueError,
     "dQ must be finite"),
    (lambda E: codebook_usage(np.zeros(4, np.int64), [[True, False, True, True]], 2), TypeError,
     "M must be a bool ndarray"),
])
def test_bad_arguments_are_named(call, exc, words):
    E = np.random.default_rng(1).standard_normal((4, 3))
    with pytest.raises(exc, match=words):
        call(E)


def test_a_nested_list_mask_is_one_mask_not_one_per_modality():
    """codebook_usage(idx, M=[...]) read a nested list as one mask per modality (issue 10)."""
    idx = np.array([[0, 1], [1, 1]])
    with pytest.raises(TypeError, match="M must be a bool ndarray of shape idx.shape"):
        codebook_usage(idx, [[True, False], [True, True]], 2)
    out = codebook_usage([idx, idx], [np.array([[True, False], [True, True]]), None], 2)
    assert out["counts"].tolist() == [2, 5]


def test_losses_at_the_edge_of_float32():
    """Sums that overflow the dtype give inf or NaN, with NumPy's warning: never a wrong finite number."""
    H = np.full((2, 3), 1e30, np.float32)
    Q = np.zeros_like(H)
    with pytest.warns(RuntimeWarning, match="overflow"):  # (1e30)^2 overflows float32
        loss, dH = commitment_loss(H, Q, None, beta=1.0)
    assert loss == np.inf and np.isfinite(dH).all()
    with pytest.warns(RuntimeWarning, match="overflow"), np.errstate(invalid="ignore"):
        loss, dH = commitment_loss(H, Q, None, beta=0.0)  # 0 * inf
    assert np.isnan(loss) and not dH.any()
    E = np.zeros((1, 3), np.float32)
    H = np.full((4, 3), np.finfo(np.float32).max / 2, np.float32)
    with pytest.warns(RuntimeWarning, match="overflow"):  # the per-code sum overflows before the 2 / (N D)
        _, dE = codebook_loss(H, np.zeros(4, np.int64), None, E)
    assert (dE == -np.inf).all()
    with pytest.raises(ValueError, match="H must have at least one feature"):
        quantize_forward(np.ones((2, 0)), np.ones((1, 1)))


def test_units_of_a_diverged_model_inside_a_checked_step_give_nan_not_an_error():
    """A checked caller (a training step) checked its own inputs; NaN units that its forward made reach
    quantize_forward unchecked and get code 0 and a NaN distance: the loss they feed says NaN."""
    from minivq.checks import checked
    from minivq.nearest import nearest_code

    E = np.random.default_rng(20).standard_normal((5, 3))
    H = np.full((2, 4, 3), np.nan)
    step = checked(lambda a: None)(lambda H, E: (quantize_forward(H, E), nearest_code(H[0], E)))
    (Q, idx, _), (_, sq) = step(H, E)
    assert (idx == 0).all() and np.array_equal(Q, np.broadcast_to(E[0], Q.shape)) and np.isnan(sq).all()
    with pytest.raises(ValueError, match="H must be finite"):  # the public entry still refuses them
        quantize_forward(H, E)
