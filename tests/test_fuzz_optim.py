"""Fuzz of the optimizers, clipping, initializers and the gradient checker: the documented
result or a ValueError/TypeError naming the argument (issue 10). Machinery: tests/fuzz/."""
import numpy as np
import pytest
from fuzz.oracle import Invalid, WrongResult, arr, boolean, close, equal, f64, generator, integer, need, num
from fuzz.runner import Spec, run_spec
from fuzz.values import dims, dtype_of, floats
from hypothesis import strategies as st

from minivq import gradcheck as G
from minivq import optim as O
from minivq.layers import tanh_backward, tanh_forward


def draw_params(data):
    dt = dtype_of(data)
    names = data.draw(st.sampled_from([("W",), ("W", "b")]))
    params = {k: floats(data, tuple(dims(data, "a", "b", high=3)), dt) for k in names}
    return params, {k: floats(data, v.shape, dt) for k, v in params.items()}


def params_of(a, writeable=True):
    P = a["params"]
    need(isinstance(P, dict) and len(P) >= 1, "params")
    P = {k: arr(v, f"params[{k!r}]", coerce=False, finite=False, writeable=writeable, also=("params",))
         for k, v in P.items()}
    G_ = a["grads"]
    need(isinstance(G_, dict), "grads")
    need(G_.keys() == P.keys(), "grads")
    G_ = {k: arr(G_[k], f"grads[{k!r}]", coerce=False, dtype=P[k].dtype, shape=P[k].shape,
                 also=(f"params[{k!r}]",)) for k in P}
    return P, G_


def hyper(a, name, below=None, P=None):
    """A hyperparameter: >= 0, below ``below``, or (given the parameters P) at most their dtype's largest."""
    if below is not None:
        return num(a[name], name, 0, below, high_open=True)
    return num(a[name], name, 0, min(float(np.finfo(p.dtype).max) for p in P.values()))


def run_sgd(params, grads, lr, momentum, weight_decay):
    O.SGD(params, lr, momentum, weight_decay).step(grads)
    return params


def run_adam(params, grads, lr, beta1, beta2, eps, weight_decay, decoupled):
    O.Adam(params, lr, beta1, beta2, eps, weight_decay, decoupled=decoupled).step(grads)
    return params


def draw_sgd(data):
    params, grads = draw_params(data)
    return {"params": params, "grads": grads, "lr": data.draw(st.sampled_from([0.1, 0.0, 2])),
            "momentum": data.draw(st.sampled_from([0.9, 0.0])), "weight_decay": data.draw(st.sampled_from([0.0, 0.1]))}


def expect_sgd(a):
    hyper(a, "momentum", 1)
    P, G_ = params_of(a)
    lr, wd = hyper(a, "lr", P=P), hyper(a, "weight_decay", P=P)
    refs = {k: f64(P[k]) - f64(P[k].dtype.type(lr)) * (f64(G_[k]) + f64(P[k].dtype.type(wd)) * f64(P[k]))
            for k in P}

    def check(r):
        for k in P:
            close(r[k], refs[k], (np.abs(f64(P[k])) + lr * (np.abs(f64(G_[k])) + wd * np.abs(f64(P[k])))) * 4,
                  P[k].dtype, f"params[{k!r}]")
    return check


def draw_adam(data):
    params, grads = draw_params(data)
    return {"params": params, "grads": grads, "lr": data.draw(st.sampled_from([1e-3, 0.1])), "beta1": 0.9,
            "beta2": 0.999, "eps": 1e-8, "weight_decay": data.draw(st.sampled_from([0.0, 0.01])),
            "decoupled": data.draw(st.booleans())}


