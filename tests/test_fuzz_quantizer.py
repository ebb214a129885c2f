"""Fuzz of the quantizer (VQ-1..4, VQ-7, VQ-8), in a child process (it reaches the compiled
kernel): a correct result or a named ValueError/TypeError (issue 10). EMA: test_fuzz_ema.py."""
import numpy as np
from fuzz.oracle import (Either, WrongResult, arr, cache, close, equal, f64, float_dtype, generator, integer,
                         need, num)
from fuzz.runner import Spec, run_area_in_child
from fuzz.values import dims, dtype_of, floats, ints, mask
from hypothesis import strategies as st

from minivq import quantizer as Q
from test_fuzz_nearest import check_search


def draw_units(data, dt=None, lead=None):
    lead = lead or tuple(dims(data, *"ab"[:data.draw(st.integers(1, 2))]))
    D, = dims(data, "D")
    return floats(data, lead + (D,), dt or dtype_of(data))


def units(a, name="H", dtype=None, also=()):
    H = arr(a[name], name, coerce=False, min_ndim=1, dtype=dtype, also=also)
    need(H.shape[-1] >= 1, name)
    return H


def codebook(a, H, name="E"):
    E = arr(a[name], name, coerce=False, ndim=2, dtype=H.dtype, also=("H",))
    need(E.shape[0] >= 1 and E.shape[1] == H.shape[-1], name, "H")
    return E


def valid_mask(M, shape, name="M", nonempty=True, also=("H",)):
    M = np.ones(shape, bool) if M is None else arr(M, name, "b", coerce=False, shape=shape)
    need(not nonempty or M.any(), name, *also)
    return M


def close_scalar(value, ref, scale, dtype, what="loss", may_overflow=False):
    if not isinstance(value, float):
        raise WrongResult(f"{what}: expected a float, got {type(value).__name__}")
    close(np.asarray(value, dtype), np.asarray(ref), scale, dtype, what, may_overflow=may_overflow)


# ----------------------------------------------------------------------------- VQ-2, VQ-3, VQ-4
def draw_quantize(data):
    H = draw_units(data)
    return {"H": H, "E": floats(data, (data.draw(st.integers(1, 4)), H.shape[-1]), H.dtype)}


def expect_quantize(a):
    H = units(a)
    E = codebook(a, H)
    X = H.reshape(-1, H.shape[-1])
    search = check_search(X, E)

    def check(r):
        Qv, idx, _ = r
        search((idx.reshape(-1), ((X.astype(np.float64) - E[idx.reshape(-1)]) ** 2).sum(1).astype(H.dtype)))
        equal(Qv, E[idx])
    with np.errstate(over="ignore"):
        top = (f64(X) ** 2).sum(1).max(initial=0) + (f64(E) ** 2).sum(1).max()
    return Either(check, "H", "E") if top > float(np.finfo(H.dtype).max) / 4 else check


def draw_quantize_back(data):
    a = draw_quantize(data)
    c = Q.quantize_forward(a["H"], a["E"])[2]
    return {"dQ": floats(data, a["H"].shape, a["H"].dtype), "cache": c, "_cache": c}


def expect_quantize_back(a):
    shape, dtype = cache(a)
    dQ = arr(a["dQ"], "dQ", dtype=dtype, shape=shape)
    return lambda r: equal(r, dQ)


def draw_commitment(data):
    H = draw_units(data)
    M = mask(data, H.shape[:-1]) if data.draw(st.booleans(), label="masked") else None
    return {"H": H, "Q": floats(data, H.shape, H.dtype), "M": M, "beta": data.draw(st.sampled_from([0.25, 0.0, 2.0]))}


def expect_commitment(a):
    H = units(a)
    Qv = arr(a["Q"], "Q", coerce=False, dtype=H.dtype, shape=H.shape, also=("H",))
    M = valid_mask(a["M"], H.shape[:-1])
    beta = num(a["beta"], "beta", 0)
    N, D = M.sum(), H.shape[-1]
    need(2 * beta / (N * D) <= float(np.finfo(H.dtype).max), "beta")
    diff = (f64(H) - f64(Qv)) * M[..., None]
    big = float(np.finfo(H.dtype).max) / 4  # intermediates beyond it (h - q, the sum of squares): inf or NaN

    def check(r):
        scale = beta * (np.abs(f64(H)) + np.abs(f64(Qv))) ** 2 * M[..., None]
        close_scalar(r[0], beta * (diff ** 2).sum() / (N * D), scale.sum() / (N * D) * 4, H.dtype,
                     may_overflow=(diff ** 2).sum() > big)
        close(r[1], 2 * beta / (N * D) * diff, 2 * beta / (N * D) * np.abs(diff) * 4, H.dtype, "dH",
              may_overflow=np.abs(diff) > big)
    return check


def draw_codebook_loss(data):
    H = draw_units(data)
    K = data.draw(st.integers(1, 4))
    return {"H": H, "idx": ints(data, H.shape[:-1], 0, K), "M": mask(data, H.shape[:-1]),
            "E": floats(data, (K, H.shape[-1]), H.dtype)}


