"""The teacher's grader, piece by piece: the region check, the splice, the sandbox, the rows, the hidden checks.

Fast tests (a few seconds in all): the sandbox runs tiny Python children, and the hidden checks run
in this process against wrong answers patched into the library. The hostile submissions graded end
to end are in tests/test_grader_hostile.py.
"""
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from minivq.course.exercises import COURSE
from minivq.course.lint import RegionSyntaxError, check_cython, check_python
from minivq.course.report import format_report, readable, resolve_needs, plain_row, total
from minivq.course.sandbox import Job, Pool
from minivq.course.splice import read_regions, spliced_text

ROOT = Path(__file__).resolve().parent.parent
HIDDEN = ROOT / "minivq" / "course" / "hidden"


# ------------------------------------------------------------------ what a region may hold
@pytest.mark.parametrize("body, words", [
    ("import os\nos._exit(0)", "imports os"),
    ("import subprocess\nsubprocess.Popen(['sleep', '9'])", "imports subprocess"),
    ("np.testing.assert_allclose = lambda *a, **k: None", "assigns to an attribute of the module np"),
    ("f = np.testing.assert_allclose", "uses the attribute .testing"),
    ("np.allclose = lambda *a, **k: True", "assigns to an attribute of the module np"),
    ("open('grades.json', 'w').write('{}')", "uses open"),
    ("f = getattr(np, 'sum')", "uses getattr"),
    ("x = ().__class__", "uses the attribute .__class__"),
    ("global SQ\nSQ = 0", "declares global SQ"),
    ("exec('1')", "uses exec"),
    ("if True:\n    x = 1\nimport numpy as t\nt.allclose = None", "assigns to an attribute of the module t"),
], ids=["os", "subprocess", "patch", "testing", "module-attribute", "open", "getattr", "dunder", "global", "exec", "import-after"])
def test_a_region_may_not_reach_the_grader(body, words):
    why = check_python(body)
    assert why is not None and words in why and why.startswith("line "), why


def test_honest_regions_pass_the_check():
    honest = ["from numpy.lib.stride_tricks import sliding_window_view\nreturn sliding_window_view(x, 2)",
              "import math\nn = math.prod(x.shape[:-1])\nstate_n = state.n.copy()\nstate_n[dead] = 1\nreturn n",
              "out = np.zeros(3)\nout[0] = 1\ncache.x = 2\nreturn out"]
    assert [check_python(b) for b in honest] == [None, None, None]
    assert check_cython("with nogil:\n    for k in range(K):\n        e_sq[k] = 0\n") is None
    for bad in ("cdef extern from 'stdlib.h':\n    int system(char*)", "from libc.stdlib cimport abort",
                "include '/etc/passwd'"):
        assert check_cython(bad) is not None, bad
    with pytest.raises(RegionSyntaxError) as info:
        check_python("x = (1,\ny = 2")
    assert info.value.lineno >= 1
    with pytest.raises(RegionSyntaxError):
        check_cython('s = """unterminated\n')


def test_a_region_cannot_leave_its_function(tmp_path):
    """Code indented less than the BEGIN line would run at import: refused, with the line."""
    text = (ROOT / "minivq/layers/dense.py").read_text()
    evil = text.replace("    dW = x2.T @ dout2  # (D_in, D_out)\n", "import os\nos.system('true')\n", 1)
    assert evil != text
    (tmp_path / "minivq/layers").mkdir(parents=True)
    (tmp_path / "minivq/layers/dense.py").write_text(evil)
    found = read_regions(tmp_path, [COURSE.get("affine_backward"), COURSE.get("l2_normalize_backward")])
    assert found["affine_backward"].status == "refused"
    assert "outside the function body" in found["affine_backward"].reason
    assert "minivq/layers/dense.py:" in found["affine_backward"].reason
    assert found["l2_normalize_backward"].status == "ok", "the other region of the file is graded as usual"


def test_regions_are_read_only_from_regular_files_inside_the_submission(tmp_path):
    (tmp_path / "minivq").mkdir()
    (tmp_path / "minivq/nearest.py").symlink_to("/dev/zero")
    (tmp_path / "minivq/layers").mkdir()
    (tmp_path / "minivq/layers/dense.py").symlink_to(tmp_path / "minivq/layers/conv.py")
    (tmp_path / "minivq/layers/conv.py").write_text("x = 1\n")
    found = read_regions(tmp_path, [COURSE.get("nearest_reference"), COURSE.get("ema_update"),
                                    COURSE.get("affine_backward")])
    assert found["nearest_reference"].status == "unreadable" and "outside the submission" in \
        found["nearest_reference"].reason
    assert found["affine_backward"].status == "unreadable" and "not a regular file" in found["affine_backward"].reason
    assert found["ema_update"].status == "missing" and "minivq/ema.py is missing" in found["ema_update"].reason


