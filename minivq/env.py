"""minivq's environment switches, read one way: 1/0, true/false, yes/no, on/off (any case), or unset.

``MINIVQ_PUREPYTHON`` forces the NumPy reference of the kernels (read once,
when :mod:`minivq.nearest` is imported); ``MINIVQ_DEBUG`` makes the command
show tracebacks. A value that is none of those words is refused in one line
naming the variable: ``MINIVQ_PUREPYTHON=false`` means off, and a typo such
as ``MINIVQ_DEBUG=ture`` is an error, not a silent "on".
"""
import os

__all__ = ["SWITCHES", "EnvError", "env_flag", "check_switches"]

#: Every boolean environment variable minivq reads.
SWITCHES = ("MINIVQ_PUREPYTHON", "MINIVQ_DEBUG")
_ON, _OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class EnvError(ValueError):
    """An environment variable with a value minivq cannot read (the message names it)."""


def env_flag(name, default=False, environ=None):
    """The boolean value of the environment variable ``name``.

    Parameters
    ----------
    name : str
    default : bool
        The value when the variable is unset or empty.
    environ : mapping or None
        Default ``os.environ``.

    Returns
    -------
    bool

    Raises
    ------
    EnvError
        For any other value, naming the variable and the words it takes.
    """
    value = (os.environ if environ is None else environ).get(name, "").strip()
    if not value:
        return bool(default)
    if value.lower() in _ON:
        return True
    if value.lower() in _OFF:
        return False
    raise EnvError(f"environment variable {name}={value!r}: expected 1/0, true/false, yes/no or on/off "
                   f"(any case), or unset it")


def check_switches(environ=None):
    """Read every variable of :data:`SWITCHES` once; EnvError for the first that cannot be read."""
    for name in SWITCHES:
        env_flag(name, environ=environ)
