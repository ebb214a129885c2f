"""The pytest plugin ``minivq course grade`` runs the graded tests with.

``python -m pytest -p minivq.course.plugin --course-select SEL --course-out OUT FILES``
keeps, among the tests of FILES, those whose node id matches a pattern of
the JSON list in SEL (see :func:`matches`), runs them, and writes to OUT one JSON object:

- ``tests``: node id -> ``{"outcome", "message", "rel_error"}``, outcome
  ``passed``, ``failed`` or ``skipped``; message the first line of the
  error (e.g. ``NotImplementedError: exercise ema_update: ...``);
  rel_error the largest relative error :func:`minivq.gradcheck.rel_error`
  returned during the test (its gradient checks), or null;
- ``collect_errors``: test file -> why it could not be collected;
- ``modules``: the file each package of ``--course-package`` was imported from.

How the gradient-check error is measured: for the session, the plugin
wraps ``minivq.gradcheck.rel_error`` (the function every gradient check of
the test suite goes through: :func:`minivq.gradcheck.check_backward` looks
it up at each call), so no test has to report anything.
"""
import fnmatch
import functools
import importlib
import json
import sys

__all__ = ["matches"]


def matches(nodeid, pattern):
    """True when ``nodeid`` is selected by ``pattern``.

    ``file`` selects every test of the file; ``file::test`` that test and
    all its parametrizations;
    ``file::test[glob]`` the parametrizations whose id (between the
    brackets) matches the shell wildcard ``glob``, e.g. ``[*-teaching]``.
    """
    if "::" not in pattern:
        return nodeid.split("::", 1)[0] == pattern
    if "[" not in pattern:
        return nodeid == pattern or nodeid.startswith(pattern + "[")
    base, params = pattern.split("[", 1)
    if not (nodeid.startswith(base + "[") and nodeid.endswith("]") and params.endswith("]")):
        return False
    return fnmatch.fnmatchcase(nodeid[len(base) + 1:-1], params[:-1])


def pytest_addoption(parser):
    group = parser.getgroup("minivq course")
    group.addoption("--course-select", default=None, help="JSON file: the node id patterns to run")
    group.addoption("--course-out", default=None, help="JSON file the results are written to")
    group.addoption("--course-package", action="append", default=[], help="record where this package is imported from")


def pytest_configure(config):
    if config.getoption("course_out"):
        config.pluginmanager.register(_Recorder(config), "minivq_course_recorder")


def _first_line(text):
    """The first non-empty line, with the next one when it ends with ':' (numpy's assertion messages)."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[1]}"
    return lines[0] if lines else ""


def _message(report):
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return _first_line(crash.message)
    if isinstance(report.longrepr, tuple):  # a skip: (file, line, reason)
        return _first_line(report.longrepr[-1])
    lines = [line for line in str(report.longrepr).splitlines() if line.strip()]
    last = lines[-1].strip() if lines else ""
    return last[1:].strip() if last.startswith("E ") else last  # pytest's "E   " error prefix


class _Recorder:
    """Selects the graded tests, measures their gradient-check errors and writes the results."""

    def __init__(self, config):
        with open(config.getoption("course_select"), encoding="utf-8") as f:
            self.patterns = json.load(f)
        self.out = config.getoption("course_out")
        self.packages = config.getoption("course_package")
        self.tests, self.collect_errors, self.current, self.total = {}, {}, None, 0
        self.gradcheck, self.rel_error = None, None
        try:
            self.gradcheck = importlib.import_module("minivq.gradcheck")
        except Exception:  # a broken copy: grade without the error measurement
            return
        self.rel_error = self.gradcheck.rel_error

        @functools.wraps(self.rel_error)
        def measured(a, b):
            value = self.rel_error(a, b)
            if self.current is not None:
                entry = self.tests.setdefault(self.current, {})
                entry["rel_error"] = max(entry.get("rel_error") or 0.0, value)
            return value

        self.gradcheck.rel_error = measured

    def pytest_collection_modifyitems(self, session, config, items):
        keep = [item for item in items if any(matches(item.nodeid, p) for p in self.patterns)]
        dropped = [item for item in items if item not in keep]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
        self.total = len(keep)

    def pytest_collectreport(self, report):
        if report.failed:
            self.collect_errors[report.nodeid] = _message(report)

    def pytest_runtest_setup(self, item):
        self.current = item.nodeid

    def pytest_runtest_logreport(self, report):
        entry = self.tests.setdefault(report.nodeid, {})
        setup_not_passed = report.when == "setup" and not report.passed
        teardown_failed = report.when == "teardown" and report.failed and entry.get("outcome") != "failed"
        if report.when == "call" or setup_not_passed or teardown_failed:
            entry["outcome"] = report.outcome
            entry["message"] = "" if report.passed else _message(report)
        if report.when == "teardown":
            self.current = None
            self._progress(sum(1 for e in self.tests.values() if "outcome" in e))

    def _progress(self, done):
        """A progress line on stderr: rewritten in place on a terminal, else at every quarter."""
        if sys.stderr.isatty():
            print(f"\r  graded tests {done}/{self.total}", end="" if done < self.total else "\n",
                  file=sys.stderr, flush=True)
        elif self.total and (4 * done) // self.total > (4 * (done - 1)) // self.total:
            print(f"  graded tests {done}/{self.total}", file=sys.stderr, flush=True)

    def pytest_sessionfinish(self, session):
        if self.gradcheck is not None:
            self.gradcheck.rel_error = self.rel_error
        modules = {}
        for name in self.packages:
            try:
                modules[name] = getattr(importlib.import_module(name), "__file__", None)
            except Exception as e:  # the copy does not import: say why
                modules[name] = f"import failed: {type(e).__name__}: {e}"
        result = {"tests": {k: {"outcome": v.get("outcome", "failed"), "message": v.get("message", ""),
                                "rel_error": v.get("rel_error")} for k, v in self.tests.items()},
                  "collect_errors": self.collect_errors, "modules": modules}
        with open(self.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)
