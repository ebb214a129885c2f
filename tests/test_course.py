"""Tests of the course kit (minivq.course): markers, the student copy, grading, the command.

The machinery is tested on a small synthetic repository written to a temporary
folder (a package with marked functions, its tests and a notebook), so these
tests say what the kit does independently of the library's own exercises.
"""
import argparse
import asyncio
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import minivq.course.grade as grade_module
from minivq.cli import main
from minivq.cli.checks import UsageError
from minivq.course.cli import add_parser, format_list, format_markdown, run
from minivq.course.exercises import COURSE, Course, Exercise
from minivq.course.grade import format_report, grade, write_report
from minivq.course.markers import (ANSWER_PLACEHOLDER, MarkerError, find_regions, replace_answers, replace_regions,
                                   stub_lines)
from minivq.course.plugin import matches
from minivq.course.student import HANDOUT_FILE, repository_files, write_student_copy
from minivq.course.trace import exercises_used, region_functions

# --------------------------------------------------------------- the synthetic repository
OPS = '''\
"""A toy library with two exercises."""
import numpy as np


def square_forward(x):
    return x * x, (x,)


def square_backward(dout, cache):
    if dout is None:
        raise ValueError("dout must be an array, got None")
    (x,) = cache
    ### BEGIN SOLUTION square_backward
    dx = 2.0 * x
    return dx * dout
    ### END SOLUTION


def shares(counts):
    total = float(np.sum(counts))
    ### BEGIN SOLUTION share_bug
    return np.asarray(counts) / total
    ### END SOLUTION


def double_square_backward(dout, cache):
    ### BEGIN SOLUTION double_backward
    return 2.0 * square_backward(dout, cache)
    ### END SOLUTION
'''
KERNEL = '''\
def loop(double[::1] x):
    cdef Py_ssize_t i
    cdef double s = 0
    ### BEGIN SOLUTION kernel_loop
    for i in range(x.shape[0]):
        s += x[i]
    ### END SOLUTION
    return s
'''
TESTS = '''\
import numpy as np
import pytest

from minivq.gradcheck import check_backward
from toyvq.ops import double_square_backward, shares, square_backward, square_forward


def test_square_gradient():
    errors = check_backward(square_forward, square_backward, {"x": np.linspace(-1.0, 2.0, 5)}, rng=0)
    assert errors["x"] < 1e-7, f"dx rel_error {errors['x']:.1e}, expect < 1e-7"


def test_square_checks_dout():
    with pytest.raises(ValueError, match="dout"):
        square_backward(None, (np.ones(2),))


def test_shares_sum_to_one():
    assert abs(shares([1, 2, 5]).sum() - 1.0) < 1e-12


def test_double_square():
    x = np.array([1.0, -2.0])
    np.testing.assert_allclose(double_square_backward(np.ones(2), (x,)), 4 * x)
'''
KERNEL_TESTS = '''\
def test_kernel_has_its_loop():
    text = open("toyvq/kernel.pyx").read()
    assert "for i in range" in text, "the loop of kernel_loop is missing"
'''


def notebook(cells):
    return json.dumps({"cells": [{"cell_type": kind, "id": f"c{i}", "metadata": {}, "source": source,
                                  **({"outputs": [], "execution_count": None} if kind == "code" else {})}
                                 for i, (kind, source) in enumerate(cells)],
                       "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                   "language": "python"}},
                       "nbformat": 4, "nbformat_minor": 5}, indent=1)


NOTEBOOK = notebook([
    ("markdown", "# Toy notebook\n\nSquares."),
    ("code", "import numpy as np\nfrom toyvq.ops import square_backward\nprint('before the exercise')"),
    ("markdown", "**Inline question 1.** Why 2x?\n\n### BEGIN ANSWER\nBecause d(x^2)/dx = 2x.\n### END ANSWER"),
    ("code", "print(square_backward(np.ones(2), (np.ones(2),)))"),
    ("code", "print('after the exercise')"),
])

TOY_COURSE = Course(
    exercises=(
        Exercise("square_backward", 2, ("SQ-1",), "toyvq/ops.py", "return dout times 2x",
                 ("tests/test_ops.py::test_square_gradient",), ("notebooks/toy.ipynb",), threshold=1e-7),
        Exercise("share_bug", 1, ("SQ-2",), "toyvq/ops.py", "shares must sum to one",
                 ("tests/test_ops.py::test_shares_sum_to_one",), buggy=("return np.asarray(counts) / (total + 1.0)",)),
        Exercise("double_backward", 1, ("SQ-3",), "toyvq/ops.py", "twice the square's backward",
                 ("tests/test_ops.py::test_double_square",), requires=("square_backward",)),
        Exercise("kernel_loop", 1, ("SQ-4",), "toyvq/kernel.pyx", "sum x in a loop",
                 ("tests/test_kernel.py::test_kernel_has_its_loop",)),
    ),
    notebook_needs={"notebooks/toy.ipynb": ("square_backward",)},
    package="toyvq",
    instructor_only=("tests/test_instructor.py",),
    unscanned=(),
)