def test_splice_puts_the_students_body_in_the_teachers_file():
    text = (ROOT / "minivq/layers/dense.py").read_text()
    new, line_map = spliced_text(text, "minivq/layers/dense.py", {"affine_backward": [["return None, None, None"]]})
    assert "        return None, None, None\n" not in new and "    return None, None, None\n" in new
    assert "### BEGIN SOLUTION" not in new and "radial = np.einsum" in new, "other regions keep the teacher's code"
    (first, last, name, index), = line_map
    assert name == "affine_backward" and new.splitlines()[first - 1].strip() == "return None, None, None"
    compile(new, "dense.py", "exec")


# ------------------------------------------------------------------ the sandbox
def _job(key, code, timeout=5.0):
    return Job(key, [sys.executable, "-c", textwrap.dedent(code)], str(ROOT), {"PATH": "/usr/bin:/bin"}, timeout)


def test_the_pool_stops_a_hang_an_endless_print_and_reports_crashes_and_exits():
    jobs = [_job("hang", "while True: pass", timeout=1.0),
            _job("print", "while True: print('x' * 1000)"),
            _job("segv", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"),
            _job("exit", "import os; print('bye', flush=True); os._exit(3)"),
            _job("fine", "print('ok')")]
    outcomes = {}
    start = time.monotonic()
    Pool(jobs=3, output_limit=1 << 20).run(jobs, lambda o: outcomes.__setitem__(o.key, o))
    assert time.monotonic() - start < 8
    assert outcomes["hang"].status == "timeout" and outcomes["hang"].seconds < 3
    assert outcomes["print"].status == "output_limit" and len(outcomes["print"].output) < 40000
    assert outcomes["segv"].status == "exited" and outcomes["segv"].returncode == -11
    assert outcomes["exit"].returncode == 3 and "bye" in outcomes["exit"].output
    assert outcomes["fine"].returncode == 0 and outcomes["fine"].output.strip() == "ok"


def test_the_pool_kills_what_a_job_leaves_in_its_group_and_on_exit(tmp_path):
    """A job's background process dies with the job; on the grader's interrupt every job dies."""
    marker = tmp_path / "late.txt"
    leaver = _job("leaver", f"""
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5); open({str(marker)!r}, 'w').write('x')"])
        """)
    Pool(jobs=1).run([leaver], lambda o: None)
    sleeper = _job("sleeper", "import time; time.sleep(30)", timeout=60)
    started = []

    def stop(outcome):
        raise KeyboardInterrupt

    pool = Pool(jobs=2)
    with pytest.raises(KeyboardInterrupt):
        pool.run([sleeper, _job("quick", "pass")], stop)
    assert not pool.running and not started
    time.sleep(2.0)
    assert not marker.exists(), "the background process outlived its job"


def test_the_subreaper_kills_a_process_that_left_its_group(tmp_path):
    """A grandchild that starts its own session is handed back to the grader (a subreaper) and killed."""
    marker = tmp_path / "escaped.txt"
    script = f"""
import sys, textwrap, time
from minivq.course.sandbox import Job, Pool, become_subreaper
assert become_subreaper()
code = textwrap.dedent('''
    import os, time
    if os.fork() == 0:
        os.setsid()
        time.sleep(1.5)
        open({str(marker)!r}, "w").write("x")
        os._exit(0)
''')
Pool(jobs=1, reap_orphans=True).run([Job("j", [sys.executable, "-c", code], ".", {{}}, 10)], lambda o: None)
time.sleep(2.0)
"""
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=30,
                   env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    time.sleep(0.2)
    assert not marker.exists(), "a process that left the job's group survived the grading"


# ------------------------------------------------------------------ rows and reasons
def test_a_row_shows_the_error_the_threshold_and_a_verdict_that_agree():
    ex = COURSE.get("affine_backward")
    bad = plain_row(ex, "failed", "1 test(s) fail: gradient check failed", rel_error=1.0)
    good_elsewhere = plain_row(ex, "failed", "1 test(s) fail: shapes", rel_error=1.2e-12)
    passing = plain_row(ex, "passed", "", rel_error=3e-11, passed=True, score=2)
    table = format_report({"exercises": [bad, good_elsewhere, passing], "total": total([bad, good_elsewhere, passing])})
    lines = table.splitlines()[2:5]
    assert "FAIL" in lines[0] and "1.0e+00 >= 1e-07" in lines[0]
    assert "FAIL" in lines[1] and "1.2e-12 < 1e-07" in lines[1] and "shapes" in lines[1]
    assert "pass" in lines[2] and "3.0e-11 < 1e-07" in lines[2]


def test_an_exercise_that_runs_a_failing_one_needs_it_first():
    rows = [plain_row(COURSE.get(n), "failed", "wrong") for n in ("bug_cmg_pairing", "code_similarity_backward")]
    rows.append(plain_row(COURSE.get("affine_backward"), "passed", "", passed=True, score=2))
    resolve_needs(rows, COURSE)
    assert rows[1]["reason"] == "needs exercise bug_cmg_pairing first" and rows[1]["status"] == "blocked"
    assert rows[1]["own_reason"] == "wrong" and rows[0]["reason"] == "wrong"


def test_failure_notes_are_readable():
    note = readable("assert EMAState(n=array([1., 2.]), m=array([[1.], [2.]]), E=array([[1.], [2.]])) is "
                    "EMAState(n=array([1., 2.]), m=array([[1.], [2.]]), E=array([[1.], [2.]]))")
    assert note == "assert EMAState(...) is EMAState(...)"


# ------------------------------------------------------------------ the hidden checks catch what students get wrong
def hidden_check(monkeypatch, module, name, seed=7):
    """Run the hidden check ``module.name`` here, at grading seed ``seed``; returns the inputs it drew."""
    monkeypatch.setenv("MINIVQ_GRADE_SEED", str(seed))
    monkeypatch.syspath_prepend(str(HIDDEN))
    for cached in ("_draw", module):
        sys.modules.pop(cached, None)
    mod = __import__(module)

    class Node:
        user_properties = []

    class Request:
        node = Node()

    Request.node.name = name
    getattr(mod, name)(Request())
    return dict(Request.node.user_properties)["inputs"]


def test_hidden_checks_pass_on_the_solution(monkeypatch):
    inputs = hidden_check(monkeypatch, "hidden_vq", "test_ema_update_with_smoothing_at_fresh_sizes")
    assert all(i["eps"] > 0 for i in inputs)
    assert hidden_check(monkeypatch, "hidden_nearest", "test_nearest_reference_at_fresh_sizes", seed=8) != \
        hidden_check(monkeypatch, "hidden_nearest", "test_nearest_reference_at_fresh_sizes", seed=9), \
        "fresh sizes for every seed"


def test_ema_update_without_the_smoothing_fails_its_own_hidden_check(monkeypatch):
    import minivq.ema as ema

    monkeypatch.setattr(ema, "_smoothed_counts", lambda n, eps: n)  # E = m / n: the smoothing dropped
    with pytest.raises(AssertionError, match="Laplace-smoothed"):
        hidden_check(monkeypatch, "hidden_vq", "test_ema_update_with_smoothing_at_fresh_sizes")


def test_pair_backward_without_lambda_fails_its_hidden_check(monkeypatch):
    import minivq.model as model

    real = model._pair_backward

    def dropped(a, b, out, r, dr, dH, dE, w, cfg):  # lambda_cmcm left out of the CMCM gradient
        return real(a, b, out, r, dr, dH, dE, w, type(cfg)(**{**cfg.__dict__, "lambda_cmcm": 1.0}))

    monkeypatch.setattr(model, "_pair_backward", dropped)
    with pytest.raises(AssertionError, match="rel_error"):
        hidden_check(monkeypatch, "hidden_model", "test_whole_model_gradient_at_fresh_weights")


def test_a_nearest_reference_fitted_to_the_public_sizes_fails_its_hidden_check(monkeypatch):
    import minivq.nearest as nearest

    real = nearest._reference_scores_argmin
    public = {1, 7, 300, 2500, 1100, 2044, 456, 55, 3, 200}

    def fitted(X, E, e_sq):  # drops the last partial block of 8 rows unless N is a public size
        idx, best = real(X, E, e_sq)
        if len(X) not in public and len(X) % 8:
            idx, best = idx.copy(), best.copy()
            idx[-(len(X) % 8):] = 0
        return idx, best

    monkeypatch.setattr(nearest, "_reference_scores_argmin", fitted)
    with pytest.raises(AssertionError, match="not the nearest"):
        hidden_check(monkeypatch, "hidden_nearest", "test_nearest_reference_at_fresh_sizes", seed=3)
