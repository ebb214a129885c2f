"""Fuzz of code matching (CM-1..4) and the contrastive losses (MMS): a correct result, checked
against long-double references, or a ValueError/TypeError naming the argument (issue 10)."""
import numpy as np
import pytest
from fuzz.oracle import WrongResult, arr, boolean, cache, close, f64, integer, need, num
from fuzz.runner import Spec, run_spec
from fuzz.values import dims, dtype_of, floats, mask, probs
from hypothesis import strategies as st

from minivq import contrastive as C
from minivq import matching as CM

LD = np.longdouble
TAUS = [1.0, 0.1, 10.0, 1e-3]


def _log_softmax(Z, axis):
    """Z - logsumexp(Z), shifted first (so a huge common offset cannot swallow the log term)."""
    shifted = Z - Z.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


# ----------------------------------------------------------------------------- CM-1, CM-2
def draw_distribution(data, suffix=""):
    B, T, D, K = dims(data, "B", "T", "D", "K")
    dt = dtype_of(data)
    H = floats(data, (B, T, D), dt)
    return {"H": H, "M": data.draw(st.sampled_from([None, mask(data, (B, T))])), "E": floats(data, (K, D), dt),
            "tau": data.draw(st.sampled_from(TAUS)), "squared": data.draw(st.booleans())}


def distribution_ref(H, M, E, tau, squared):
    """P (B, K) in long double from direct differences, and a bound on the rounding of the expansion."""
    X, El = np.asarray(H[M], LD), np.asarray(E, LD)
    sq = ((X[:, None, :] - El[None]) ** 2).sum(-1)  # (N, K)
    d = sq if squared else np.sqrt(np.maximum(sq, LD(1e-12)))
    logits = -d / LD(tau)
    p = np.exp(_log_softmax(logits, 1))
    expansion = (X * X).sum(1)[:, None] + (El * El).sum(1)[None, :]  # what rounds in the expansion
    slope = np.where(squared, 1, 1 / (2 * np.sqrt(np.maximum(sq, LD(1e-12)))))
    cond = (expansion * slope / LD(tau)).max(initial=0)  # |d logits| per unit rounding
    P = np.zeros((H.shape[0], E.shape[0]), LD)
    units = np.repeat(np.arange(H.shape[0]), M.sum(1))
    np.add.at(P, units, p / M.sum(1)[units][:, None])
    return P, float(cond), d


def distribution_args(a, names=("H", "M", "E")):
    H = arr(a[names[0]], names[0], coerce=False, ndim=3)
    E = arr(a[names[2]], names[2], coerce=False, ndim=2, dtype=H.dtype, also=(names[0],))
    need(E.shape[0] >= 1 and E.shape[1] == H.shape[2], names[2], names[0])
    M = a[names[1]]
    M = np.ones(H.shape[:2], bool) if M is None else arr(M, names[1], "b", coerce=False, shape=H.shape[:2])
    need(M.sum(1).all(), names[1])
    tau = num(a["tau"], "tau", 0, low_open=True)
    need(H.dtype.type(tau) >= np.finfo(H.dtype).tiny, "tau")
    squared = boolean(a["squared"], "squared")
    return H, M, E, tau, squared


def distribution_overflows(H, M, E, tau, squared):
    """True when an intermediate of CM-1 can exceed H's dtype: ||h||^2 + ||e||^2 (the expansion) or d / tau.
    Then NaN or inf is the documented outcome (NumPy's overflow), never a wrong finite P."""
    bound = 2 * (float((f64(H[M]) ** 2).sum(-1).max(initial=0)) + float((f64(E) ** 2).sum(-1).max()))
    dmax = bound if squared else np.sqrt(bound)
    return max(bound, dmax / tau) > float(np.finfo(H.dtype).max) / 4


def expect_distribution(a, names=("H", "M", "E")):
    H, M, E, tau, squared = distribution_args(a, names)
    P, cond, d = distribution_ref(H, M, E, tau, squared)
    overflows = distribution_overflows(H, M, E, tau, squared)
    return lambda r: close(r[0], P, 1 + cond, H.dtype, "P", may_overflow=overflows)


def draw_distribution_back(data):
    a = draw_distribution(data)
    P, c = CM.code_distribution_forward(**a)
    return {"dP": floats(data, P.shape, P.dtype), "cache": c, "_cache": c}


def expect_distribution_back(a):
    M, X, E = cache(a)[:3]
    arr(a["dP"], "dP", ndim=2, dtype=X.dtype, shape=(M.shape[0], E.shape[0]))

    def check(r):
        dH, dE = r
        for g, shape in ((dH, M.shape + (X.shape[1],)), (dE, E.shape)):
            if not (isinstance(g, np.ndarray) and g.shape == shape and g.dtype == X.dtype):
                raise WrongResult(f"gradient {getattr(g, 'shape', g)} {getattr(g, 'dtype', '')}, expected {shape}")
        if (dH[~M] != 0).any():
            raise WrongResult("dH is not zero at padded units")
    return check


