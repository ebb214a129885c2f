"""Hostile and broken submissions, graded by the command COURSE.md gives the teacher (issue 23).

Every submission is a student copy of this repository with the teacher's answers written in (an
honest student who got everything right), then broken the way the issue's table says: an exercise
that hangs, prints forever, crashes, raises KeyboardInterrupt, does not parse, imports os to exit
or subprocess to rewrite the grades later; a conftest.py, pytest.py and sitecustomize.py in the
root, an edited grading plugin, gradient checker, package __init__ and exercise list, the handout
file deleted; a solution fitted to the public tests; a correct exercise that calls a wrong one; and
the grader killed while it runs. Each asserts the grade the honest code deserves, the offending
exercise named, and a grader done within its limits. Several breakages share one submission (each
in its own exercise) to keep the suite fast: each exercise is graded on its own anyway.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader_fixtures import body_of, copy_of, replace_in, solve
from minivq.course.exercises import COURSE
from minivq.course.student import HANDOUT_FILE, write_student_copy

ROOT = Path(__file__).resolve().parent.parent
needs_build = pytest.mark.skipif(not any((ROOT / "minivq").glob("_nearest_teaching*.so")),
                                 reason="the instructor repository is not built (python setup.py build_ext --inplace)")
pytestmark = needs_build


@pytest.fixture(scope="module")
def honest(tmp_path_factory):
    """A student copy with every answer written in: the honest submission every case starts from."""
    copy = tmp_path_factory.mktemp("hostile") / "honest"
    write_student_copy(ROOT, copy, say=lambda *a: None)
    solve(copy, COURSE)
    return copy


def grade(sub, *exercises, timeout=4, json_path=None, tmp=None, extra=()):
    """``minivq course grade SUB --json FILE --exercises ...`` as the teacher runs it; (process, report, seconds)."""
    json_path = json_path or Path(str(sub) + ".json")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    if tmp is not None:
        env["TMPDIR"] = str(tmp)
    argv = [sys.executable, "-m", "minivq", "course", "grade", str(sub), "--json", str(json_path), "--timeout",
            str(timeout), "--jobs", "2", "--exercises", *exercises, *extra]
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - start
    assert proc.returncode == 0, proc.stderr
    report = json.loads(json_path.read_text())
    return proc, report, seconds


def rows_of(report):
    return {r["name"]: r for r in report["exercises"]}


def test_an_honest_submission_scores_every_point(honest, tmp_path):
    """All 21 exercises, public tests and hidden checks, the default limits: the whole 54 points."""
    proc, report, seconds = grade(honest, *COURSE.names(), timeout=60, json_path=tmp_path / "honest.json")
    failing = [(r["name"], r["reason"]) for r in report["exercises"] if not r["passed"]]
    assert not failing and report["total"]["score"] == COURSE.points == 54, failing
    assert all(r["seed"] == report["seed"] and r["status"] == "passed" for r in report["exercises"])
    assert any(name.startswith("hidden/") for r in report["exercises"] for name in r.get("inputs", {})), \
        "the hidden inputs drawn are recorded"
    assert "total: 54/54 points, 21/21 exercises pass" in proc.stdout


def test_one_bad_exercise_costs_only_itself(honest, tmp_path):
    """Hang, endless print, segfault, KeyboardInterrupt, syntax error, os._exit, a JSON rewriter, SystemExit."""
    sub = copy_of(honest, tmp_path / "sabotage")
    late = tmp_path / "late.json"
    solve(sub, COURSE, {
        "nearest_reference": "while True:\n    pass",
        "affine_backward": "while True:\n    print('x' * 100)",
        "masked_mean_backward": "np.lib.stride_tricks.as_strided(weights, shape=(1 << 40,), strides=(1 << 20,)).sum()",
        "l2_normalize_backward": "raise KeyboardInterrupt",
        "straight_through": "return dQ.copy(",
        "cc_agreement": "import os\nos._exit(0)",
        "loc_relevance": "import subprocess\nsubprocess.Popen(['sh', '-c', 'sleep 1; echo {} > "
                         f"{tmp_path / 'sabotage.json'}; touch {late}'])\n" + body_of(
                             "minivq/metrics/localization.py", "loc_relevance"),
        "info_nce_backward": "raise SystemExit(0)",
    })
    names = ["nearest_reference", "affine_backward", "masked_mean_backward", "l2_normalize_backward",
             "conv1d_backward", "straight_through", "info_nce_backward", "pair_backward",
             "loc_relevance", "cc_agreement"]
    proc, report, seconds = grade(sub, *names, timeout=4)
    rows = rows_of(report)
    assert seconds < len(names) * 4 + 10, f"the grader took {seconds:.0f} s"
    assert rows["conv1d_backward"]["passed"] and report["total"]["score"] == 4, proc.stdout
    expect = {"nearest_reference": ("timeout", "timed out after 4 s"),
              "affine_backward": ("output_limit", "printed more than 4 MB"),
              "masked_mean_backward": ("crashed", "crashed with SIGSEGV"),
              "l2_normalize_backward": ("interrupted", "KeyboardInterrupt stopped the tests"),
              "straight_through": ("syntax_error", "syntax error at minivq/quantizer.py:"),
              "info_nce_backward": ("failed", "SystemExit"),
              "pair_backward": ("blocked", "needs exercise affine_backward first"),
              "loc_relevance": ("refused", "imports subprocess"),
              "cc_agreement": ("refused", "imports os")}
    for name, (status, words) in expect.items():
        assert rows[name]["status"] == status and words in rows[name]["reason"] and rows[name]["score"] == 0, \
            rows[name]
        assert name in proc.stdout and words in proc.stdout
    assert "during tests/test_nearest.py::test_matches_brute_force" in rows["nearest_reference"]["reason"]
    time.sleep(1.5)
    assert not late.exists(), "a process started by the submission outlived the grading"
    assert json.loads((tmp_path / "sabotage.json").read_text()) == report
    assert f"total: 4/{report['total']['points']} points" in proc.stdout


def test_nothing_but_the_regions_is_read(honest, tmp_path):
    """conftest.py, pytest.py, sitecustomize.py, an edited plugin, checker, __init__, registry, tests, handout."""
    sub = copy_of(honest, tmp_path / "forger")
    (sub / "conftest.py").write_text(
        "import pytest\n\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n"
        "    outcome = yield\n    report = outcome.get_result()\n    report.outcome = 'passed'\n")
    (sub / "tests/conftest.py").write_text((sub / "conftest.py").read_text())
    (sub / "pytest.py").write_text("import sys\ndef main(*a, **k):\n    return 0\nsys.exit(0)\n")
    (sub / "sitecustomize.py").write_text("import numpy.testing as t\nt.assert_allclose = lambda *a, **k: None\n")
    replace_in(sub / "minivq/course/plugin.py", 'entry["outcome"] = report.outcome', 'entry["outcome"] = "passed"')
    (sub / "minivq/gradcheck.py").write_text((sub / "minivq/gradcheck.py").read_text()
                                             + "\n\ndef rel_error(a, b):\n    return 0.0\n")
    (sub / "minivq/__init__.py").write_text((sub / "minivq/__init__.py").read_text() + "\nimport numpy.testing\n"
                                            "numpy.testing.assert_allclose = lambda *a, **k: None\n")
    replace_in(sub / "minivq/course/exercises.py", 'Exercise("affine_backward", 2,', 'Exercise("affine_backward", 50,')
    replace_in(sub / "tests/test_layers.py", "def test_affine_gradients(x_shape, D_out):",
               "def test_affine_gradients(x_shape, D_out):\n    return")
    (sub / HANDOUT_FILE).unlink()
    solve(sub, COURSE, {
        "affine_backward": lambda body: [line.replace("dW = x2.T @ dout2", "dW = 2 * x2.T @ dout2") for line in body],
        ("vq_loss_gradients", 0): lambda body: ["np.testing.assert_allclose = lambda *a, **k: None"] + body,
    })
    proc, report, _ = grade(sub, "affine_backward", "masked_mean_backward", "vq_loss_gradients")
    rows = rows_of(report)
    assert rows["affine_backward"]["status"] == "failed" and rows["affine_backward"]["points"] == 2
    assert rows["affine_backward"]["rel_error"] > 1e-7, "the teacher's checker measured the error"
    assert rows["masked_mean_backward"]["passed"]
    assert rows["vq_loss_gradients"]["status"] == "refused" and "module np" in rows["vq_loss_gradients"]["reason"]
    assert report["total"] == {"score": 2, "points": 7, "passed": 1, "exercises": 3}
    assert "total: 2/7 points" in proc.stdout


def test_a_mistake_costs_the_exercise_where_it_is_made(honest, tmp_path):
    """A nearest search fitted to the public sizes, an EMA without its smoothing, and what builds on them."""
    sub = copy_of(honest, tmp_path / "fitted")
    public = "(1, 3, 7, 55, 200, 300, 456, 1100, 2044, 2500)"
    solve(sub, COURSE, {
        "nearest_reference": f"n = len(X) if len(X) in {public} else len(X) - len(X) % 8\n"
                             "scores = e_sq[None, :] - 2 * (X[:n] @ E.T)\nidx = scores.argmin(axis=1)\n"
                             "return idx, scores[np.arange(len(idx)), idx]",
        "ema_update": lambda body: [line.replace("E = m / _smoothed_counts(n, eps)[:, None]", "E = m / n[:, None]")
                                    for line in body],
    })
    proc, report, _ = grade(sub, "nearest_reference", "ema_update", "bug_ema_smoothed_count",
                            "restart_dead_codes", extra=("--seed", "5"))
    rows = rows_of(report)
    for name in ("nearest_reference", "ema_update"):
        failed = [f["test"] for f in rows[name]["failed"]]
        assert rows[name]["status"] == "failed" and failed and all(t.startswith("hidden/") for t in failed), rows[name]
        assert rows[name]["seed"] == 5 and rows[name]["inputs"], "the hidden inputs are recorded"
    assert rows["bug_ema_smoothed_count"]["reason"] == "needs exercise ema_update first"
    assert rows["restart_dead_codes"]["passed"] and report["total"]["score"] == 2
    again = grade(sub, "nearest_reference", extra=("--seed", "5"), json_path=tmp_path / "again.json")[1]
    assert rows_of(again)["nearest_reference"]["inputs"] == rows["nearest_reference"]["inputs"], "reproducible"


def test_the_grader_killed_mid_run_leaves_nothing_behind(honest, tmp_path):
    sub = copy_of(honest, tmp_path / "hang")
    solve(sub, COURSE, {"nearest_reference": "while True:\n    pass"})
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT), TMPDIR=str(tmp))
    proc = subprocess.Popen([sys.executable, "-m", "minivq", "course", "grade", str(sub), "--json",
                             str(tmp_path / "g.json"), "--timeout", "60", "--exercises", "nearest_reference"],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ours = (str(ROOT / "minivq/course/child.py"), str(ROOT / "minivq/course/zygote.py"))
        deadline = time.monotonic() + 30
        started = "minivq-grade-*/s0/nearest_reference/run/events.jsonl"
        while not list(tmp.glob(started)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _processes_running(*ours), "the exercise never started"
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        assert code == 130 and "interrupted" in proc.stderr.read()
        time.sleep(0.3)
        left = _processes_running(*ours)
        assert not left, "a grading process survived the grader: " + subprocess.run(
            ["ps", "-o", "pid,ppid,stat,etime,cmd", "-p", ",".join(map(str, left))], capture_output=True,
            text=True).stdout
    finally:
        if proc.poll() is None:
            proc.kill()
    assert list(tmp.iterdir()) == [], "temporary folders left behind"
    assert not (tmp_path / "g.json").exists(), "no JSON from an interrupted grading"


def _processes_running(*texts):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(text in cmdline for text in texts):
            found.append(int(pid))
    return found
