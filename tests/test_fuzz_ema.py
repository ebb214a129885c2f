"""Fuzz of the EMA codebook and the restart of dead codes (VQ-5, VQ-6): results against the
formulas of METHOD.md, or a ValueError/TypeError naming the argument (issue 10)."""
import numpy as np
import pytest
from fuzz.oracle import WrongResult, arr, close, equal, f64, generator, need, num, within
from fuzz.runner import Spec, run_spec
from fuzz.values import dims, dtype_of, floats, ints, mask
from hypothesis import strategies as st
from test_fuzz_quantizer import units, valid_mask

from minivq import quantizer as Q
from minivq.ema import EMAState


def draw_state(data, dt=None):
    K, D = dims(data, "K", "D")
    E = floats(data, (K, D), dt or dtype_of(data))
    n = (np.random.default_rng(K).random(K) * 2 + 0.01).astype(E.dtype)
    return EMAState(n=n, m=E * n[:, None], E=E)


def state_of(a):
    s = a["state"]
    need(isinstance(s, EMAState), "state")
    E = arr(s.E, "state.E", coerce=False, ndim=2, also=("state",))
    m = arr(s.m, "state.m", coerce=False, dtype=E.dtype, shape=E.shape, also=("state", "state.E"))
    n = arr(s.n, "state.n", coerce=False, dtype=E.dtype, shape=E.shape[:1], also=("state", "state.E"))
    need(E.shape[0] >= 1 and (n > 0).all(), "state", "state.n", "state.E")
    return n, m, E


def draw_ema_init(data):
    return {"E": floats(data, tuple(dims(data, "K", "D")), dtype_of(data)),
            "n_init": data.draw(st.sampled_from([1.0, 0.5, 3])), }


def expect_ema_init(a):
    E = arr(a["E"], "E", coerce=False, ndim=2)
    need(E.shape[0] >= 1, "E")
    n0 = num(a["n_init"], "n_init", 0, float(np.finfo(E.dtype).max), low_open=True)

    def check(r):
        equal(r.n, np.full(E.shape[0], n0, E.dtype))
        close(r.m, f64(E) * f64(E.dtype.type(n0)), np.abs(f64(E)) * n0, E.dtype, "m")
        equal(r.E, E)
    return within(np.abs(f64(E)).max(initial=0) * n0, float(np.finfo(E.dtype).max), check, "n_init", "E")


def per_modality(data, state):
    K, D = state.E.shape
    lists = data.draw(st.booleans(), label="lists")
    Hs = [floats(data, (data.draw(st.integers(1, 3)), 2, D), state.E.dtype) for _ in range(2 if lists else 1)]
    idx = [ints(data, H.shape[:-1], 0, K) for H in Hs]
    Ms = [data.draw(st.sampled_from([None, mask(data, H.shape[:-1])])) for H in Hs]
    return (Hs, idx, Ms) if lists else (Hs[0], idx[0], Ms[0])


def modalities(a, E, with_idx=True):
    """Pooled valid units and codes of H/idx/M given as one array each or as lists."""
    Hs, idxs, Ms = a["H"], a.get("idx"), a["M"]
    is_list = isinstance(Hs, (list, tuple))
    if is_list:
        need(len(Hs) >= 1, "H")
        Ms = Ms if isinstance(Ms, (list, tuple)) else [Ms] * len(Hs)
        idxs = idxs if isinstance(idxs, (list, tuple)) or not with_idx else None
        need(len(Ms) == len(Hs), "M", "H")
        need(not with_idx or (idxs is not None and len(idxs) == len(Hs)), "idx", "H")
    else:
        Hs, idxs, Ms = [Hs], [idxs], [Ms]
    X, k = [], []
    for H, idx, M in zip(Hs, idxs if with_idx else [None] * len(Hs), Ms):
        H = units({"H": H}, dtype=E.dtype, also=("state.E",))
        need(H.shape[-1] == E.shape[1], "H")
        if with_idx:
            idx = arr(idx, "idx", "i", coerce=False, shape=H.shape[:-1])
            need(idx.size == 0 or (idx.min() >= 0 and idx.max() < len(E)), "idx")
        M = valid_mask(M, H.shape[:-1], nonempty=False)
        X.append(H[M])
        k.append(idx[M] if with_idx else None)
    return np.concatenate(X), (np.concatenate(k) if with_idx else None)


def draw_ema_update(data):
    state = draw_state(data)
    H, idx, M = per_modality(data, state)
    return {"state": state, "H": H, "idx": idx, "M": M, "decay": data.draw(st.sampled_from([0.99, 0.5])),
            "eps": data.draw(st.sampled_from([1e-5, 0.0, 1.0]))}


def expect_ema_update(a):
    n, m, E = state_of(a)
    g = num(a["decay"], "decay", 0, 1, low_open=True, high_open=True)
    eps = num(a["eps"], "eps", 0, 1e30)
    X, k = modalities(a, E)
    c, s = np.bincount(k, minlength=len(E)), np.zeros(E.shape)
    np.add.at(s, k, f64(X))
    n2, m2 = g * f64(n) + (1 - g) * c, g * f64(m) + (1 - g) * s
    E2 = m2 / ((n2 + eps) / (n2.sum() + len(n2) * eps) * n2.sum())[:, None]

    s_abs = np.zeros(E.shape)
    np.add.at(s_abs, k, np.abs(f64(X)))
    overflows = s_abs > float(np.finfo(E.dtype).max) / 4  # a code's sum s_k beyond the dtype: inf or NaN

    def check(r):
        close(r.n, n2, f64(n) + c, E.dtype, "n")
        close(r.m, m2, np.abs(f64(m)) + np.abs(s) + 1, E.dtype, "m", may_overflow=overflows)
        close(r.E, E2, (np.abs(E2) + 1) * 8, E.dtype, "E", may_overflow=overflows)
    return check


def draw_restart(data):
    state = draw_state(data)
    H, _, M = per_modality(data, state)
    return {"state": state, "H": H, "M": M, "threshold": data.draw(st.sampled_from([0.5, 1.0, 3.0])),
            "rng": data.draw(st.sampled_from([0, np.random.default_rng(1)]))}


def expect_restart(a):
    n, m, E = state_of(a)
    t = num(a["threshold"], "threshold", 0, float(np.finfo(E.dtype).max), low_open=True)
    X, _ = modalities(a, E, with_idx=False)
    need(len(X) >= 1, "M", "H")
    generator(a["rng"])
    dead = np.flatnonzero(n < t)

    def check(r):
        state, restarted = r
        equal(restarted, dead.astype(np.int64))
        alive = np.setdiff1d(np.arange(len(E)), dead)
        equal(state.E[alive], E[alive])
        units_ = {row.tobytes() for row in X}
        if not all(state.E[k].tobytes() in units_ for k in dead):
            raise WrongResult("a restarted code is not a valid unit of H")
        equal(state.n[dead], np.full(len(dead), t, E.dtype))
    return within(np.abs(f64(X)).max() * t, float(np.finfo(E.dtype).max), check, "threshold", "H")


SPECS = [
    Spec("ema_init", Q.ema_init, draw_ema_init, expect_ema_init),
    Spec("ema_update", Q.ema_update, draw_ema_update, expect_ema_update),
    Spec("restart_dead_codes", Q.restart_dead_codes, draw_restart, expect_restart),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_fuzz(spec):
    run_spec(spec)
