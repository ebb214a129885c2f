"""The ``minivq`` command (also ``python -m minivq``): :mod:`.parser` parses and runs a subcommand
(:mod:`.commands`, :mod:`.demo`), :mod:`.startup` runs before anything else is imported.

This file imports none of them (training imports :mod:`.progress`, and importing the parser here would import
training from training): :func:`main` imports the parser when it is called.
"""
import importlib
import warnings

__all__ = ["main"]

# Names this module held when it was minivq/cli.py -> the module that holds them now.
_MOVED = {"build_parser": "parser", "load_split": "demo", "DEMO": "demo", "QUICK": "demo"}


def main(argv=None):
    """Entry point of the ``minivq`` console script: :func:`minivq.cli.parser.main`; returns the exit code."""
    from . import startup

    try:
        from .parser import main as run  # NumPy, matplotlib, ...: Ctrl-C here is startup's one line
        startup.disarm()
        return run(argv)
    finally:
        startup.rearm()


def __getattr__(name):
    """``minivq.cli.build_parser`` and the other old names: a DeprecationWarning, then the name's new home."""
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    new = f"{__name__}.{_MOVED[name]}"
    warnings.warn(f"{__name__}.{name} is now {new}.{name}; the old name goes in minivq 0.4",
                  DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(new), name)