def expect_adam(a):
    b1, b2 = hyper(a, "beta1", 1), hyper(a, "beta2", 1)
    dec = boolean(a["decoupled"], "decoupled")
    P, G_ = params_of(a)
    lr, eps, wd = (hyper(a, n, P=P) for n in ("lr", "eps", "weight_decay"))
    need(not dec or lr * wd <= min(float(np.finfo(p.dtype).max) for p in P.values()), "lr", "weight_decay")
    need(all(eps >= float(np.finfo(p.dtype).tiny) for p in P.values()), "eps")
    limit = min(float(np.sqrt(np.finfo(p.dtype).max)) / 2 for p in P.values())
    for k, g in G_.items():
        need(np.abs(f64(g)).max(initial=0) <= limit, f"grads[{k!r}]")
    refs = {}
    for k in P:
        p, g = f64(P[k]), f64(G_[k])
        if wd and dec:
            p = p - lr * wd * p
        elif wd:
            g = g + wd * p
        m, v = (1 - b1) * g, (1 - b2) * g * g
        refs[k] = p - lr * (m / (1 - b1)) / (np.sqrt(v / (1 - b2)) + eps)

    def check(r):
        for k in P:
            close(r[k], refs[k], np.abs(f64(P[k])) * (1 + lr * wd) + lr * 4, P[k].dtype, f"params[{k!r}]")
    return check


def draw_clip(data):
    _, grads = draw_params(data)
    return {"grads": grads, "max_norm": data.draw(st.sampled_from([1.0, 0.1, 100.0]))}


def expect_clip(a):
    num(a["max_norm"], "max_norm", 0, low_open=True)
    g = a["grads"]
    need(isinstance(g, dict), "grads")
    g = {k: arr(v, f"grads[{k!r}]", coerce=False, writeable=True) for k, v in g.items()}
    total = float(np.sqrt(sum((f64(v) ** 2).sum() for v in g.values())))
    need(np.isfinite(total), *[f"grads[{k!r}]" for k in g])

    def check(r):
        if not (isinstance(r, float) and abs(r - total) <= 1e-6 * (total + 1e-30)):
            raise WrongResult(f"norm {r!r} != {total}")
    return check


def draw_init(data):
    return {"rng": np.random.default_rng(data.draw(st.integers(0, 9))),
            "shape": data.draw(st.sampled_from([(3, 4), (2, 3, 5), (7,), [2, 2]])),
            "dtype": data.draw(st.sampled_from([np.float32, np.float64, "float32"]))}


def expect_init(fan):
    def expect(a):
        need(isinstance(a["rng"], np.random.Generator), "rng")
        shape = a["shape"]
        need(isinstance(shape, (tuple, list)) and len(shape) >= 1, "shape")
        shape = tuple(integer(s, "shape", 1) for s in shape)
        need(np.prod(shape, dtype=float) <= 1 << 24, "shape")
        dt = a["dtype"]
        try:
            dt = np.dtype(dt)
        except Exception:
            raise Invalid("dtype") from None
        need(a["dtype"] is not None and dt in (np.float32, np.float64), "dtype")
        receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
        fan_in, fan_out = (shape[0], shape[0]) if len(shape) == 1 else (receptive * shape[-2], receptive * shape[-1])
        limit = fan(fan_in, fan_out)
        ref = a["rng"].uniform(-limit, limit, size=shape).astype(dt)
        return lambda r: equal(r, ref)
    return expect


# ----------------------------------------------------------------------------- gradient checking
def draw_rel_error(data):
    shape = tuple(dims(data, "a", "b", low=0))
    return {"a": floats(data, shape), "b": floats(data, shape)}


def expect_rel_error(a):
    x = f64(arr(a["a"], "a", "r"))
    y = f64(arr(a["b"], "b", "r", shape=x.shape, also=("a",)))
    ref = 0.0 if x.size == 0 else float(np.abs(x - y).max() / max(1e-8, float((np.abs(x) + np.abs(y)).max())))
    return lambda r: close(np.asarray(r), ref, abs(ref) + 1, np.float64, "rel_error")


def draw_numerical(data):
    x = floats(data, tuple(dims(data, "a", "b")), np.float64, scale=0.5)
    return {"f": np.sin, "x": x, "dout": floats(data, x.shape), "h": data.draw(st.sampled_from([1e-5, 1e-4]))}


