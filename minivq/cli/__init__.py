"""The ``minivq`` command (also ``python -m minivq``) and the tools it runs.

- :mod:`.parser`: the parser of the subcommands, and :func:`main`, which runs
  one and turns every error a user can cause into one line;
- :mod:`.commands`: what ``minivq train``, ``minivq evaluate`` and ``minivq demo`` do;
- :mod:`.demo`: the paper's ablation in miniature, trained, scored and written up;
- :mod:`.checks`: the checks of the command's arguments, made before any work starts;
- :mod:`.parallel`: independent runs in worker processes (``--jobs``);
- :mod:`.progress`: durations, the ETA clock, the epoch line;
- :mod:`.demo_report`: what the demo writes, and whose results a folder holds;
- :mod:`.startup`: what the command does before anything else is imported
  (Ctrl-C and unreadable environment switches in one line).

``minivq study`` and ``minivq course`` are :mod:`minivq.study` and :mod:`minivq.course`.

This file imports none of them: training imports :mod:`.progress`, and a
package's ``__init__`` runs before any of its modules, so importing the
parser here would import training from training. :func:`main` imports the
parser when it is called.
"""
import importlib
import warnings

__all__ = ["main"]

# Names this module held before 0.3 (when it was minivq/cli.py) -> the module that holds them now.
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
    """``minivq.cli.build_parser`` and the like (before 0.3): a DeprecationWarning, then the name's new home."""
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    new = f"{__name__}.{_MOVED[name]}"
    warnings.warn(f"{__name__}.{name} is now {new}.{name}; the old name goes in minivq 0.4",
                  DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(new), name)
