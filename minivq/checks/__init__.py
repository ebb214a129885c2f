"""Argument checks, in one place and out of the math (STYLE.md "Errors", "checks once, at the boundary").

A public function of minivq is its math, nothing else; its argument checks
reach it through the :func:`checked` decorator, from a function of the same
name in this package::

    @checked(checks.layers.affine_forward)   # validates x, W, b; names them as the caller did
    def affine_forward(x, W, b):
        ...                                  # the equation

A check receives the call's arguments as one dict (name -> value, defaults
filled in), raises TypeError or ValueError naming the argument, the expected
and the actual, and may replace a value by its converted form (a list by an
array, a NumPy integer by an int). Once a checked function runs, the checked
functions it calls skip their checks (their arguments come from checked
code): this is scikit-learn's ``validate_params`` with
``prefer_skip_nested_validation``. So a training loop checks its arguments
once, at its entry, and its thousands of inner calls run the bare math.

:mod:`.arrays` holds the primitives every check is built from (a float
array, a mask, an int in a range, ...); the other modules hold the checks of
one area each.
"""
import contextvars
import functools
import inspect

from .arrays import *  # noqa: F401,F403  (the primitives, for the checks of each area)

__all__ = ["checked", "checking"]

_INSIDE = contextvars.ContextVar("minivq_inside_a_checked_call", default=False)


def checking():
    """True unless a checked function is already running (then its inner calls skip their checks)."""
    return not _INSIDE.get()


def checked(check, *, skip_nested=True):
    """Decorate a public function with its argument check.

    Parameters
    ----------
    check : callable(dict) -> None
        Validates the call's arguments (a dict name -> value, defaults filled
        in) and may replace values by their converted forms.
    skip_nested : bool
        True (default): the checked functions this one calls skip their
        checks. False for a function that calls user code (the gradient
        checker calls the function it checks), whose calls must be checked.
    """
    def decorate(func):
        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            if _INSIDE.get():
                return func(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)  # a wrong argument name: Python's own TypeError
            bound.apply_defaults()
            check(bound.arguments)
            if not skip_nested:
                return func(*bound.args, **bound.kwargs)
            token = _INSIDE.set(True)
            try:
                return func(*bound.args, **bound.kwargs)
            finally:
                _INSIDE.reset(token)

        return wrapper

    return decorate
