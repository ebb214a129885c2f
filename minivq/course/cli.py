"""``minivq course``: the student copy, grading, and the list of exercises."""
import json
import re
import textwrap
from pathlib import Path

from ..cli.checks import UsageError, check_json_file
from .exercises import COURSE
from .markers import MarkerError
from .report import write_report
from .source import check_source, default_source
from .student import write_student_copy

__all__ = ["add_parser", "run", "format_list", "format_markdown"]

STUDENT_EPILOG = """examples:
  minivq course student ../handout                  # every exercise
  minivq course student ../week3 --exercises ema_update restart_dead_codes
  minivq course student ../handout --source ~/src/minivq   # after a plain `pip install .`
  cd ../handout && pip install -e ".[test]" && minivq course grade   # [test] brings pytest"""
GRADE_EPILOG = """examples:
  minivq course grade                       # a student: the self-check of this copy (public tests)
  minivq course grade ../alice --json alice.json          # the teacher: one submission
  minivq course grade submissions/ --json-dir grades/     # the teacher: each folder in submissions/
  minivq course grade ../alice --seed 1234  # an earlier grade's hidden inputs (its JSON's seed)"""


def _fill(text, width=79):
    """``textwrap.fill``, without breaking a `quoted command` across lines."""
    protected = re.sub(r"`[^`]*`", lambda m: m.group(0).replace(" ", "\0"), text)
    return textwrap.fill(protected, width).replace("\0", " ")


def add_parser(subparsers, parents=(), **kwargs):
    """Add ``course`` and its actions to ``subparsers``; ``parents`` and ``kwargs`` go to every action."""
    course = subparsers.add_parser(
        "course", help="the course kit: a student copy without the solutions, grading, the exercises",
        description=_fill(
            "Exercises in the library, graded by its tests: write a student copy in which every solution "
            "region raises NotImplementedError (or holds a bug to find), grade a copy, list the exercises. "
            "`minivq course student` copies the repository minivq is imported from, which an editable install "
            "(`pip install -e .` in a clone) provides; after a non-editable install (`pip install .`) give it "
            "`--source PATH_TO_A_CLONE`.", 79),
        **kwargs)
    actions = course.add_subparsers(dest="course_command", required=True, metavar="action")
    student = actions.add_parser(
        "student", parents=list(parents), help="write a student copy of the repository",
        description=_fill(
            "Copy the repository (library, tests, notebooks, README, setup files, data) to OUT with every "
            "exercise's solution replaced by a stub that raises NotImplementedError('exercise <name>: ...'), "
            "every spot-the-bug exercise holding its bug, and the answers to the notebooks' inline questions "
            "removed. Build the copy, with pytest to grade it, by `pip install -e \"OUT[test]\"`. The repository "
            "copied is the one minivq is imported from: an editable install (`pip install -e .` in a clone) "
            "imports it from the clone; a non-editable install (`pip install .`) needs "
            "`--source PATH_TO_A_CLONE`.", 79),
        epilog=STUDENT_EPILOG, **kwargs)
    student.add_argument("out", metavar="OUT", help="the new folder (must not exist, or be empty)")
    student.add_argument("--source", metavar="DIR", default=None,
                         help="the instructor repository, a clone of minivq (default: the one minivq is "
                              "imported from, which only an editable install provides; after a plain "
                              "pip install, pass --source PATH_TO_A_CLONE)")
    student.add_argument("--exercises", metavar="NAME", nargs="+", default=None,
                         help="hand out only these (default: all; the others keep their solution)")
    grade_p = actions.add_parser(
        "grade", parents=list(parents), help="grade submissions (teacher) or check a copy (student)",
        description=_fill(
            "The teacher (minivq installed from the instructor repository, or --source): grade each DIR, a "
            "submission or a folder of submissions, by running the teacher's code with only the student's "
            "solution regions spliced in, each exercise in its own process with a time and memory limit, on "
            "the public tests and hidden checks drawn at grading time; print one row per exercise and write "
            "the JSON (--json, --json-dir) once every process is gone. The student (in a student copy): the "
            "self-check, the copy's public tests in one pytest process. Both need pytest: `pip install -e "
            "\".[test]\"`.", 79), epilog=GRADE_EPILOG, **kwargs)
    grade_p.add_argument("directory", metavar="DIR", nargs="*", default=["."],
                         help="a submission (a student copy), a folder of submissions, or (the self-check) the "
                              "copy to check; default: the current folder")
    grade_p.add_argument("--json", metavar="FILE", default=None, help="also write the report as JSON (one DIR)")
    grade_p.add_argument("--json-dir", metavar="OUT", default=None,
                         help="write one JSON per submission and summary.csv to this folder (made if missing)")
    grade_p.add_argument("--exercises", metavar="NAME", nargs="+", default=None,
                         help="grade only these (teacher default: every exercise of the registry; self-check "
                              "default: those handed out)")
    grade_p.add_argument("--handout", metavar="DIR", default=None,
                         help="the teacher's own student copy: grade the exercises it hands out")
    grade_p.add_argument("--source", metavar="DIR", default=None,
                         help="the instructor repository (default: the one minivq is imported from)")
    grade_p.add_argument("--timeout", metavar="SECONDS", type=float, default=60.0,
                         help="wall-time limit of one exercise's process")
    grade_p.add_argument("--memory", metavar="MB", type=int, default=4096,
                         help="memory limit of one exercise's process (address space)")
    grade_p.add_argument("--jobs", metavar="N", type=int, default=None,
                         help="exercises graded at once (default: the number of CPUs)")
    grade_p.add_argument("--seed", metavar="N", type=int, default=None,
                         help="seed of the hidden checks' inputs (default: drawn for each submission, and "
                              "recorded in its JSON)")
    grade_p.add_argument("--self-check", action="store_true",
                         help="run the public tests of DIR as the student does, even with the teacher's install")
    listing = actions.add_parser("list", parents=list(parents), help="the exercises: points, METHOD.md IDs, notebooks",
                                 description="List the exercises in the order of the syllabus (COURSE.md).", **kwargs)
    listing.add_argument("--json", metavar="FILE", default=None, help="also write the list as JSON")
    for parser in (student, grade_p, listing):
        parser.set_defaults(func=run)


