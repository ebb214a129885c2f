"""The student's self-check: the copy's public graded tests in one pytest process, one row per exercise."""
import json
import os
import shlex
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

from ..cli.checks import UsageError
from ..nearest import PUREPYTHON_ENV
from .exercises import COURSE
from .report import format_report, resolve_needs, graded_files, test_row, total, write_report
from .student import HANDOUT_FILE

__all__ = ["grade", "check_pytest", "format_report", "write_report", "SELF_CHECK_NOTE"]

SELF_CHECK_NOTE = ("This is the self-check: the public tests of this copy. The teacher's grading also runs hidden "
                   "checks (fresh shapes and seeds), each exercise on its own, so a pass here is not yet a grade.")


def _handout(directory):
    """The exercises handed out in a student copy (None for the instructor version)."""
    path = directory / HANDOUT_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))["exercises"]
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"DIR {directory}: {HANDOUT_FILE} is not a handout written by minivq course student "
                         f"({type(e).__name__}: {e})") from None


def check_pytest(directory="."):
    """UsageError, in one line, when this Python (which runs the graded tests) cannot import pytest."""
    if find_spec("pytest") is not None:
        return
    directory = Path(directory).resolve()
    where = "." if directory == Path.cwd().resolve() else str(directory)
    raise UsageError(f"pytest is not installed for {sys.executable}, which runs the graded tests: run "
                     f"pip install -e {shlex.quote(where + '[test]')} (the handout with its test extra), "
                     "then grade again")


def _run_pytest(directory, patterns, package, say):
    """One pytest process over the graded tests; the plugin's results."""
    files = graded_files(directory, patterns)
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")
    # the graded tests run the kernels the handout built: with MINIVQ_PUREPYTHON=1 passed on, the teaching
    # kernel's tests would skip, and its exercise could neither pass nor fail
    env.pop(PUREPYTHON_ENV, None)
    env["PYTHONPATH"] = os.pathsep.join([str(directory)] + [p for p in [env.get("PYTHONPATH")] if p])
    with tempfile.TemporaryDirectory(prefix="minivq-grade-") as tmp:
        select, out = Path(tmp) / "select.json", Path(tmp) / "results.json"
        select.write_text(json.dumps(patterns), encoding="utf-8")
        cmd = [sys.executable, "-m", "pytest", "-p", "minivq.course.plugin", "--course-select", str(select),
               "--course-out", str(out), "--course-package", package, "-q", "-p", "no:cacheprovider",
               "--continue-on-collection-errors",
               "--rootdir", str(directory), *files]
        say(f"course grade: running {len(patterns)} graded test pattern(s) from {len(files)} file(s) in {directory}")
        proc = subprocess.run(cmd, cwd=directory, env=env, stdout=subprocess.PIPE, stderr=None,  # progress shows
                              text=True)
        if not out.is_file():
            tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
            raise RuntimeError(f"pytest stopped before the graded tests ran (exit {proc.returncode}):\n{tail}")
        return json.loads(out.read_text(encoding="utf-8"))


def _check_imported_from(directory, results, package):
    where = results["modules"].get(package)
    if where is None or where.startswith("import failed") or directory not in Path(where).resolve().parents:
        raise ValueError(f"DIR {directory}: the graded tests imported {package} from {where}, not from this "
                         f"folder; grade the folder that holds the {package} package")


def grade(directory=".", *, exercises=None, course=COURSE, say=print):
    """The self-check report of ``directory`` (a copy or the repository): the public graded tests of
    ``exercises`` (default: those handed out, or all); UsageError without pytest."""
    directory = Path(directory).resolve()
    if not (directory / "tests").is_dir():
        raise ValueError(f"DIR {directory} has no tests/ folder; give the root of a student copy or of the repository")
    check_pytest(directory)  # before anything runs
    handout = _handout(directory)
    selected = course.select(exercises if exercises is not None else handout)
    public = {ex.name: list(ex.tests) for ex in selected}
    patterns = list(dict.fromkeys(p for ex in selected for p in public[ex.name]))
    package_dir = directory / course.package
    if package_dir.is_dir() and not any(package_dir.glob("_nearest_teaching*.so")) \
            and not any(package_dir.glob("_nearest_teaching*.pyd")):
        say(f"course grade: warning: {package_dir} holds no compiled kernel; the exercises that need one fail "
            f"until you build the copy: pip install -e {directory}")
    results = _run_pytest(directory, patterns, course.package, say)
    _check_imported_from(directory, results, course.package)
    rows = resolve_needs([test_row(ex, results, public[ex.name]) for ex in selected], course)
    return {"directory": str(directory), "mode": "self-check", "student_copy": handout is not None,
            "exercises": rows, "total": total(rows), "note": SELF_CHECK_NOTE}