# ----------------------------------------------------------------------------- CM-3
def draw_similarity(data):
    B_a, B_b, K = dims(data, "B_a", "B_b", "K")
    dt = dtype_of(data)
    return {"P_a": probs(data, (B_a, K), dt), "P_b": probs(data, (B_b, K), dt),
            "eps": data.draw(st.sampled_from([1e-10, 1e-3, 1e-30]))}


def expect_similarity(a):
    Pa = arr(a["P_a"], "P_a", coerce=False, ndim=2)
    Pb = arr(a["P_b"], "P_b", coerce=False, ndim=2, dtype=Pa.dtype, also=("P_a",))
    need(Pa.shape[1] == Pb.shape[1], "P_b", "P_a")
    need((Pa >= 0).all(), "P_a")
    need((Pb >= 0).all(), "P_b")
    eps = num(a["eps"], "eps", float(np.finfo(Pa.dtype).tiny), float(np.finfo(Pa.dtype).max) / 2)
    La, Lb = np.log(np.asarray(Pa, LD) + LD(eps)), np.log(np.asarray(Pb, LD) + LD(eps))
    S = np.asarray(Pa, LD) @ Lb.T + La @ np.asarray(Pb, LD).T
    scale = np.abs(np.asarray(Pa, LD)) @ (np.abs(Lb) + 1).T + (np.abs(La) + 1) @ np.abs(np.asarray(Pb, LD)).T
    overflows = scale > float(np.finfo(Pa.dtype).max) / 4  # a sum of products beyond the dtype: inf or NaN
    return lambda r: close(r[0], S, scale * 4, Pa.dtype, "S", may_overflow=overflows)


def draw_similarity_back(data):
    a = draw_similarity(data)
    S, c = CM.code_similarity_forward(**a)
    return {"dS": floats(data, S.shape, S.dtype), "cache": c, "_cache": c}


def expect_similarity_back(a):
    Pa, Pb, La, Lb, eps = cache(a)
    dS = f64(arr(a["dS"], "dS", ndim=2, dtype=Pa.dtype, shape=(len(Pa), len(Pb)), also=("P_a",)))
    Pa64, Pb64 = f64(Pa), f64(Pb)
    refs = (dS @ f64(Lb) + (dS @ Pb64) / (Pa64 + eps), dS.T @ f64(La) + (dS.T @ Pa64) / (Pb64 + eps))
    adS = np.abs(dS) + float(np.finfo(Pa.dtype).tiny) / float(np.finfo(Pa.dtype).eps)  # denormal dS round coarsely
    scales = (adS @ np.abs(f64(Lb)) + (adS @ Pb64) / (Pa64 + eps),
              adS.T @ np.abs(f64(La)) + (adS.T @ Pa64) / (Pb64 + eps))

    def check(r):
        for g, ref, sc in zip(r, refs, scales, strict=True):  # an intermediate beyond the dtype: inf or NaN
            close(g, ref, sc * 8, Pa.dtype, "dP", may_overflow=sc > float(np.finfo(Pa.dtype).max) / 4)
    return check


# ----------------------------------------------------------------------------- CM-4 and MMS
def draw_cmcm(data):
    B, T_a, T_b, D, K = dims(data, "B", "T_a", "T_b", "D", "K")
    dt = dtype_of(data)
    return {"H_a": floats(data, (B, T_a, D), dt), "M_a": data.draw(st.sampled_from([None, mask(data, (B, T_a))])),
            "H_b": floats(data, (B, T_b, D), dt), "M_b": data.draw(st.sampled_from([None, mask(data, (B, T_b))])),
            "E": floats(data, (K, D), dt), "tau": data.draw(st.sampled_from(TAUS)),
            "squared": data.draw(st.booleans()), "eps": data.draw(st.sampled_from([1e-10, 1e-3]))}