def format_list(course=COURSE):
    """The exercises as a table: name, kind, points, METHOD.md IDs, file, notebooks; and the total."""
    head = f"{'exercise':<28} {'kind':<9} {'points':>6}  {'METHOD.md':<16} {'file':<32} notebooks"
    lines = [head, "-" * len(head)]
    for ex in course.exercises:
        notebooks = ", ".join(Path(n).stem[:2] for n in ex.notebooks) or "-"
        lines.append(f"{ex.name:<28} {ex.kind:<9} {ex.points:>6}  {', '.join(ex.method_ids):<16} "
                     f"{ex.path:<32} {notebooks}")
    lines.append(f"{len(course.exercises)} exercises, {course.points} points")
    return "\n".join(lines)


def format_markdown(course=COURSE):
    """The exercises as the markdown table of COURSE.md (tests/test_course.py keeps the two equal)."""
    lines = ["| exercise | kind | points | METHOD.md | file | notebook | graded by |",
             "|---|---|---:|---|---|---|---|"]
    for ex in course.exercises:
        tests = "<br>".join(f"`{t.replace('tests/', '')}`" for t in ex.tests)
        notebooks = ", ".join(Path(n).stem[:2] for n in ex.notebooks) or "-"
        lines.append(f"| `{ex.name}` | {ex.kind} | {ex.points} | {', '.join(ex.method_ids)} | `{ex.path}` | "
                     f"{notebooks} | {tests} |")
    lines.append(f"| total | | {course.points} | | | | |")
    return "\n".join(lines)


def _list_json(course):
    return {"exercises": [{"name": ex.name, "kind": ex.kind, "points": ex.points, "method_ids": list(ex.method_ids),
                           "path": ex.path, "instruction": ex.instruction, "tests": list(ex.tests),
                           "notebooks": list(ex.notebooks), "requires": list(ex.requires),
                           "threshold": ex.threshold} for ex in course.exercises],
            "points": course.points}


def _check_names(names, course):
    try:
        return course.select(names)
    except ValueError as e:
        raise UsageError(str(e)) from None


def run(args, course=COURSE):
    """Run the ``course`` action of parsed ``args``."""
    action = args.course_command
    json_path = getattr(args, "json", None)
    if json_path is not None:
        check_json_file(json_path, "--json")
    if action == "list":
        print(format_list(course), flush=True)
        if json_path is not None:
            write_report(_list_json(course), json_path)
        return
    if getattr(args, "exercises", None) is not None:
        _check_names(args.exercises, course)
    if action == "student":
        source = check_source(args.source, course) if args.source is not None else default_source()
        try:
            write_student_copy(source, args.out, exercises=args.exercises, course=course)
        except FileExistsError as e:
            raise UsageError(str(e)) from None
        except MarkerError as e:
            raise ValueError(f"--source {source}: {e}") from None
        return
    from .grading_cli import grade_command

    grade_command(args, course)