def write_repo(root):
    files = {
        "setup.py": "from setuptools import setup\nsetup(name='toyvq', packages=['toyvq'])\n",
        "README.md": "# toyvq\n",
        ".gitignore": "# build artefacts\nbuild/\n*.so\n",
        "toyvq/__init__.py": "",
        "toyvq/ops.py": OPS,
        "toyvq/kernel.pyx": KERNEL,
        "toyvq/kernel.c": "/* generated by Cython from the solution */\n",
        "build/lib/toyvq/ops.py": OPS,
        ".hypothesis/examples/abc": "cache\n",
        "tests/test_ops.py": TESTS,
        "tests/test_kernel.py": KERNEL_TESTS,
        "tests/test_instructor.py": "def test_instructor_only():\n    pass\n",
        "notebooks/toy.ipynb": NOTEBOOK,
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The synthetic repository and its student copy (built once)."""
    root = write_repo(tmp_path_factory.mktemp("toy") / "repo")
    copy = root.parent / "student"
    handout = write_student_copy(root, copy, course=TOY_COURSE, say=lambda *a: None)
    return root, copy, handout


# --------------------------------------------------------------- markers
def test_regions_are_found_with_their_names_and_indentation():
    regions = find_regions(OPS, "ops.py", require_indent=True)
    assert [(r.name, r.indent) for r in regions] == [("square_backward", "    "), ("share_bug", "    "),
                                                       ("double_backward", "    ")]
    assert OPS.splitlines()[regions[0].begin].strip() == "### BEGIN SOLUTION square_backward"


@pytest.mark.parametrize("text, words", [
    ("def f():\n    ### BEGIN SOLUTION a\n    ### BEGIN SOLUTION b\n    ### END SOLUTION\n",
     "x.py:3: BEGIN SOLUTION inside"),
    ("def f():\n    ### BEGIN SOLUTION a\n    pass\n", "x.py:2: the region of 'a' is never closed"),
    ("def f():\n    pass\n    ### END SOLUTION\n", "x.py:3: END SOLUTION without"),
    ("def f():\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION\n", "x.py:2: BEGIN SOLUTION must name"),
    ("### BEGIN SOLUTION a\nx = 1\n### END SOLUTION\n", "x.py:1: the region of 'a' is at module level"),
], ids=["nested", "unclosed", "end-alone", "unnamed", "module-level"])
def test_malformed_regions_name_the_file_and_line(text, words):
    with pytest.raises(MarkerError) as info:
        find_regions(text, "x.py", require_indent=True)
    assert words in str(info.value)


def test_stub_keeps_indentation_and_the_code_around_it():
    stub = lambda region, body: stub_lines(region.name, ("SQ-1",), "return dout times 2x")  # noqa: E731
    new = replace_regions(OPS, "ops.py", stub)
    assert '    (x,) = cache\n    # YOUR CODE HERE: exercise square_backward (METHOD.md SQ-1); only the code between ' \
           'the marker lines is graded\n' \
           '    raise NotImplementedError(\'exercise square_backward: return dout times 2x\')\n' in new
    assert 'raise ValueError("dout must be an array, got None")' in new  # the checks stay
    assert "BEGIN SOLUTION" not in new and "dx = 2.0 * x" not in new
    keep = replace_regions(OPS, "ops.py", lambda region, body: body)
    assert keep == "\n".join(line for line in OPS.splitlines() if "### " not in line) + "\n"
    compile(new, "ops.py", "exec")


def test_answers_are_replaced_by_the_placeholder():
    text = "Question?\n\n### BEGIN ANSWER\nThe answer,\non two lines.\n### END ANSWER\nAfter."
    assert replace_answers(text, "nb") == f"Question?\n\n{ANSWER_PLACEHOLDER}\nAfter."
    with pytest.raises(MarkerError, match="nb:1: the answer is never closed"):
        replace_answers("### BEGIN ANSWER\nno end", "nb")


# --------------------------------------------------------------- the student copy
def test_student_copy_stubs_implementations_and_plants_bugs(toy):
    root, copy, handout = toy
    ops = (copy / "toyvq/ops.py").read_text()
    assert "raise NotImplementedError('exercise square_backward: return dout times 2x')" in ops
    assert "raise NotImplementedError('exercise double_backward: twice the square's backward')" not in ops
    assert "exercise double_backward: twice the square" in ops
    assert "    return np.asarray(counts) / (total + 1.0)\n" in ops  # the bug, at the region's indentation
    assert "dx = 2.0 * x" not in ops
    # the markers stay around what the student writes: the teacher's grading takes the code between them
    regions = find_regions(ops, "ops.py")
    assert [r.name for r in regions] == ["square_backward", "share_bug", "double_backward"]
    assert ops.splitlines()[regions[0].begin + 2].strip().startswith("raise NotImplementedError")
    assert 'raise ValueError("dout must be an array, got None")' in ops
    kernel = (copy / "toyvq/kernel.pyx").read_text()
    assert "for i in range" not in kernel and "NotImplementedError('exercise kernel_loop" in kernel
    assert kernel.splitlines()[-1] == "    return s"
    assert handout["exercises"] == ["square_backward", "share_bug", "double_backward", "kernel_loop"]
    assert json.loads((copy / HANDOUT_FILE).read_text())["points"] == 5


def test_the_handout_file_records_nothing_about_the_teachers_machine(toy):
    """Issue 22: .minivq_course.json holds the exercises, the points and the date; no path, host or user."""
    import getpass
    import os

    root, copy, handout = toy
    text = (copy / HANDOUT_FILE).read_text()
    assert set(json.loads(text)) == {"exercises", "points", "created"}
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", json.loads(text)["created"]), "a date, not a time of day"
    for private in (str(root), str(root.resolve()), str(root.parent), os.uname().nodename, getpass.getuser(), "/"):
        assert private not in text.replace(" ", ""), f"the handout records {private!r}"


def test_student_copy_leaves_out_build_artefacts_and_instructor_files(toy):
    root, copy, _ = toy
    files = repository_files(copy)
    assert "build/lib/toyvq/ops.py" not in files and "toyvq/kernel.c" not in files
    assert not any(f.startswith(".hypothesis/") for f in files)
    assert "tests/test_instructor.py" not in files
    assert {"setup.py", "README.md", "tests/test_ops.py", "tests/test_kernel.py", "notebooks/toy.ipynb",
            "toyvq/kernel.pyx"} <= set(files)
    assert (root / "toyvq/ops.py").read_text() == OPS, "the source must not change"


def test_student_notebook_says_what_it_needs_and_loses_its_answers(toy):
    _, copy, _ = toy
    nb = json.loads((copy / "notebooks/toy.ipynb").read_text())
    first = "".join(nb["cells"][0]["source"])
    assert first.startswith("> **Student copy.**") and "`square_backward` (toyvq/ops.py)" in first
    assert "# Toy notebook" in first
    question = "".join(nb["cells"][2]["source"])
    assert ANSWER_PLACEHOLDER in question and "d(x^2)/dx" not in question and "BEGIN ANSWER" not in question


def test_handing_out_a_subset_keeps_the_other_solutions(tmp_path):
    root = write_repo(tmp_path / "repo")
    write_student_copy(root, tmp_path / "week1", exercises=["share_bug"], course=TOY_COURSE, say=lambda *a: None)
    ops = (tmp_path / "week1/toyvq/ops.py").read_text()
    assert "dx = 2.0 * x" in ops and "NotImplementedError" not in ops and "(total + 1.0)" in ops
    assert [r.name for r in find_regions(ops, "ops.py")] == ["share_bug"], "markers only around what is handed out"
    nb = json.loads((tmp_path / "week1/notebooks/toy.ipynb").read_text())
    assert "Student copy" not in "".join(nb["cells"][0]["source"])


@pytest.mark.parametrize("edit, words", [
    (lambda s: s.replace("SOLUTION share_bug", "SOLUTION unknown_one"),
     "toyvq/ops.py:21: the region names 'unknown_one'"),
    (lambda s: s.replace("SOLUTION double_backward", "SOLUTION kernel_loop"),
     "registry entry says its regions are in toyvq/kernel.pyx"),
    (lambda s: s.replace("    ### BEGIN SOLUTION share_bug\n", "").replace(
        "    return np.asarray(counts) / total\n    ### END SOLUTION\n", "    return np.asarray(counts) / total\n"),
     "share_bug of the registry have no solution region"),
], ids=["unknown", "wrong-file", "unmarked"])
def test_registry_and_markers_must_agree(tmp_path, edit, words):
    root = write_repo(tmp_path / "repo")
    (root / "toyvq/ops.py").write_text(edit(OPS))
    with pytest.raises(MarkerError) as info:
        write_student_copy(root, tmp_path / "out", course=TOY_COURSE, say=lambda *a: None)
    assert words in str(info.value)
    assert not (tmp_path / "out").exists(), "no half-written copy"


def test_student_copy_refuses_a_folder_that_is_not_empty(tmp_path):
    root = write_repo(tmp_path / "repo")
    (tmp_path / "out").mkdir()
    (tmp_path / "out/keep.txt").write_text("work")
    with pytest.raises(FileExistsError, match="OUT .* is not an empty folder"):
        write_student_copy(root, tmp_path / "out", course=TOY_COURSE, say=lambda *a: None)
    assert (tmp_path / "out/keep.txt").read_text() == "work"


def test_a_stub_that_breaks_the_module_is_refused(tmp_path):
    root = write_repo(tmp_path / "repo")
    broken = Course(exercises=(Exercise("share_bug", 1, ("SQ-2",), "toyvq/ops.py", "x", ("t",), buggy=("return (",)),)
                    + TOY_COURSE.exercises[:1] + TOY_COURSE.exercises[2:], package="toyvq")
    with pytest.raises(MarkerError, match="toyvq/ops.py:.*does not compile"):
        write_student_copy(root, tmp_path / "out", course=broken, say=lambda *a: None)


# --------------------------------------------------------------- grading
def test_grade_fails_every_exercise_of_the_copy_with_the_reason(toy):
    _, copy, _ = toy
    report = grade(copy, course=TOY_COURSE, say=lambda *a: None)
    rows = {r["name"]: r for r in report["exercises"]}
    assert report["student_copy"] and not any(r["passed"] for r in rows.values())
    assert rows["square_backward"]["reason"] == "not implemented"
    message = rows["square_backward"]["failed"][0]["message"]
    assert "NotImplementedError: exercise square_backward: return dout times 2x" in message
    assert rows["square_backward"]["rel_error"] is None and rows["square_backward"]["threshold"] == 1e-7
    assert rows["double_backward"]["reason"] == "not implemented"
    # a spot-the-bug exercise names what to look for before the failing assertion
    assert rows["share_bug"]["reason"].startswith("shares must sum to one; 1 test(s) fail: assert ")
    assert rows["kernel_loop"]["reason"].startswith("1 test(s) fail: AssertionError: the loop of kernel_loop")
    assert report["total"] == {"score": 0, "points": 5, "passed": 0, "exercises": 4}


def test_grade_passes_every_exercise_of_the_solution_and_reports_the_error(tmp_path, toy):
    root, _, _ = toy
    report = grade(root, course=TOY_COURSE, say=lambda *a: None)
    assert all(r["passed"] for r in report["exercises"]), format_report(report)
    row = report["exercises"][0]
    assert 0 <= row["rel_error"] < 1e-7 and row["tests"] == 1
    assert report["total"]["score"] == 5 and not report["student_copy"]
    table = format_report(report)
    assert "square_backward" in table and f"{row['rel_error']:.1e} < 1e-07" in table
    assert table.splitlines()[-2] == "total: 5/5 points, 4/4 exercises pass"
    assert table.splitlines()[-1].startswith("This is the self-check") and "hidden checks" in table
    write_report(report, tmp_path / "grades.json")
    assert json.loads((tmp_path / "grades.json").read_text())["total"]["score"] == 5


def test_grade_names_what_another_exercise_blocks(tmp_path):
    root = write_repo(tmp_path / "repo")
    write_student_copy(root, tmp_path / "copy", exercises=["square_backward"], course=TOY_COURSE, say=lambda *a: None)
    report = grade(tmp_path / "copy", exercises=["square_backward", "double_backward"], course=TOY_COURSE,
                   say=lambda *a: None)
    rows = {r["name"]: r for r in report["exercises"]}
    assert rows["double_backward"]["reason"] == "needs exercise square_backward first"
    assert [r["name"] for r in report["exercises"]] == ["square_backward", "double_backward"]


def test_grade_reports_a_missing_test_and_a_broken_test_file(tmp_path):
    root = write_repo(tmp_path / "repo")
    (root / "tests/test_ops.py").write_text(TESTS.replace("def test_shares_sum_to_one", "def test_renamed"))
    (root / "tests/test_kernel.py").write_text("import no_such_module\n" + KERNEL_TESTS)
    rows = {r["name"]: r for r in grade(root, course=TOY_COURSE, say=lambda *a: None)["exercises"]}
    assert rows["share_bug"]["reason"] == "graded test not found: tests/test_ops.py::test_shares_sum_to_one"
    assert "cannot collect tests/test_kernel.py" in rows["kernel_loop"]["reason"]
    assert "cannot collect tests/test_kernel.py: ModuleNotFoundError: No module named 'no_such_module'" \
        in rows["kernel_loop"]["reason"]
    assert rows["square_backward"]["passed"] and rows["double_backward"]["passed"]


# --------------------------------------------------------------- the command
def parse(argv):
    parser = argparse.ArgumentParser(prog="minivq")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_course_list_prints_every_exercise(capsys, tmp_path):
    args = parse(["course", "list", "--json", str(tmp_path / "list.json")])
    run(args, course=TOY_COURSE)
    out = capsys.readouterr().out
    assert "square_backward" in out and "bug" in out and out.strip().endswith("4 exercises, 5 points")
    listed = json.loads((tmp_path / "list.json").read_text())
    assert [e["name"] for e in listed["exercises"]] == TOY_COURSE.names() and listed["points"] == 5
    assert format_list(TOY_COURSE) in out


def test_the_self_check_grades_one_copy(tmp_path, toy):
    """Several submissions, or --json-dir, need the teacher's install (its hidden checks)."""
    _, copy, _ = toy
    for argv in (["course", "grade", str(copy), str(copy)], ["course", "grade", str(copy), "--json-dir", str(tmp_path)]):
        with pytest.raises(UsageError, match="grading submissions needs the instructor repository"):
            run(parse(argv), course=TOY_COURSE)


def test_course_student_command_and_its_errors(tmp_path):
    root = write_repo(tmp_path / "repo")
    run(parse(["course", "student", str(tmp_path / "copy"), "--source", str(root)]), course=TOY_COURSE)
    assert (tmp_path / "copy" / HANDOUT_FILE).is_file()
    with pytest.raises(ValueError, match="--exercises: unknown exercise 'nope'"):
        run(parse(["course", "student", str(tmp_path / "c2"), "--source", str(root), "--exercises", "nope"]),
            course=TOY_COURSE)
    with pytest.raises(ValueError, match="not an empty folder"):
        run(parse(["course", "student", str(tmp_path / "copy"), "--source", str(root)]), course=TOY_COURSE)
    with pytest.raises(ValueError, match="--source .*: no such folder"):
        run(parse(["course", "student", str(tmp_path / "c3"), "--source", str(tmp_path / "none")]), course=TOY_COURSE)
    with pytest.raises(ValueError, match="DIR .*: no such folder"):
        run(parse(["course", "grade", str(tmp_path / "none")]), course=TOY_COURSE)


def cli(capsys, monkeypatch, *argv):
    """Run ``minivq argv`` in-process as a user would (no --debug); returns (exit code, stdout, stderr)."""
    monkeypatch.delenv("MINIVQ_DEBUG", raising=False)
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:  # --help
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_usage_error(code, err, *words):
    assert code == 2, f"expected the usage-error exit code 2, got {code}: {err}"
    assert err.startswith("minivq course: error: ") and err.count("\n") == 1, err
    assert "internal error" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, f"{word!r} not in {err!r}"


def test_course_grade_without_pytest_says_how_to_install_it_before_running_anything(toy, tmp_path, capsys,
                                                                                      monkeypatch):
    _, copy, _ = toy
    assert grade_module.check_pytest(copy) is None  # pytest is installed here: no complaint
    real_find_spec = grade_module.find_spec
    monkeypatch.setattr(grade_module, "find_spec", lambda name, *a: None if name == "pytest"
                        else real_find_spec(name, *a))
    ran = []
    monkeypatch.setattr(grade_module, "_run_pytest", lambda *a, **k: ran.append(a))
    report = tmp_path / "grades.json"
    code, out, err = cli(capsys, monkeypatch, "course", "grade", copy, "--json", report)
    assert_one_line_usage_error(code, err, f"pytest is not installed for {sys.executable}",
                                f"pip install -e '{copy.resolve()}[test]'")
    assert "No module named pytest" not in err and not ran and out == "" and not report.exists()
    monkeypatch.chdir(copy)  # grading the current folder: the command to type there
    code, out, err = cli(capsys, monkeypatch, "course", "grade")
    assert_one_line_usage_error(code, err, "pip install -e '.[test]'")
    assert not ran and out == ""


def test_course_student_refuses_a_source_that_is_not_a_repository_before_copying(tmp_path, capsys, monkeypatch):
    docs = tmp_path / "docs"  # many files, no setup.py, no tests/, no minivq/
    for i in range(30):
        (docs / f"part{i % 3}" / f"page{i}.md").parent.mkdir(parents=True, exist_ok=True)
        (docs / f"part{i % 3}" / f"page{i}.md").write_text(f"page {i}\n")
    out_dir = tmp_path / "handout"
    code, out, err = cli(capsys, monkeypatch, "course", "student", out_dir, "--source", docs)
    assert_one_line_usage_error(code, err, f"--source {docs}: expected a clone of the repository",
                                "no setup.py, no tests/, no minivq/")
    assert len(err) < 300 and "no solution region" not in err and out == "", "nothing copied, nothing said"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["docs"], "no copy, not even a temporary one"
    # one thing missing is named as such; a file is not a folder
    root = write_repo(tmp_path / "repo")
    shutil.rmtree(root / "tests")
    with pytest.raises(UsageError, match=r"^--source \S+repo: expected .* got a folder with no tests/$"):
        run(parse(["course", "student", str(out_dir), "--source", str(root)]), course=TOY_COURSE)
    with pytest.raises(UsageError, match=r"--source \S+setup.py is a file, expected the folder"):
        run(parse(["course", "student", str(out_dir), "--source", str(root / "setup.py")]), course=TOY_COURSE)
    assert not out_dir.exists()


def test_course_json_never_overwrites_a_checkpoint(tmp_path, capsys, monkeypatch):
    checkpoint = tmp_path / "model.npz"
    checkpoint.write_bytes(b"PK\x03\x04 a checkpoint")
    code, out, err = cli(capsys, monkeypatch, "course", "list", "--json", checkpoint)
    assert_one_line_usage_error(code, err, f"--json {checkpoint}: expected a new file or a JSON file, "
                                           "got an existing .npz file")
    assert out == "" and checkpoint.read_bytes() == b"PK\x03\x04 a checkpoint"
    code, out, err = cli(capsys, monkeypatch, "course", "grade", tmp_path, "--json", checkpoint)
    assert_one_line_usage_error(code, err, "--json")
    assert checkpoint.read_bytes() == b"PK\x03\x04 a checkpoint"
    other = tmp_path / "old.json"  # any other existing file is overwritten, as before
    other.write_text("old")
    code, out, err = cli(capsys, monkeypatch, "course", "list", "--json", other)
    assert code == 0 and err == "" and json.loads(other.read_text())["points"] == COURSE.points


def test_course_help_says_how_to_install_for_teaching(capsys, monkeypatch):
    code, student, _ = cli(capsys, monkeypatch, "course", "student", "--help")
    assert code == 0
    assert 'cd ../handout && pip install -e ".[test]" && minivq course grade' in student
    assert "pip install -e . &&" not in student, "pip install -e . does not install pytest"
    flat = " ".join(student.split())
    assert "a non-editable install (`pip install .`) needs `--source PATH_TO_A_CLONE`" in flat
    assert '`pip install -e "OUT[test]"`' in flat
    code, course, _ = cli(capsys, monkeypatch, "course", "--help")
    flat = " ".join(course.split())
    assert code == 0 and "after a non-editable install (`pip install .`) give it `--source PATH_TO_A_CLONE`" in flat
    code, grading, _ = cli(capsys, monkeypatch, "course", "grade", "--help")
    assert code == 0 and 'pip install -e ".[test]"' in grading


# --------------------------------------------------------------- notebooks of the copy
def test_student_notebook_runs_up_to_its_first_exercise(toy, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    _, copy, _ = toy
    monkeypatch.setenv("PYTHONPATH", str(copy))
    nb = nbformat.read(copy / "notebooks/toy.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, timeout=60, kernel_name="python3",
                                     resources={"metadata": {"path": str(copy / "notebooks")}})
    with pytest.raises(nbclient.exceptions.CellExecutionError) as info:
        client.execute()
    assert info.value.ename == "NotImplementedError" and "exercise square_backward:" in info.value.evalue
    assert "before the exercise" in "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert not nb.cells[4].outputs, "cells after the first exercise do not run"


@pytest.mark.parametrize("nodeid, pattern, expected", [
    ("t.py::test_a", "t.py::test_a", True),
    ("t.py::test_a[1-float32-teaching]", "t.py::test_a", True),
    ("t.py::test_ab", "t.py::test_a", False),
    ("t.py::test_a[1-float32-teaching]", "t.py::test_a[*-teaching]", True),
    ("t.py::test_a[1-float32-fast]", "t.py::test_a[*-teaching]", False),
    ("t.py::test_b[1-teaching]", "t.py::test_a[*-teaching]", False),
    ("t.py::test_b[1-teaching]", "t.py", True),
    ("u.py::test_b", "t.py", False),
])
def test_graded_test_patterns(nodeid, pattern, expected):
    assert matches(nodeid, pattern) is expected


# --------------------------------------------------------------- the registry of this repository
ROOT = Path(__file__).resolve().parent.parent


def test_registry_names_files_tests_and_equations_that_exist():
    method = (ROOT / "METHOD.md").read_text(encoding="utf-8")
    names = COURSE.names()
    assert len(set(names)) == len(names) and len(names) >= 12
    for i, ex in enumerate(COURSE.exercises):
        assert re.fullmatch(r"[a-z][a-z0-9_]*", ex.name) and ex.points > 0 and ex.tests, ex.name
        assert (ROOT / ex.path).is_file(), f"{ex.name}: {ex.path} does not exist"
        for mid in ex.method_ids:
            assert f"({mid})" in method, f"{ex.name}: METHOD.md has no equation ({mid})"
        for nb in ex.notebooks:
            assert (ROOT / nb).is_file(), f"{ex.name}: no notebook {nb}"
        for pattern in ex.tests:
            file, _, test = pattern.partition("::")
            assert (ROOT / file).is_file(), f"{ex.name}: no test file {file}"
            function = test.split("[", 1)[0]
            assert not test or re.search(rf"^def {function}\(", (ROOT / file).read_text(), re.M), \
                f"{ex.name}: {file} has no test {function}"
        for required in ex.requires:
            assert required in names[:i], f"{ex.name} requires {required}, which must come before it"
        assert (ex.buggy is None) == (ex.kind == "implement") and "\n" not in ex.instruction
    for notebook, needs in COURSE.notebook_needs.items():
        assert (ROOT / notebook).is_file() and set(needs) <= set(names), notebook


def test_syllabus_lists_every_exercise():
    syllabus = (ROOT / "COURSE.md").read_text(encoding="utf-8")
    missing = [name for name in COURSE.names() if f"`{name}`" not in syllabus]
    assert not missing, f"COURSE.md does not list {missing}"
    assert format_markdown(COURSE) in syllabus, "COURSE.md's exercise table must be format_markdown()'s output"


def test_trace_finds_the_exercises_a_notebook_runs(tmp_path, monkeypatch):
    root = write_repo(tmp_path / "repo")
    monkeypatch.syspath_prepend(str(root))
    assert exercises_used(root / "notebooks/toy.ipynb", root, TOY_COURSE) == [("square_backward", 3)]
    functions = region_functions(root, TOY_COURSE)
    assert functions["kernel_loop"] == {(str((root / "toyvq/kernel.pyx").resolve()), "loop")}
    assert functions["double_backward"] == {(str((root / "toyvq/ops.py").resolve()), "double_square_backward")}


# --------------------------------------------------------------- the kit on this repository
def _marked():
    """True when every exercise's file holds a region of it (phase 2 of issue 13 put them there)."""
    return all(f"### BEGIN SOLUTION {ex.name}" in (ROOT / ex.path).read_text(encoding="utf-8")
               for ex in COURSE.exercises)


needs_regions = pytest.mark.skipif(not _marked(), reason="the library's solution regions are not marked yet")


def without_markers(text):
    return [line for line in text.splitlines() if not re.match(r"\s*### (BEGIN|END) SOLUTION", line)]


def build_kernels(copy, source=ROOT):
    """Compile the copy's changed .pyx files in place; copy the source's build of those whose code is unchanged."""
    for pyx in sorted((copy / "minivq").glob("*.pyx")):
        built = [p for p in (source / "minivq").glob(pyx.stem + ".*") if p.suffix in (".so", ".pyd")]
        if built and without_markers(pyx.read_text()) == without_markers((source / "minivq" / pyx.name).read_text()):
            shutil.copy2(built[0], copy / "minivq" / built[0].name)
            continue
        extension = f"Extension('minivq.{pyx.stem}', ['minivq/{pyx.name}'])"
        script = ("from setuptools import setup, Extension; from Cython.Build import cythonize; "
                  f"setup(packages=[], py_modules=[], ext_modules=cythonize([{extension}], quiet=True), "
                  "script_args=['-q', 'build_ext', '--inplace'])")
        subprocess.run([sys.executable, "-c", script], cwd=copy, check=True, capture_output=True)


@pytest.fixture(scope="module")
def real_copy(tmp_path_factory):
    """A student copy of this repository with every exercise handed out, its kernels built."""
    copy = tmp_path_factory.mktemp("course") / "student"
    write_student_copy(ROOT, copy, say=lambda *a: None)
    build_kernels(copy)
    return copy


NAMED = re.compile(r"NotImplementedError: exercise ([a-z0-9_]+):")


def requirements(ex):
    """Every exercise ``ex`` builds on, directly or through another."""
    found, todo = set(), list(ex.requires)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += COURSE.get(name).requires
    return found


def independent_rounds(exercises):
    """Split ``exercises`` into groups in which none builds on another (each group: one student copy)."""
    rounds = []
    for ex in exercises:
        for group in rounds:
            if not any(other.name in requirements(ex) or ex.name in requirements(other) for other in group):
                group.append(ex)
                break
        else:
            rounds.append([ex])
    return rounds


def assert_fails_for_its_own_reason(row, handed_out):
    """Every graded test failed, because of this exercise or of one it builds on that was handed out."""
    ex = COURSE.get(row["name"])
    assert not row["passed"] and row["tests"] > 0, f"{ex.name}: {row}"
    assert len(row["failed"]) == row["tests"], \
        f"{ex.name}: {row['tests'] - len(row['failed'])} of its graded tests pass on the student copy"
    blockers = requirements(ex) & set(handed_out)
    for failure in row["failed"]:
        named = NAMED.search(failure["message"])
        if named:
            assert named.group(1) == ex.name or named.group(1) in blockers, \
                f"{ex.name}: {failure['test']} fails on exercise {named.group(1)}, which it does not declare"
            assert ex.kind == "implement" or named.group(1) != ex.name
        else:
            assert ex.kind == "bug" or any(COURSE.get(b).kind == "bug" for b in blockers), \
                f"{ex.name}: {failure['test']} fails without naming its exercise: {failure['message']}"
    if not blockers:
        assert row["reason"] == ("not implemented" if ex.kind == "implement" else row["reason"])
        assert ex.kind == "implement" or not any(NAMED.search(f["message"]) for f in row["failed"]), \
            f"{ex.name}: the buggy version must fail by a wrong result, not by a stub"


@needs_regions
def test_every_exercise_fails_on_the_student_copy_and_no_graded_test_passes(real_copy):
    report = grade(real_copy, say=lambda *a: None)
    assert report["student_copy"] and [r["name"] for r in report["exercises"]] == COURSE.names()
    for row in report["exercises"]:
        assert_fails_for_its_own_reason(row, COURSE.names())
    assert report["total"]["score"] == 0


@needs_regions
def test_exercises_that_build_on_others_fail_on_their_own_stub_or_bug(tmp_path):
    for i, group in enumerate(independent_rounds([ex for ex in COURSE.exercises if ex.requires])):
        names = [ex.name for ex in group]
        copy = tmp_path / f"round{i}"
        write_student_copy(ROOT, copy, exercises=names, say=lambda *a: None)
        build_kernels(copy)
        report = grade(copy, say=lambda *a: None)
        assert [r["name"] for r in report["exercises"]] == names
        for row in report["exercises"]:
            assert_fails_for_its_own_reason(row, names)


@needs_regions
def test_every_exercise_passes_on_the_solution():
    report = grade(ROOT, say=lambda *a: None)
    failing = [(r["name"], r["reason"]) for r in report["exercises"] if not r["passed"]]
    assert not failing, f"exercises failing on the instructor version: {failing}"
    for row in report["exercises"]:
        if row["threshold"] is not None:
            assert row["rel_error"] is not None and row["rel_error"] < row["threshold"], row
    assert report["total"]["score"] == COURSE.points


ANSWERS_IN_PLAIN_SIGHT = ("dS L_b + (dS P_b) / (P_a + eps)", "dloss / (2B) [(softmax_rows(Z) - I)",
                          "2 beta/(N D) M (h - q)", "dE_k = 2/(N D) sum", "def ema_reference_step",
                          "dX = dY W^T", "dH[b, t] = w_bt dout[b]", "dx = (dout - [||x|| > eps]",
                          "dh_u = 2 sum_k dsq_uk", "dW_q = sum_b xv[b, q : q + T_out]^T dY[b]")


@needs_regions
def test_the_student_copy_keeps_the_markers_and_holds_no_answer(real_copy):
    """Issue 23: the teacher's side, the buggy variants, the backward formulas and reference loops stay out."""
    assert not (real_copy / "minivq/course/hidden").exists()
    assert not any((real_copy / "tests" / name).exists() for name in ("test_grader.py", "test_grader_hostile.py",
                                                                     "grader_fixtures", "test_course.py"))
    text = "\n".join(p.read_text(encoding="utf-8") for p in sorted(real_copy.rglob("*.py")))
    for answer in ANSWERS_IN_PLAIN_SIGHT:
        assert answer not in text, f"the student copy shows {answer!r}"
    probe = ("from minivq.course.exercises import COURSE; import json; print(json.dumps([(e.name, e.kind, e.buggy) "
             "for e in COURSE.exercises]))")
    listed = json.loads(subprocess.run([sys.executable, "-c", probe], cwd=real_copy, capture_output=True, text=True,
                                       env={"PYTHONPATH": str(real_copy), "PATH": "/usr/bin:/bin"}).stdout)
    assert [(n, k) for n, k, _ in listed] == [(ex.name, ex.kind) for ex in COURSE.exercises]
    assert all(buggy is None for _, _, buggy in listed), "the copy's registry quotes no buggy line"
    found = set()
    for ex in COURSE.exercises:
        if ex.path.endswith((".py", ".pyx")):
            found |= {r.name for r in find_regions((real_copy / ex.path).read_text(encoding="utf-8"), ex.path)}
    assert found == set(COURSE.names()) - {"patchify_backward"}, "every exercise's markers stay for the student"
    ema = (real_copy / "minivq/ema.py").read_text(encoding="utf-8")
    stub = ema.index("exercise restart_dead_codes: ")
    assert "state.n[dead] = threshold" in ema[stub:], "the spot-the-bug's code is there to spot, after the stub"


def first_implementation(notebook):
    """The first exercise with a stub that ``notebook`` runs (None if it runs none)."""
    return next((n for n in COURSE.notebook_needs.get(notebook, ()) if COURSE.get(n).kind == "implement"), None)


STUDENT_NOTEBOOKS = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def notebook_runs(real_copy):
    """Every notebook of the student copy executed until its first error, all at once: path -> (nb, error)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")

    async def run(notebook):
        nb = nbformat.read(real_copy / notebook, as_version=4)
        client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                         resources={"metadata": {"path": str((real_copy / notebook).parent)}})
        try:
            await client.async_execute()
        except nbclient.exceptions.CellExecutionError as error:
            return nb, error
        return nb, None

    async def run_all():
        return await asyncio.gather(*(run(notebook) for notebook in STUDENT_NOTEBOOKS))

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", str(real_copy))  # the kernels import the copy's minivq
        mp.delenv("MPLBACKEND", raising=False)
        # the compiled kernels, as a student runs them (with NumPy only, nearest_code runs nearest_reference,
        # an exercise, and notebook 03 would stop there first)
        mp.delenv("MINIVQ_PUREPYTHON", raising=False)
        return dict(zip(STUDENT_NOTEBOOKS, asyncio.run(run_all())))


@needs_regions
@pytest.mark.parametrize("notebook", STUDENT_NOTEBOOKS)
def test_student_notebooks_run_up_to_their_first_exercise(notebook_runs, notebook):
    nb, error = notebook_runs[notebook]
    needs, first = COURSE.notebook_needs.get(notebook, ()), first_implementation(notebook)
    for name in needs:
        assert f"`{name}`" in nb.cells[0].source, f"{notebook}: the first cell must say it runs {name}"
    if first is None:
        assert error is None, f"{notebook} needs no exercise but fails: {error.ename}: {error.evalue}"
        return
    assert error is not None, f"{notebook} runs to its end without its exercise {first}"
    assert error.ename == "NotImplementedError" and f"exercise {first}:" in error.evalue, \
        f"{notebook} must stop at its first exercise {first}, stopped at {error.ename}: {error.evalue}"
