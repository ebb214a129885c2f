"""Gradient checking by central finite differences (METHOD.md section 8).

Every hand-derived backward pass in minivq is proved right the same way: draw
a random upstream gradient ``dout``, run the analytic backward, and compare it
with the numerical gradient of the scalar ``sum(f(x) * dout)``, entry by
entry, in float64. A random ``dout`` (not all ones) exercises every output
entry with a different weight, so a transposed or permuted gradient cannot
hide behind a symmetric one.

Functions with discrete decisions inside (the argmin of vector quantization,
the sign of a ReLU) are piecewise smooth: a finite difference that straddles
a *kink* measures a jump, not a derivative. :func:`check_backward` takes a
``kinks`` callable returning those decisions and redraws the point whenever
a perturbation x + h or x - h changes them.

``notebooks/02_layers_and_gradient_checks.ipynb`` shows the checker at work;
``tests/test_gradcheck.py`` checks the checker with deliberately wrong
backward passes.
"""
import numpy as np

from .checks import checked
from .checks import gradcheck as check

__all__ = ["GradientCheckError", "rel_error", "numerical_gradient", "check_backward"]


class GradientCheckError(AssertionError):
    """An analytic gradient disagrees with the numerical one (or no kink-free point was found)."""


class _KinkCrossed(Exception):
    """Internal: a perturbation x +/- h changed the discrete decisions."""

    def __init__(self, name, index):
        super().__init__(name, index)
        self.name, self.index = name, index


@checked(check.rel_error, skip_nested=False)
def rel_error(a, b):
    """Relative error max|a - b| / max(1e-8, max(|a| + |b|)).

    Parameters
    ----------
    a, b : array_like, same shape (or scalars)

    Returns
    -------
    float
        0.0 for empty arrays. Below ~1e-7 in float64 means "agree".

    Notes
    -----
    The denominator uses the largest |a| + |b| over all entries, so a tiny
    gradient entry next to large ones is judged on the scale of the whole
    gradient (METHOD.md section 8).
    """
    if a.size == 0:
        return 0.0
    scale = max(1e-8, float(np.max(np.abs(a) + np.abs(b))))
    return float(np.max(np.abs(a - b)) / scale)


def _weighted_sum(out, dout):
    """sum(out * dout) in float64: the scalar whose gradient backward computes."""
    out = np.asarray(out, dtype=np.float64)
    if out.shape != dout.shape:  # broadcasting would silently weigh the wrong entries
        raise ValueError(f"dout must have the shape of f(x) {out.shape}, got {dout.shape}")
    return float(np.sum(out * dout))


def _central_differences(f, x, dout, h, on_perturbed=None):
    """Numerical gradient of sum(f(x) * dout); ``on_perturbed(index)`` runs at x +/- h."""
    dout = np.asarray(dout, dtype=np.float64)
    grad = np.zeros(x.shape, dtype=np.float64)
    for index in np.ndindex(x.shape):
        old = x[index]
        try:
            x[index] = old + h
            f_plus = _weighted_sum(f(x), dout)
            if on_perturbed is not None:
                on_perturbed(index)
            x[index] = old - h
            f_minus = _weighted_sum(f(x), dout)
            if on_perturbed is not None:
                on_perturbed(index)
        finally:
            x[index] = old  # restore, even when f or on_perturbed raises
        grad[index] = (f_plus - f_minus) / (2 * h)
    return grad.astype(x.dtype, copy=False)


@checked(check.numerical_gradient, skip_nested=False)
def numerical_gradient(f, x, dout, h=1e-5):
    """Central-difference gradient of sum(f(x) * dout) with respect to x.

    Parameters
    ----------
    f : callable
        ``f(x)`` returns an array (the shape of ``dout``) or a scalar.
    x : ndarray, floating
        Perturbed **in place**, one entry at a time, and restored.
    dout : array_like or float
        Upstream gradient, the shape of ``f(x)`` (a ValueError otherwise).
    h : float > 0
        Step; the truncation error is O(h^2), the rounding error O(eps / h).
        It must move every entry (x + h != x): a ValueError otherwise.

    Returns
    -------
    ndarray, the shape and dtype of x

    Notes
    -----
    d/dx_i sum(f(x) * dout) ~ [g(x + h e_i) - g(x - h e_i)] / (2 h),
    with g(x) = sum(f(x) * dout) accumulated in float64.
    """
    _weighted_sum(f(x), dout)  # dout must fit f(x), even for an empty x
    return _central_differences(f, x, dout, h)


def _is_float_array(value):
    return isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating)


def _draw_inputs(inputs, rng):
    """A fresh dict of inputs; floating arrays are copied so the caller's are never touched."""
    values = inputs(rng) if callable(inputs) else inputs
    if not isinstance(values, dict):
        raise TypeError(f"inputs must be a dict name -> value (or return one), got {type(values).__name__}")
    return {k: v.copy() if _is_float_array(v) else v for k, v in values.items()}


def _draw_dout(out, rng):
    """Upstream gradient ~ N(0, 1) of out's shape (out's dtype for arrays)."""
    if isinstance(out, np.ndarray):
        dtype = out.dtype if np.issubdtype(out.dtype, np.floating) else np.float64
        return rng.standard_normal(out.shape).astype(dtype)
    return float(rng.standard_normal())