def expect_codebook_loss(a):
    H = units(a)
    E = codebook(a, H)
    idx = arr(a["idx"], "idx", "i", coerce=False, shape=H.shape[:-1])
    need(idx.size == 0 or (idx.min() >= 0 and idx.max() < len(E)), "idx")
    M = valid_mask(a["M"], H.shape[:-1])
    X, k = f64(H[M]), idx[M]
    N, D = len(k), E.shape[1]
    diff = f64(E)[k] - X
    dE, sdE = np.zeros(E.shape), np.zeros(E.shape)
    np.add.at(dE, k, diff * (2 / (N * D)))
    np.add.at(sdE, k, (np.abs(f64(E)[k]) + np.abs(X)) * (2 / (N * D)))

    big = float(np.finfo(H.dtype).max) / 4  # intermediates beyond it (e - h, its squares, a code's sum): inf or NaN
    code_sums = np.zeros(E.shape)
    np.add.at(code_sums, k, np.abs(diff))

    def check(r):
        scale = ((np.abs(f64(E)[k]) + np.abs(X)) ** 2).sum() / (N * D)
        close_scalar(r[0], (diff ** 2).sum() / (N * D), scale * 4, H.dtype, may_overflow=(diff ** 2).sum() > big)
        close(r[1], dE, sdE * 4, H.dtype, "dE", may_overflow=code_sums > big)
    return check


# ----------------------------------------------------------------------------- VQ-7, VQ-8
def draw_usage(data):
    K = data.draw(st.integers(1, 5))
    lead = tuple(dims(data, "a", "b"))
    idx = ints(data, lead, 0, K)
    return {"idx": idx, "M": data.draw(st.sampled_from([None, mask(data, lead)])), "K": K}


def expect_usage(a):
    K = integer(a["K"], "K", 1, 1 << 24)
    idxs, Ms = a["idx"], a["M"]
    if not isinstance(idxs, (list, tuple)):
        idxs, Ms = [idxs], [Ms]
    elif not isinstance(Ms, (list, tuple)):
        Ms = [Ms] * len(idxs)
    need(len(idxs) >= 1 and len(Ms) == len(idxs), "idx", "M")
    codes = []
    for idx, M in zip(idxs, Ms):
        idx = arr(idx, "idx", "i", coerce=False)
        need(idx.size == 0 or (idx.min() >= 0 and idx.max() < K), "idx")
        codes.append(idx[valid_mask(M, idx.shape, nonempty=False)])
    codes = np.concatenate(codes)
    need(codes.size >= 1, "M")
    counts = np.bincount(codes, minlength=K)
    p = counts[counts > 0] / counts.sum()

    def check(r):
        equal(r["counts"], counts.astype(np.int64))
        close_scalar(r["perplexity"], np.exp(-(p * np.log(p)).sum()), K, np.float64, "perplexity")
        close_scalar(r["fraction_used"], float(np.mean(counts > 0)), 1, np.float64, "fraction_used")
    return check


def draw_uniform(data):
    return {"K": data.draw(st.integers(1, 5)), "D": data.draw(st.integers(1, 5)),
            "rng": data.draw(st.sampled_from([0, 3, np.random.default_rng(2)])),
            "scale": data.draw(st.sampled_from([None, 0.5, 1e3])),
            "dtype": data.draw(st.sampled_from([np.float32, np.float64, "float32"]))}


def expect_uniform(a):
    K, D = integer(a["K"], "K", 1, 1 << 24), integer(a["D"], "D", 1, 1 << 24)
    need(K * D <= 1 << 24, "K", "D")
    dt = float_dtype(a["dtype"])
    scale = 1.0 / K if a["scale"] is None else num(a["scale"], "scale", 0, float(np.finfo(dt).max) / 2,
                                                    low_open=True)
    rng = generator(a["rng"])
    ref = rng.uniform(-scale, scale, size=(K, D)).astype(dt)
    return lambda r: equal(r, ref)


def draw_kmeanspp(data):
    dt = dtype_of(data)
    H = draw_units(data, dt)
    return {"H": H, "M": data.draw(st.sampled_from([None, mask(data, H.shape[:-1])])),
            "K": data.draw(st.integers(1, 5)), "rng": data.draw(st.sampled_from([0, np.random.default_rng(4)]))}


def expect_kmeanspp(a):
    K = integer(a["K"], "K", 1, 1 << 16)
    H = units(a)
    M = valid_mask(a["M"], H.shape[:-1], nonempty=True)
    generator(a["rng"])
    rows = {r.tobytes() for r in H[M]}

    def check(r):
        if not (isinstance(r, np.ndarray) and r.shape == (K, H.shape[-1]) and r.dtype == H.dtype):
            raise WrongResult(f"E {getattr(r, 'shape', r)}")
        if not all(row.tobytes() in rows for row in r):
            raise WrongResult("a k-means++ code is not a valid unit")
    return check


SPECS = [
    Spec("quantize_forward", Q.quantize_forward, draw_quantize, expect_quantize),
    Spec("quantize_backward", Q.quantize_backward, draw_quantize_back, expect_quantize_back),
    Spec("commitment_loss", Q.commitment_loss, draw_commitment, expect_commitment),
    Spec("codebook_loss", Q.codebook_loss, draw_codebook_loss, expect_codebook_loss),
    Spec("codebook_usage", Q.codebook_usage, draw_usage, expect_usage),
    Spec("init_codebook_uniform", Q.init_codebook_uniform, draw_uniform, expect_uniform),
    Spec("init_codebook_kmeanspp", Q.init_codebook_kmeanspp, draw_kmeanspp, expect_kmeanspp),
]


def test_fuzz_in_a_child_process():
    report = run_area_in_child("test_fuzz_quantizer")
    assert not report["failures"], "\n\n".join(report["failures"])
