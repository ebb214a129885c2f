"""Checks of the gradient checker (:mod:`minivq.gradcheck`); the checked functions call user code, so
they are decorated with ``skip_nested=False``."""
import numpy as np

from .arrays import check_bool, check_finite, check_int, check_positive, check_real, check_rng, describe


def step_moves(x, h, name="x"):
    """h must move every entry of x: x + h != x and x - h != x (else the difference is 0, not a slope)."""
    with np.errstate(over="ignore"):
        stuck = (x + x.dtype.type(h) == x) | (x - x.dtype.type(h) == x)
    if stuck.any():
        i = tuple(int(j) for j in np.argwhere(stuck)[0])
        raise ValueError(f"h = {h!r} is below the spacing of the {x.dtype} values of {name} (at {i}: {x[i]!r}): "
                         "x + h == x there; use a larger h")


def rel_error(a):
    a["a"] = check_real(a["a"], "a", "(any shape)").astype(np.float64)
    a["b"] = check_real(a["b"], "b", "(any shape, that of a)").astype(np.float64)
    if a["a"].shape != a["b"].shape:
        raise ValueError(f"rel_error: a and b must have the same shape, got {a['a'].shape} and {a['b'].shape}")


def numerical_gradient(a):
    if not callable(a["f"]):
        raise TypeError(f"f must be a callable f(x) -> array, got {describe(a['f'])}")
    x = a["x"]
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"x must be a floating ndarray, got {type(x).__name__} {getattr(x, 'dtype', '')}")
    if not x.flags.writeable:
        raise ValueError("x must be writeable: it is perturbed in place (pass x.copy())")
    a["h"] = check_positive(a["h"], "h")
    check_finite(x, "x")
    step_moves(x, a["h"])
    a["dout"] = check_real(a["dout"], "dout", "(the shape of f(x))").astype(np.float64)


def check_backward(a):
    for name in ("forward", "backward"):
        if not callable(a[name]):
            raise TypeError(f"{name} must be a callable, got {describe(a[name])}")
    if a["kinks"] is not None and not callable(a["kinks"]):
        raise TypeError(f"kinks must be None or a callable, got {describe(a['kinks'])}")
    a["rng"] = np.random.default_rng() if a["rng"] is None else check_rng(a["rng"])
    a["max_redraws"] = check_int(a["max_redraws"], "max_redraws", 0)
    a["h"], a["tol"] = check_positive(a["h"], "h"), check_positive(a["tol"], "tol")
    a["raise_on_fail"] = check_bool(a["raise_on_fail"], "raise_on_fail")
    wrt = a["wrt"]
    if wrt is not None and not isinstance(wrt, str) and not (
            isinstance(wrt, (list, tuple)) and all(isinstance(n, str) for n in wrt)):
        raise TypeError(f"wrt must be None, a name or a sequence of names, got {describe(wrt)}")


def drawn_inputs(values, forward, wrt, h):
    """The drawn inputs fit forward, hold a finite floating array per name of ``wrt``, and h moves them."""
    import inspect

    floats = [n for n, v in values.items() if isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.floating)]
    for name in floats:
        check_finite(values[name], f"inputs[{name!r}]")
        step_moves(values[name], h, f"inputs[{name!r}]")
    if not floats:
        raise ValueError(f"inputs must hold at least one floating ndarray to check, got {sorted(values)}")
    try:
        inspect.signature(forward).bind(*values.values())
    except (TypeError, ValueError) as err:
        if isinstance(err, TypeError) and "argument" in str(err):
            raise TypeError(f"inputs must hold forward's arguments in order, got {list(values)}: {err}") from None
    wrt = list(floats if wrt is None else ([wrt] if isinstance(wrt, str) else wrt))
    if not wrt:
        raise ValueError(f"wrt must name at least one input to check (or be None), got {wrt!r}")
    missing = [n for n in wrt if n not in floats]
    if missing:
        raise ValueError(f"wrt names {missing} are not floating ndarray inputs; those are {floats}")
    return wrt, floats
