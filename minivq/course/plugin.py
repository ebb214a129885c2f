"""The pytest plugin that records the graded tests (the self-check's and every sandboxed child's).

Keeps the tests matching a pattern of ``--course-select`` and writes to ``--course-out`` a JSON object:
``tests`` (node id -> outcome, message, rel_error, inputs), ``collect_errors``, ``modules`` (where each
``--course-package`` was imported from), ``stopped`` and ``tampered`` (``--course-guard``).
``--course-events`` appends each test's start and end as it happens. Imports nothing from minivq.
"""
import fnmatch
import functools
import importlib
import json
import sys

__all__ = ["matches"]

#: Modules whose functions and classes the guard watches (prefix match for the pytest internals).
GUARDED = ("builtins", "numpy", "numpy.testing", "numpy.linalg", "numpy.random", "math", "json", "os",
           "pytest", "_pytest")


def matches(nodeid, pattern):
    """True when ``pattern`` (``file``, ``file::test`` with all its parametrizations, or ``file::test[glob]``
    with a shell wildcard on the parametrization id) selects ``nodeid``."""
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
    group.addoption("--course-events", default=None, help="JSON-lines file: each test's start and end")
    group.addoption("--course-guard", action="store_true", help="fail the run when numpy, pytest or the "
                                                                 "builtins are replaced during the tests")
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


def _watched(modules):
    """{(module, attribute): identity} of the functions and classes (and their methods) of ``modules``."""
    seen = {}
    for modname, module in modules:
        for name, value in list(vars(module).items()):
            if callable(value) or isinstance(value, type):
                code = getattr(value, "__code__", None)
                seen[modname, name] = (id(value), id(code))
                if isinstance(value, type) and modname.startswith("_pytest"):
                    for attr, member in list(vars(value).items()):
                        seen[modname, f"{name}.{attr}"] = (id(member), id(getattr(member, "__code__", None)))
    return seen


class _Recorder:
    """Selects the graded tests, measures their gradient-check errors and writes the results."""

    def __init__(self, config):
        with open(config.getoption("course_select"), encoding="utf-8") as f:
            self.patterns = json.load(f)
        self.out = config.getoption("course_out")
        self.events = config.getoption("course_events")
        self.guard_on = config.getoption("course_guard")
        self.packages = config.getoption("course_package")
        self.tests, self.collect_errors, self.current, self.total = {}, {}, None, 0
        self.stopped, self.tampered, self.guard = None, None, None
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

        self.measured = measured
        self.gradcheck.rel_error = measured

    def _event(self, **item):
        if self.events:
            with open(self.events, "a", encoding="utf-8") as f:
                f.write(json.dumps(item, default=str) + "\n")

    def pytest_collection_modifyitems(self, session, config, items):
        keep = [item for item in items if any(matches(item.nodeid, p) for p in self.patterns)]
        dropped = [item for item in items if item not in keep]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep
        self.total = len(keep)
        for item in keep:
            self.tests.setdefault(item.nodeid, {})

    def pytest_collection_finish(self, session):
        if self.guard_on:  # after every module is imported: from here on only the code under test changes things
            self.guard = [(n, m) for n, m in list(sys.modules.items()) if m is not None
                          and any(n == g or n.startswith(g + ".") for g in GUARDED)]
            self.guard += [("minivq.course.plugin", sys.modules[__name__])] + \
                ([("minivq.gradcheck", self.gradcheck)] if self.gradcheck else [])
            self.before = _watched(self.guard)

    def pytest_collectreport(self, report):
        if report.failed:
            self.collect_errors[report.nodeid] = _message(report)

    def pytest_runtest_setup(self, item):
        self.current = item.nodeid
        self._event(start=item.nodeid)

    def pytest_runtest_logreport(self, report):
        entry = self.tests.setdefault(report.nodeid, {})
        setup_not_passed = report.when == "setup" and not report.passed
        teardown_failed = report.when == "teardown" and report.failed and entry.get("outcome") != "failed"
        if report.when == "call" or setup_not_passed or teardown_failed:
            entry["outcome"] = report.outcome
            entry["message"] = "" if report.passed else _message(report)
        for key, value in report.user_properties:
            if key == "inputs":
                entry["inputs"] = value
        if report.when == "teardown":
            self.current = None
            self._check_guard()
            self._event(end=report.nodeid, outcome=entry.get("outcome"), message=entry.get("message", ""))
            self._progress(sum(1 for e in self.tests.values() if "outcome" in e))

    def _check_guard(self):
        if self.guard is not None and self.tampered is None:
            now = _watched(self.guard)
            changed = [f"{m}.{a}" for (m, a), ids in self.before.items() if now.get((m, a)) != ids]
            if self.gradcheck is not None and self.gradcheck.rel_error is not self.measured:
                changed.append("minivq.gradcheck.rel_error")
            if changed:
                self.tampered = f"the code under test replaced {', '.join(sorted(changed)[:3])}"

    def pytest_keyboard_interrupt(self, excinfo):
        name = type(excinfo.value).__name__
        name = "pytest.exit" if name == "Exit" else name
        self.stopped = f"{name} stopped the tests" + (f" in {self.current}" if self.current else "")

    def _progress(self, done):
        """A progress line on stderr: rewritten in place on a terminal, else at every quarter."""
        if sys.stderr.isatty():
            print(f"\r  graded tests {done}/{self.total}", end="" if done < self.total else "\n",
                  file=sys.stderr, flush=True)
        elif self.total and (4 * done) // self.total > (4 * (done - 1)) // self.total:
            print(f"  graded tests {done}/{self.total}", file=sys.stderr, flush=True)

    def pytest_sessionfinish(self, session):
        self._check_guard()
        if self.gradcheck is not None:
            self.gradcheck.rel_error = self.rel_error
        modules = {}
        for name in self.packages:
            try:
                modules[name] = getattr(importlib.import_module(name), "__file__", None)
            except Exception as e:  # the copy does not import: say why
                modules[name] = f"import failed: {type(e).__name__}: {e}"
        unfinished = self.stopped or "the session stopped before this test ran"
        result = {"tests": {k: {"outcome": v.get("outcome", "failed"), "message": v.get("message", unfinished),
                                "rel_error": v.get("rel_error"), "inputs": v.get("inputs")}
                            for k, v in self.tests.items()},
                  "collect_errors": self.collect_errors, "modules": modules, "stopped": self.stopped,
                  "tampered": self.tampered}
        with open(self.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1, default=str)
