"""Run one spec under Hypothesis, sort every outcome, count them; the child-process runner.

A spec is ``Spec(name, fn, draw, expect)``: ``draw(data) -> args`` (a dict of
keyword arguments, all valid; keys starting with "_" are context for expect,
not passed to fn), ``expect(args)`` raises ``Invalid`` or returns a checker
``check(result)`` (or an ``Either``). ``fixed`` names arguments never
corrupted; ``coarse`` ones (a forward's cache) only as a whole.
"""
import copy
import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from .oracle import Either, Invalid, NonFinite, WrongResult
from .values import corrupt

GOOD = ("ok_result", "ok_error")
BAD = ("wrong_result", "nonfinite", "valid_rejected", "silently_accepted", "wrong_argument", "obscure", "hang",
       "crash")
TALLY = Counter()

#: Per-case time limit (seconds) before a case counts as a hang.
CASE_SECONDS = 60

PROFILES = {"ci": 100, "long": 1300}  # examples per spec of weight 1


def profile():
    return "long" if os.environ.get("MINIVQ_FUZZ", "") == "long" else "ci"


@dataclass
class Spec:
    name: str
    fn: object
    draw: object
    expect: object
    weight: float = 1.0
    fixed: tuple = field(default_factory=tuple)
    coarse: tuple = ("cache",)
    corrupt_rate: float = 0.8
    errors: tuple = (ValueError, TypeError)  # the exceptions that count as a refusal


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang()


def _names_in(message, names):
    if "*" in names:  # an internal entry: any ValueError/TypeError will do
        return True
    for n in names:
        pattern = re.escape(n) if not n.isidentifier() else rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])"
        if re.search(pattern, message):
            return True
    return False


def _copy(v):
    """A deep copy that keeps read-only arrays read-only (copy.deepcopy makes them writeable)."""
    if isinstance(v, np.ndarray):
        c = v.copy()
        c.setflags(write=v.flags.writeable)
        return c
    if isinstance(v, dict):
        return {k: _copy(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)) and type(v) in (list, tuple):
        return type(v)(_copy(x) for x in v)
    return copy.deepcopy(v)


def classify(spec, args):
    """Call spec.fn(**args) and return (outcome, detail)."""
    try:
        verdict = spec.expect(_copy(args))
        invalid = None
    except Invalid as inv:
        verdict, invalid = None, inv
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_SECONDS)
    try:
        result = spec.fn(**{k: v for k, v in args.items() if not k.startswith("_")})
    except Hang:
        return "hang", f"over {CASE_SECONDS} s"
    except spec.errors as err:
        names = invalid.names if invalid else verdict.names if isinstance(verdict, Either) else None
        if names is None:
            return "valid_rejected", f"{type(err).__name__}: {err}"
        if not _names_in(str(err), names):
            return "wrong_argument", f"expected one of {names} in {type(err).__name__}: {err}"
        return "ok_error", ""
    except Exception as err:  # anything else leaks an internal error
        return "obscure", f"{type(err).__name__}: {err}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    if invalid is not None:
        return "silently_accepted", f"contract broken ({invalid.names}: {invalid.why}) but it returned"
    check = verdict.checker if isinstance(verdict, Either) else verdict
    try:
        check(result)
    except NonFinite as err:
        return "nonfinite", str(err)
    except WrongResult as err:
        return "wrong_result", str(err)
    return "ok_result", ""


def run_case(spec, data):
    args = spec.draw(data)
    label = "valid"
    if data.draw(st.floats(0, 1), label="corrupt?") < spec.corrupt_rate:
        args, label = corrupt(data, args, spec.fixed, spec.coarse)
    outcome, detail = classify(spec, args)
    TALLY[outcome] += 1
    if outcome in BAD:
        raise AssertionError(f"{spec.name}: {outcome} for {label}: {detail}")


def run_spec(spec, examples=None, shrink=True):
    """Run ``spec`` for its share of the current profile's examples (a failure raises AssertionError)."""
    n = examples or max(2, int(PROFILES[profile()] * spec.weight))
    phases = list(Phase) if shrink else [Phase.generate]

    @settings(max_examples=n, deadline=None, database=None, derandomize=profile() == "ci", print_blob=True,
              suppress_health_check=list(HealthCheck), phases=phases)
    @given(st.data())
    def case(data):
        run_case(spec, data)

    case()


def run_area_in_child(module, timeout=3000):
    """Run every spec of ``module`` (a tests/ module with SPECS) in a child process; returns its report.

    A crash or hang of the child is reported, with the spec it was running.
    """
    tests = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (f"import sys; sys.path.insert(0, {tests!r}); from fuzz.runner import child_main; "
            f"child_main({module!r})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    report = json.loads(lines[-1]) if lines else {"tally": {}, "failures": [], "running": None}
    if proc.returncode != 0:
        running = [json.loads(ln)["running"] for ln in lines if '"running"' in ln]
        report["failures"].append(f"crash: child exited with {proc.returncode} while running "
                                  f"{running[-1] if running else '?'}: {proc.stderr[-1500:]}")
        report["tally"]["crash"] = report["tally"].get("crash", 0) + 1
    TALLY.update(report["tally"])
    return report


def child_main(module):
    """In the child: run every spec of tests/<module>.py; print progress lines and the final JSON report."""
    mod = __import__(module)
    failures = []
    for spec in mod.SPECS:
        print(json.dumps({"running": spec.name}), flush=True)
        try:
            run_spec(spec)
        except Exception as err:  # the falsifying example(s), after shrinking
            for sub in getattr(err, "exceptions", [err]):
                failures.append(f"{type(sub).__name__}: {sub}"[:3000])
    print(json.dumps({"tally": dict(TALLY), "failures": failures}), flush=True)