def expect_cmcm(a):
    Ha = arr(a["H_a"], "H_a", coerce=False, ndim=3)
    Hb = arr(a["H_b"], "H_b", coerce=False, ndim=3, dtype=Ha.dtype, also=("H_a",))
    need(Hb.shape[0] == Ha.shape[0] and Hb.shape[2] == Ha.shape[2], "H_b", "H_a")
    need(Ha.shape[0] >= 1, "H_a")
    overflows = any(distribution_overflows(*distribution_args(a, names)) for names in (("H_a", "M_a", "E"),
                                                                                    ("H_b", "M_b", "E")))
    num(a["eps"], "eps", float(np.finfo(Ha.dtype).tiny), float(np.finfo(Ha.dtype).max) / 2)

    def check(r):  # an intermediate beyond the dtype (overflows): NaN or inf allowed, nothing else
        loss, grads = r
        if not (isinstance(loss, float) and (np.isfinite(loss) and loss >= 0 or overflows and not np.isfinite(loss))):
            raise WrongResult(f"loss {loss!r}")
        for k, ref in (("H_a", Ha), ("H_b", Hb), ("E", a["E"])):
            g = grads[k]
            if not (g.shape == ref.shape and g.dtype == ref.dtype and (overflows or np.isfinite(g).all())):
                raise WrongResult(f"grads[{k!r}] {g.shape} {g.dtype}, finite {np.isfinite(g).all()}")
    return check


def draw_scores(data):
    B, = dims(data, "B")
    return {"S": floats(data, (B, B), dtype_of(data)), "margin": data.draw(st.sampled_from([0.0, 0.2, -1.0, 3]))}


def nce_ref(a):
    S = arr(a["S"], "S", coerce=False, ndim=2)
    need(S.shape[0] == S.shape[1] and S.shape[0] >= 1, "S")
    margin = num(a["margin"], "margin")
    span = float(S.max()) - float(S.min()) + abs(margin)
    need(span <= float(np.finfo(S.dtype).max), "S", "margin")
    Z = np.asarray(S, LD) - LD(margin) * np.eye(len(S))
    lr, lc = _log_softmax(Z, 1), _log_softmax(Z, 0)
    loss = -0.5 * (np.trace(lr) + np.trace(lc)) / len(S)
    dS = ((np.exp(lr) - np.eye(len(S))) + (np.exp(lc) - np.eye(len(S)))) / (2 * len(S))
    return S, float(loss), dS, span


def expect_nce(a):
    S, loss, _, span = nce_ref(a)
    return lambda r: close(np.asarray(r[0], S.dtype), loss, span + 1, S.dtype, "loss")


def expect_mms(a):
    S, loss, dS, span = nce_ref(a)

    def check(r):
        close(np.asarray(r[0], S.dtype), loss, span + 1, S.dtype, "loss")
        close(r[1], dS, (span + 1) / len(S), S.dtype, "dS")
    return check


def draw_nce_back(data):
    a = draw_scores(data)
    c = C.info_nce_forward(**a)[1]
    return {"dloss": data.draw(st.sampled_from([1.0, -0.5, 3])), "cache": c, "_cache": c, "_args": a}


def expect_nce_back(a):
    p_rows, p_cols = cache(a)
    dloss = num(a["dloss"], "dloss")
    need(abs(dloss) / (2 * len(p_rows)) <= float(np.finfo(p_rows.dtype).max), "dloss")
    eye = np.eye(len(p_rows))
    ref = (f64(p_rows) - eye + f64(p_cols) - eye) * dloss / (2 * len(p_rows))
    return lambda r: close(r, ref, (np.abs(ref) + abs(dloss) / len(p_rows)) * 2, p_rows.dtype, "dS")


def draw_log_softmax(data):
    shape = tuple(dims(data, *"abc"[:data.draw(st.integers(1, 3))]))
    return {"Z": floats(data, shape, dtype_of(data)), "axis": data.draw(st.integers(-len(shape), len(shape) - 1))}


def expect_log_softmax(a):
    Z = arr(a["Z"], "Z", min_ndim=1)
    axis = integer(a["axis"], "axis", -Z.ndim, Z.ndim - 1)
    need(Z.shape[axis] >= 1, "Z")
    Zl = np.asarray(Z, LD)
    ref = _log_softmax(Zl, axis)
    return lambda r: close(r, ref, np.abs(Zl - Zl.max(axis, keepdims=True)) + 2 + np.log(Z.shape[axis]), Z.dtype)


SPECS = [
    Spec("code_distribution_forward", CM.code_distribution_forward, draw_distribution, expect_distribution),
    Spec("code_distribution_backward", CM.code_distribution_backward, draw_distribution_back,
         expect_distribution_back),
    Spec("code_similarity_forward", CM.code_similarity_forward, draw_similarity, expect_similarity),
    Spec("code_similarity_backward", CM.code_similarity_backward, draw_similarity_back, expect_similarity_back),
    Spec("cmcm_loss", CM.cmcm_loss, draw_cmcm, expect_cmcm),
    Spec("log_softmax", C.log_softmax, draw_log_softmax, expect_log_softmax),
    Spec("info_nce_forward", C.info_nce_forward, draw_scores, expect_nce),
    Spec("info_nce_backward", C.info_nce_backward, draw_nce_back, expect_nce_back),
    Spec("mms_loss", C.mms_loss, draw_scores, expect_mms),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_fuzz(spec):
    run_spec(spec)