def _analytic(backward, dout, cache, wrt, all_float, values):
    """Call backward and map its gradients to the names in ``wrt``."""
    grads = backward(dout, cache)
    grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
    if len(grads) == len(wrt):
        named = dict(zip(wrt, grads, strict=True))
    elif len(grads) == len(all_float) and set(wrt) <= set(all_float):
        named = {n: g for n, g in zip(all_float, grads, strict=True) if n in wrt}
    else:
        raise ValueError(
            f"backward returned {len(grads)} gradient(s); expected {len(wrt)} (one per name in wrt={wrt})"
        )
    for name, grad in named.items():
        if np.shape(grad) != np.shape(values[name]):
            raise ValueError(
                f"gradient for {name!r} must have shape {np.shape(values[name])}, got {np.shape(grad)}"
            )
    # copies: a gradient may alias an input that the finite differences perturb
    return {name: np.array(grad, copy=True) for name, grad in named.items()}


def _check_point(forward, backward, values, wrt, all_float, kinks, rng, h):
    """One attempt: analytic and numerical gradients at the current point."""
    result = forward(*values.values())
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(f"forward must return a tuple (out, cache), got {type(result).__name__}")
    out, cache = result
    dout = _draw_dout(out, rng)
    analytic = _analytic(backward, dout, cache, wrt, all_float, values)
    base = None if kinks is None else np.asarray(kinks(*values.values()))
    numeric = {}
    for name in wrt:

        def still_smooth(index, name=name):
            if not np.array_equal(np.asarray(kinks(*values.values())), base):
                raise _KinkCrossed(name, index)

        numeric[name] = _central_differences(
            lambda _x: forward(*values.values())[0],
            values[name],
            dout,
            h,
            None if kinks is None else still_smooth,
        )
    return analytic, numeric


def _jitter(values, wrt, rng, h):
    """Move every checked input by ~100 h (relative) off a kink."""
    for name in wrt:
        x = values[name]
        x += (100 * h * (1 + np.abs(x)) * rng.standard_normal(x.shape)).astype(x.dtype)


def _failure_message(name, analytic, numeric, err, tol):
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    worst = np.unravel_index(np.argmax(np.abs(a - n)), a.shape) if a.ndim else ()
    return (
        f"gradient check failed for {name!r}: rel_error {err:.3e} > tol {tol:.1e}; "
        f"worst index {tuple(int(i) for i in worst)}: analytic {a[worst]:.10g}, "
        f"numerical {n[worst]:.10g} (gradient scale max|analytic| {np.max(np.abs(a)) if a.size else 0:.3g})"
    )


@checked(check.check_backward, skip_nested=False)
def check_backward(forward, backward, inputs, wrt=None, *, kinks=None, rng=None, h=1e-5,
                   tol=1e-7, max_redraws=20, raise_on_fail=True):
    """Compare a hand-derived backward pass with central finite differences (METHOD.md section 8).

    Parameters
    ----------
    forward : callable, ``forward(*inputs.values()) -> (out, cache)``; out an array or a scalar
    backward : callable, ``backward(dout, cache)`` -> one gradient per name in ``wrt`` (or per floating input)
    inputs : dict name -> value in the order of forward's arguments (non-floating values pass through),
        or ``draw(rng) -> dict`` (preferred with kinks: the point is redrawn)
    wrt : sequence of str, optional; default every floating ndarray input
    kinks : callable, optional; ``kinks(*inputs.values())`` -> array of discrete decisions (argmin codes,
        ReLU signs), which must be the same at x +/- h as at x; else the point is redrawn or jittered
    rng : np.random.Generator or int, optional; h, tol : float > 0; max_redraws : int >= 0
    raise_on_fail : bool; raise :class:`GradientCheckError` on failure

    Returns
    -------
    dict: input name -> :func:`rel_error` between the analytic and numerical gradients, against a
    random upstream gradient dout ~ N(0, 1). Run it in float64: in float32 no step h gets the
    numerical gradient much below a relative error of 1e-3.
    """
    values = _draw_inputs(inputs, rng)
    wrt, all_float = check.drawn_inputs(values, forward, wrt, h)
    for _ in range(max_redraws + 1):
        try:
            analytic, numeric = _check_point(forward, backward, values, wrt, all_float, kinks, rng, h)
            break
        except _KinkCrossed as crossed:
            last = crossed
            if callable(inputs):
                values = _draw_inputs(inputs, rng)
            else:
                _jitter(values, wrt, rng, h)
    else:
        raise GradientCheckError(
            f"no kink-free point after {max_redraws} redraws: the decisions changed at "
            f"{last.name!r} index {last.index} +/- h={h}; use a smaller h or a draw away from kinks"
        )
    errors = {name: rel_error(analytic[name], numeric[name]) for name in wrt}
    bad = [name for name in wrt if not errors[name] < tol]
    if bad and raise_on_fail:
        name = max(bad, key=errors.get)
        raise GradientCheckError(_failure_message(name, analytic[name], numeric[name], errors[name], tol))
    return errors