def expect_numerical(a):
    need(callable(a["f"]), "f")
    x = a["x"]
    need(isinstance(x, np.ndarray) and x.dtype.kind == "f", "x")
    need(x.flags.writeable, "x")
    h = num(a["h"], "h", 0, low_open=True)
    need(np.isfinite(x).all(), "x", "f(x)", "dout")
    need(((x + x.dtype.type(h) != x) & (x - x.dtype.type(h) != x)).all(), "h", "x")
    dout = f64(arr(a["dout"], "dout", "r", shape=x.shape, also=("f(x)",)))
    ref = np.cos(f64(x)) * dout
    eps = float(np.finfo(x.dtype).eps)
    F = np.abs(np.sin(f64(x)) * dout).sum() + np.abs(dout).sum()  # the scale of the summed f(x) * dout
    tol = (h * h * np.abs(dout) + 4 * eps * F / h + 2 * eps * np.abs(f64(x) * dout) / h + 1e-300) * 16
    return lambda r: close(r, ref, tol / eps / 64, x.dtype)


def checked_tanh(**kw):
    try:
        return G.check_backward(tanh_forward, tanh_backward, **kw)
    except G.GradientCheckError as err:  # the documented way to report a failed check
        return err


def draw_check_backward(data):
    return {"inputs": {"x": floats(data, tuple(dims(data, "a")), np.float64)},
            "wrt": data.draw(st.sampled_from([None, "x", ["x"]])),
            "rng": data.draw(st.sampled_from([None, 0, np.random.default_rng(1)])), "h": 1e-5, "tol": 1e-6,
            "max_redraws": data.draw(st.sampled_from([0, 3])), "raise_on_fail": data.draw(st.booleans())}


def expect_check_backward(a):
    if a["rng"] is not None:
        generator(a["rng"])
    integer(a["max_redraws"], "max_redraws", 0)
    h, tol = num(a["h"], "h", 0, low_open=True), num(a["tol"], "tol", 0, low_open=True)
    boolean(a["raise_on_fail"], "raise_on_fail")
    inputs = a["inputs"]
    need(isinstance(inputs, dict), "inputs")
    floats_in = [k for k, v in inputs.items() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    wrt = a["wrt"]
    names_ok = isinstance(wrt, (list, tuple)) and all(isinstance(w, str) for w in wrt)
    need(wrt is None or isinstance(wrt, str) or names_ok, "wrt")
    names = floats_in if wrt is None else [wrt] if isinstance(wrt, str) else list(wrt)
    need(floats_in, "inputs")
    need(names and all(n in floats_in for n in names), "wrt")
    need(list(inputs) == ["x"], "inputs")  # tanh_forward takes one argument
    x = arr(inputs["x"], "x", finite=True)
    need(not isinstance(x, np.ndarray) or ((x + x.dtype.type(h) != x) & (x - x.dtype.type(h) != x)).all(), "h")
    h = float(h)

    def check(r):
        if isinstance(r, G.GradientCheckError):
            if x.dtype == np.float64 and (np.abs(x) < 5).all() and 1e-8 <= h <= 1e-3 and tol >= 1e-10:
                raise WrongResult(f"a correct backward failed the check: {r}")
            return
        if not (isinstance(r, dict) and set(r) == set(names) and all(np.isfinite(v) and v >= 0 for v in r.values())):
            raise WrongResult(f"errors {r!r}")
    return check


SPECS = [
    Spec("SGD.step", run_sgd, draw_sgd, expect_sgd),
    Spec("Adam.step", run_adam, draw_adam, expect_adam),
    Spec("clip_grad_norm", O.clip_grad_norm, draw_clip, expect_clip),
    Spec("glorot_uniform", O.glorot_uniform, draw_init, expect_init(lambda i, o: np.sqrt(6.0 / (i + o)))),
    Spec("he_uniform", O.he_uniform, draw_init, expect_init(lambda i, o: np.sqrt(6.0 / i))),
    Spec("rel_error", G.rel_error, draw_rel_error, expect_rel_error),
    Spec("numerical_gradient", G.numerical_gradient, draw_numerical, expect_numerical),
    Spec("check_backward", checked_tanh, draw_check_backward, expect_check_backward),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_fuzz(spec):
    run_spec(spec)
