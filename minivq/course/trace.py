"""Which exercises a notebook runs, in the order it first runs them (``python -m minivq.course.trace NB``).

A compiled ``.pyx`` function makes no profiler event: a call of a Python function that names it counts.
"""
import json
import os
import re
import sys
from pathlib import Path

from .exercises import COURSE
from .markers import cell_source, find_regions

__all__ = ["region_functions", "exercises_used"]

_DEF = re.compile(r"^(?P<indent>[ \t]*)(?:async\s+)?c?p?def\s+(?:[\w\[\], ]+\s+)?(?P<name>\w+)\s*\(")


def region_functions(root, course=COURSE):
    """Map each exercise to the (file, function name) pairs that hold its regions in the repository at ``root``."""
    found = {}
    for ex in course.exercises:
        path = Path(root) / ex.path
        if path.suffix == ".ipynb":
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        for region in find_regions("\n".join(lines), ex.path):
            if region.name != ex.name:
                continue
            for line in reversed(lines[:region.begin]):
                match = _DEF.match(line)
                if match and len(match.group("indent")) < len(region.indent):
                    found.setdefault(ex.name, set()).add((str(path.resolve()), match.group("name")))
                    break
    return found


def _watcher(functions):
    """A profile function recording, per exercise, the first cell in which one of its functions ran."""
    by_code = {}
    for name, pairs in functions.items():
        for filename, function in pairs:
            by_code.setdefault((filename, function), []).append(name)
    compiled = {function: names for (filename, function), names in by_code.items() if filename.endswith(".pyx")}
    first, state = {}, {"cell": None}

    def profile(frame, event, arg):
        if event != "call":
            return
        code = frame.f_code
        names = list(by_code.get((code.co_filename, code.co_name), ()))
        for function in set(code.co_names) & compiled.keys():
            names += compiled[function]
        for name in names:
            first.setdefault(name, state["cell"])

    return profile, first, state


def exercises_used(notebook, root=None, course=COURSE):
    """[(exercise, first cell index)] that ``notebook`` runs, in order of first use (``root``: the repository,
    default the notebook's folder's parent)."""
    notebook = Path(notebook).resolve()
    root = Path(root) if root is not None else notebook.parent.parent
    profile, first, state = _watcher(region_functions(root, course))
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    namespace, cwd = {"__name__": "__main__"}, os.getcwd()
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.chdir(notebook.parent)
    sys.setprofile(profile)
    try:
        for i, cell in enumerate(cells):
            if cell["cell_type"] == "code":
                state["cell"] = i
                exec(compile(cell_source(cell), f"{notebook.name} cell {i}", "exec"), namespace)
    finally:
        sys.setprofile(None)
        os.chdir(cwd)
    return sorted(first.items(), key=lambda item: item[1])


if __name__ == "__main__":
    for path in sys.argv[1:]:
        used = exercises_used(path)
        print(f"{path}: " + ", ".join(f"{name} (cell {cell})" for name, cell in used), flush=True)
