"""The module paths of minivq 0.2 that moved in 0.3: each still imports, with a DeprecationWarning, until 0.4.

``import minivq.evaluate`` (or ``minivq.figures`` after ``import minivq``)
warns and gives the module at its new path, the very same module object, so
``minivq.evaluate.evaluate is minivq.metrics.evaluate.evaluate``. A finder on
``sys.meta_path`` answers for the old names; CHANGES.md lists the moves.
"""
import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "minivq.cli_checks": "minivq.cli.checks",
    "minivq.commands": "minivq.cli.commands",
    "minivq.demo": "minivq.cli.demo",
    "minivq.parallel": "minivq.cli.parallel",
    "minivq.progress": "minivq.cli.progress",
    "minivq.study_runs": "minivq.study.runs",
    "minivq.study_analysis": "minivq.study.analysis",
    "minivq.study_report": "minivq.study.report",
    "minivq.figures": "minivq.report.figures",
    "minivq.evaluate": "minivq.metrics.evaluate",
    "minivq.checkpoint": "minivq.io.checkpoint",
    "minivq.atomic": "minivq.io.atomic",
}


def _warn(old):
    warnings.warn(f"{old} is now {MOVED[old]}; the old path goes in minivq 0.4", DeprecationWarning, stacklevel=3)


class MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name of :data:`MOVED`; loading it warns and returns the module of the new name."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        _warn(spec.name)  # stacklevel: the import statement's line (warnings skip the import machinery's frames)
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module):
        pass  # the module at the new path is already executed


def moved_attribute(name):
    """``minivq.<old name>`` as an attribute: the package's ``__getattr__``, called for names it does not have."""
    old = f"minivq.{name}"
    if old not in MOVED:
        raise AttributeError(f"module 'minivq' has no attribute {name!r}")
    _warn(old)
    module = sys.modules[old] = importlib.import_module(MOVED[old])
    setattr(sys.modules["minivq"], name, module)  # as an import of the old path leaves it
    return module


sys.meta_path.insert(0, MovedFinder())  # before the path finder, so no stale file of an old name is found
