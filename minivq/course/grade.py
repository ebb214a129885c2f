"""Grading: run the graded tests of every exercise against a folder, one row per exercise.

:func:`grade` runs ONE pytest process in the graded folder (its tests, its
package: ``PYTHONPATH`` puts the folder first) with the plugin of
:mod:`minivq.course.plugin`, which keeps only the graded tests and records
each one's outcome, first error line and gradient-check error. An exercise
scores its points when all its graded tests pass (all or nothing). A
failing exercise gets a reason: "not implemented" (its own stub raised),
"needs exercise X first" (another exercise's stub raised), or the first
failure. :func:`format_report` prints the rows and the total;
``minivq course grade --json FILE`` writes the same report, strict JSON, for
a learning-management system.
"""
import json
import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path

from ..cli.checks import UsageError
from ..io.atomic import atomic_write_text
from ..nearest import PUREPYTHON_ENV
from .exercises import COURSE
from .plugin import matches
from .student import HANDOUT_FILE

__all__ = ["grade", "check_pytest", "format_report", "write_report"]

_NOT_IMPLEMENTED = re.compile(r"NotImplementedError: exercise ([a-z][a-z0-9_]*):")


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
    """UsageError, in one line, when the Python that runs the graded tests cannot import pytest.

    The graded tests run in ``sys.executable -m pytest``, this interpreter: pytest comes with the
    ``[test]`` extra of the handout (``pip install -e ".[test]"``), not with ``pip install -e .``.
    """
    if find_spec("pytest") is not None:
        return
    directory = Path(directory).resolve()
    where = "." if directory == Path.cwd().resolve() else str(directory)
    raise UsageError(f"pytest is not installed for {sys.executable}, which runs the graded tests: run "
                     f"pip install -e {shlex.quote(where + '[test]')} (the handout with its test extra), "
                     "then grade again")


def _run_pytest(directory, patterns, package, say):
    """One pytest process over the graded tests; the plugin's results."""
    files = sorted({p.split("::", 1)[0] for p in patterns if (directory / p.split("::", 1)[0]).is_file()})
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


def _reason(ex, failed, missing):
    if missing:
        return f"graded test not found: {missing[0]}"
    if not failed:
        return ""
    if any("compiled kernel not in use" in msg for _, msg in failed):
        return "the copy's compiled kernels are not built: pip install -e DIR, then grade again"
    named = [m.group(1) for _, msg in failed for m in [_NOT_IMPLEMENTED.search(msg)] if m]
    if ex.name in named:
        return "not implemented"
    if named:
        return f"needs exercise {named[0]} first"
    if ex.buggy is not None:  # a spot-the-bug exercise: say what to look for, then the first failure
        return f"{ex.instruction}; {len(failed)} test(s) fail: {failed[0][1]}"[:200]
    return f"{len(failed)} test(s) fail: {failed[0][1]}"[:160]


def _score(ex, results):
    """The report row of one exercise."""
    tests = results["tests"]
    rows, missing = [], []
    for pattern in ex.tests:
        hits = [nodeid for nodeid in tests if matches(nodeid, pattern)]
        file = pattern.split("::", 1)[0]
        errors = [msg for nodeid, msg in results["collect_errors"].items() if nodeid == file]
        if errors:
            rows.append((pattern, {"outcome": "failed", "message": f"cannot collect {file}: {errors[0]}"}))
        elif not hits:
            missing.append(pattern)
        rows += [(nodeid, tests[nodeid]) for nodeid in hits]
    failed = [(nodeid, t["message"] or t["outcome"]) for nodeid, t in rows if t["outcome"] != "passed"]
    passed = not failed and not missing and bool(rows)
    errors = [t["rel_error"] for _, t in rows if t.get("rel_error") is not None and math.isfinite(t["rel_error"])]
    return {"name": ex.name, "kind": ex.kind, "points": ex.points, "score": ex.points if passed else 0,
            "passed": passed, "method_ids": list(ex.method_ids), "path": ex.path, "tests": len(rows),
            "failed": [{"test": n, "message": m} for n, m in failed], "reason": _reason(ex, failed, missing),
            "rel_error": max(errors) if errors else None, "threshold": ex.threshold}


def grade(directory=".", *, exercises=None, course=COURSE, say=print):
    """Run the graded tests of the exercises against ``directory``.

    Parameters
    ----------
    directory : str or Path
        A student copy or the instructor repository (it needs ``tests/``).
    exercises : list of str or None
        The exercises to grade; default: those the copy's handout lists, or
        all for the instructor version.
    course : Course
    say : callable
        Progress lines.

    Raises
    ------
    UsageError
        pytest is not installed for this Python (see :func:`check_pytest`).

    Returns
    -------
    dict
        ``directory``, ``exercises`` (one row each: name, kind, points,
        score, passed, method_ids, path, tests, failed, reason, rel_error,
        threshold) and ``total`` (score, points, passed, exercises).
    """
    directory = Path(directory).resolve()
    if not (directory / "tests").is_dir():
        raise ValueError(f"DIR {directory} has no tests/ folder; give the root of a student copy or of the repository")
    check_pytest(directory)  # before anything runs
    handout = _handout(directory)
    selected = course.select(exercises if exercises is not None else handout)
    patterns = list(dict.fromkeys(p for ex in selected for p in ex.tests))
    package_dir = directory / course.package
    if package_dir.is_dir() and not any(package_dir.glob("_nearest_teaching*.so")) \
            and not any(package_dir.glob("_nearest_teaching*.pyd")):
        say(f"course grade: warning: {package_dir} holds no compiled kernel; the exercises that need one fail "
            f"until you build the copy: pip install -e {directory}")
    results = _run_pytest(directory, patterns, course.package, say)
    _check_imported_from(directory, results, course.package)
    rows = [_score(ex, results) for ex in selected]
    total = {"score": sum(r["score"] for r in rows), "points": sum(r["points"] for r in rows),
             "passed": sum(r["passed"] for r in rows), "exercises": len(rows)}
    return {"directory": str(directory), "student_copy": handout is not None, "exercises": rows, "total": total}


def _error_cell(row):
    if row["threshold"] is None:
        return "-"
    measured = "n/a" if row["rel_error"] is None else f"{row['rel_error']:.1e}"
    return f"{measured} < {row['threshold']:.0e}"


def format_report(report):
    """The report as a table, one row per exercise, and the total line."""
    head = f"{'exercise':<28} {'points':>6}  {'METHOD.md':<16} {'result':<6}  {'rel_error < threshold':<22} note"
    lines = [head, "-" * len(head)]
    for r in report["exercises"]:
        result = "pass" if r["passed"] else "FAIL"
        lines.append(f"{r['name']:<28} {r['score']:>2}/{r['points']:<3}  {', '.join(r['method_ids']):<16} "
                     f"{result:<6}  {_error_cell(r):<22} {r['reason']}".rstrip())
    t = report["total"]
    lines.append(f"total: {t['score']}/{t['points']} points, {t['passed']}/{t['exercises']} exercises pass")
    return "\n".join(lines)


def write_report(report, path):
    """Write ``report`` as strict JSON to ``path`` (atomically)."""
    atomic_write_text(path, json.dumps(report, indent=1, allow_nan=False) + "\n")
