"""The teacher's grading: the teacher's code with the student's regions spliced in, one exercise per child.

A pristine tree is built once from the teacher's repository; each exercise runs in a copy of it holding
only its own regions and those it runs through (:mod:`.splice`), in a child (:mod:`.child`) under the
limits of :mod:`.sandbox`.
"""
import compileall
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .report import plain_row, readable, resolve_needs, graded_files, test_row, total
from .sandbox import Job, Pool
from .splice import module_names, read_regions, spliced_text

__all__ = ["Grading", "grade_submissions"]

CHILD = Path(__file__).with_name("child.py")
PLUGIN = Path(__file__).with_name("plugin.py")
SKIP = shutil.ignore_patterns("__pycache__", "*.c", "*.pyc", ".hypothesis", ".pytest_cache", "build")


def _patterns(ex):
    """The graded test patterns of ``ex``, its hidden ones in the graded tree's ``hidden/``."""
    return list(ex.tests) + [p if p.startswith("tests/") else f"hidden/{p}" for p in ex.hidden]


def _signal_name(number):
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class Grading:
    """A grading run: the teacher's ``source``, its ``course``, the ``exercises`` graded, the limits."""

    def __init__(self, source, course, exercises, *, timeout=60.0, memory=4 << 30, output_limit=4 << 20,
                 jobs=None, seed=None, say=print, fork_server=True, reap_orphans=False):
        self.source, self.course, self.exercises = Path(source).resolve(), course, exercises
        self.timeout, self.memory, self.output_limit, self.seed, self.say = timeout, memory, output_limit, seed, say
        self.reap_orphans = reap_orphans
        self.jobs = jobs or max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)
        self.hidden = self.source / course.hidden_dir if course.hidden_dir else None
        self.fork_server = fork_server and hasattr(os, "fork") and sys.platform.startswith("linux")

    # ---------------------------------------------------------------- the pristine tree
    def _prepare(self, tmp):
        base = tmp / "base"
        package = self.source / self.course.package

        def ignore(d, names):
            return set(SKIP(d, names)) | {n for n in names if self.hidden and Path(d) / n == self.hidden}

        shutil.copytree(package, base / self.course.package, ignore=ignore)
        for folder in sorted({"tests"} | {ex.path.split("/", 1)[0] for ex in self.exercises if "/" in ex.path}):
            if folder != self.course.package and (self.source / folder).is_dir():
                shutil.copytree(self.source / folder, base / folder, ignore=SKIP)
        if self.hidden is not None and self.hidden.is_dir():
            (base / "hidden").mkdir()
            for f in self.hidden.glob("*.py"):
                if f.name.startswith(("hidden_", "_draw")):
                    shutil.copy2(f, base / "hidden" / f.name)
        for rel in [ex.path for ex in self.exercises if ex.path.endswith(".pyx")]:
            if not any(p.name.startswith(Path(rel).stem + ".") and p.suffix in (".so", ".pyd")
                       for p in (base / rel).parent.iterdir()):
                raise ValueError(f"--source {self.source}: {rel} is not compiled in the instructor repository; build "
                                 f"it first (pip install -e {self.source}), then grade")
        compileall.compile_dir(str(base), quiet=2, workers=1)
        self._cache_rewritten_tests(base, tmp)
        return base

    def _cache_rewritten_tests(self, base, tmp):
        """Collect the graded tests once, so every child reads pytest's rewritten modules from the cache."""
        files = graded_files(base, [p for ex in self.exercises for p in _patterns(ex)])
        script = ("import sys; sys.path.insert(0, sys.argv[1]); import pytest; "
                  "pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', '--noconftest', '--rootdir', "
                  "sys.argv[1], '-c', '/dev/null', '-o', 'python_files=test_*.py hidden_*.py'] + sys.argv[2:])")
        try:
            subprocess.run([sys.executable, "-I", "-c", script, str(base), *files], cwd=base, env=self._env(0, tmp),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
        except subprocess.TimeoutExpired:  # only a cache: the children rewrite the tests themselves
            pass

    # ---------------------------------------------------------------- one submission
    def _protected(self, ex, index):
        if not ex.path.endswith(".py"):
            return {"np", "numpy", "math"}
        text = (self.source / ex.path).read_text(encoding="utf-8")
        lines = [i for i, line in enumerate(text.splitlines()) if line.strip() == f"### BEGIN SOLUTION {ex.name}"]
        return module_names(text, lines[min(index, len(lines) - 1)] if lines else 0)

    def _jobs_for(self, sub, tmp, base, state):
        """The jobs of one submission; rows of exercises that cannot run go to ``state`` at once."""
        regions = read_regions(sub, self.exercises, self._protected)
        graded = {ex.name for ex in self.exercises}
        for ex in self.exercises:
            own = regions[ex.name]
            if own.status != "ok":
                state["rows"][ex.name] = plain_row(ex, own.status, own.reason, seed=state["seed"])
                continue
            needs = [n for n in self.course.requirements(ex.name) if n in graded]
            broken = [n for n in needs if regions[n].status != "ok"]
            if broken:
                state["rows"][ex.name] = plain_row(ex, "blocked", f"needs exercise {broken[0]} first",
                                                   seed=state["seed"])
                continue
            yield self._job(ex, [ex.name] + needs, regions, tmp / ex.name, base, state)

    def _job(self, ex, spliced, regions, work, base, state):
        root, run = work / "root", work / "run"
        shutil.copytree(base, root, symlinks=False)
        run.mkdir()
        by_file, line_maps = {}, {}
        for name in spliced:
            by_file.setdefault(self.course.get(name).path, {})[name] = regions[name].bodies
        build = []
        for rel, bodies in by_file.items():
            text = (self.source / rel).read_text(encoding="utf-8")
            new, line_map = spliced_text(text, rel, bodies)
            line_maps[rel] = [(a, b, regions[n].lines[i]) for a, b, n, i in line_map]
            (root / rel).write_text(new, encoding="utf-8")
            cached = root / rel
            for pyc in (cached.parent / "__pycache__").glob(cached.stem + ".*.pyc"):
                pyc.unlink()
            if rel.endswith(".pyx"):
                build.append((rel[:-4].replace("/", "."), rel))
        patterns = _patterns(ex)
        files = sorted(graded_files(root, patterns), key=lambda f: (f.startswith("hidden/"), f))  # public first
        config = {"root": str(root), "files": files, "patterns": patterns, "out": str(run / "results.json"),
                  "events": str(run / "events.jsonl"), "log": str(run / "build.log"), "plugin": str(PLUGIN),
                  "memory": self.memory, "file_size": 64 << 20, "build": build,
                  "grader": None if self.fork_server else os.getpid()}
        (run / "config.json").write_text(json.dumps(config), encoding="utf-8")
        env = self._env(state["seed"], run)
        state["pending"][ex.name] = (ex, patterns, work, line_maps)
        return Job((state["index"], ex.name), [sys.executable, "-I", "-B", str(CHILD), str(run / "config.json")],
                   str(root), env, self.timeout)

    @staticmethod
    def _env(seed, run):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(run), "TMPDIR": str(run),
               "LANG": "C.UTF-8", "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(run), "OPENBLAS_NUM_THREADS": "1",
               "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        if seed is not None:
            env["MINIVQ_GRADE_SEED"] = str(seed)
        return env

    # ---------------------------------------------------------------- a child's outcome
    @staticmethod
    def _running_test(run):
        started = None
        try:
            for line in (run / "events.jsonl").read_text(encoding="utf-8", errors="replace").splitlines():
                item = json.loads(line)
                started = item.get("start", started) if "start" in item else (None if item.get("end") == started
                                                                             else started)
        except (OSError, ValueError):
            return None
        return started

    def _row(self, outcome, state):
        ex, patterns, work, line_maps = state["pending"].pop(outcome.key[1])
        run, seed = work / "run", state["seed"]
        where = self._running_test(run)
        during = f" during {where}" if where else ""
        try:
            results = json.loads((run / "results.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            results = None
        if outcome.status == "timeout":
            return plain_row(ex, "timeout", f"timed out after {self.timeout:g} s{during}", seed=seed)
        if outcome.status == "output_limit":
            return plain_row(ex, "output_limit", f"printed more than {self.output_limit >> 20} MB{during}; "
                             "stopped", seed=seed)
        if outcome.returncode is not None and outcome.returncode < 0:
            return plain_row(ex, "crashed", f"crashed with {_signal_name(-outcome.returncode)}{during}", seed=seed)
        if results is None or outcome.returncode:
            memory = " (out of memory?)" if "MemoryError" in outcome.output else ""
            last = [line for line in outcome.output.splitlines() if line.strip()][-1:]
            said = f": {last[0].strip()}" if last else ""
            return plain_row(ex, "exited", readable(f"exited with code {outcome.returncode}{memory} before its "
                                                    f"tests finished{during}{said}", 240), seed=seed)
        if results.get("build_failed"):
            return plain_row(ex, "compile_error", self._build_error(run, line_maps), seed=seed)
        where = results["modules"].get("minivq") or ""
        if where.startswith("import failed"):
            return plain_row(ex, "error", readable(where), seed=seed)
        if results.get("tampered"):
            return plain_row(ex, "tampered", readable(results["tampered"]), seed=seed)
        row = test_row(ex, results, patterns)
        if results.get("stopped") and not row["passed"]:
            row["status"], row["reason"] = "interrupted", readable(results["stopped"])
        row["seed"] = seed
        return row

    @staticmethod
    def _build_error(run, line_maps):
        log = (run / "build.log").read_text(encoding="utf-8", errors="replace") if (run / "build.log").exists() else ""
        for rel, spans in line_maps.items():
            match = re.search(re.escape(rel) + r":(\d+):(\d+): (.+)", log)
            if match:
                line = int(match.group(1))
                for first, last, sub_first in spans:
                    if first <= line <= last:
                        return readable(f"does not compile: {rel}:{sub_first + line - first}: {match.group(3)}")
                return readable(f"does not compile: {rel}: {match.group(3)}")
        errors = [line for line in log.splitlines() if "error" in line.lower()]
        return readable("does not compile: " + (errors[0] if errors else "the C compiler failed"))

    # ---------------------------------------------------------------- the run
    def run(self, submissions, on_report):
        """Grade ``submissions`` (folders); ``on_report(report)`` as each one is done, in order of completion."""
        start = time.monotonic()
        tmp = Path(tempfile.mkdtemp(prefix="minivq-grade-"))
        states, done_count, last_say = {}, [0], [0.0]
        try:
            base = self._prepare(tmp)
            pool = Pool(self.jobs, self.output_limit, reap_orphans=self.reap_orphans,
                        fork_env=self._env(None, tmp) if self.fork_server else None)

            def jobs():
                for index, sub in enumerate(submissions):
                    seed = self.seed if self.seed is not None else secrets.randbelow(2 ** 31)
                    state = {"index": index, "sub": Path(sub), "seed": seed, "rows": {}, "pending": {}}
                    states[index] = state
                    work = tmp / f"s{index}"
                    work.mkdir()
                    yield from self._jobs_for(Path(sub), work, base, state)
                    state["queued"] = True
                    self._maybe_finish(state, on_report, tmp)

            def done(outcome):
                state = states[outcome.key[0]]
                row = self._row(outcome, state)
                row["seconds"] = round(outcome.seconds, 2)
                state["rows"][row["name"]] = row
                shutil.rmtree(tmp / f"s{outcome.key[0]}" / outcome.key[1], ignore_errors=True)
                done_count[0] += 1
                self._maybe_finish(state, on_report, tmp)
                self._progress(start, done_count[0], states, len(submissions), last_say)

            pool.run(jobs(), done)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _maybe_finish(self, state, on_report, tmp):
        if not state.get("queued") or state["pending"] or state.get("finished"):
            return
        state["finished"] = True
        rows = resolve_needs([state["rows"][ex.name] for ex in self.exercises], self.course)
        shutil.rmtree(tmp / f"s{state['index']}", ignore_errors=True)
        on_report({"submission": state["sub"].name, "directory": str(state["sub"].resolve()), "mode": "teacher",
                   "seed": state["seed"], "timeout": self.timeout, "exercises": rows, "total": total(rows)})

    def _progress(self, start, done, states, n_subs, last_say):
        now = time.monotonic()
        finished = sum(1 for s in states.values() if s.get("finished"))
        if now - last_say[0] < 5 and finished < n_subs:
            return
        last_say[0] = now
        graded, wanted = sum(len(s["rows"]) for s in states.values()), n_subs * len(self.exercises)
        left = f", about {_clock((now - start) * (wanted - graded) / graded)} left" if 0 < graded < wanted else ""
        self.say(f"course grade: {finished}/{n_subs} submission(s) done, {graded}/{wanted} exercises graded, "
                 f"{_clock(now - start)} elapsed{left}")


def _clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def grade_submissions(submissions, source, course, exercises, on_report, **options):
    """Grade every folder of ``submissions`` against the teacher's ``source``; see :class:`Grading`."""
    Grading(source, course, exercises, **options).run(submissions, on_report)
