"""``minivq course grade``: the teacher's grading when the instructor repository (with its hidden checks)
is installed or given by ``--source``, else the student's self-check."""
import json
import os
import signal
import sys
from pathlib import Path

from ..cli.checks import UsageError
from ..io.atomic import atomic_write_text
from .grade import check_pytest, grade
from .report import csv_text, format_report, write_report
from .sandbox import become_subreaper, stop_on_sigterm
from .source import check_source, default_source
from .student import HANDOUT_FILE

__all__ = ["grade_command", "submissions_of"]


def _source(args, course):
    """The instructor repository with its hidden checks, or None (then: the self-check)."""
    if args.source is not None:
        source = check_source(args.source, course)
        if not course.hidden_dir or not (source / course.hidden_dir).is_dir():
            raise UsageError(f"--source {args.source}: no hidden checks ({course.hidden_dir}/): a student copy, not "
                             "the instructor repository")
        return source
    try:
        source = default_source()
    except UsageError:
        return None
    return source if course.hidden_dir and (source / course.hidden_dir).is_dir() else None


def _is_copy(folder, course):
    return any((folder / name).exists() for name in (course.package, "tests", "setup.py", HANDOUT_FILE))


def submissions_of(texts, course):
    """The submission folders named by ``DIR`` arguments (a folder of submissions gives each of its folders)."""
    found = []
    for text in texts:
        folder = Path(text)
        if not folder.is_dir():
            raise UsageError(f"DIR {text}: no such folder")
        inside = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not _is_copy(folder, course) and any(_is_copy(p, course) for p in inside):
            found += inside
        else:
            found.append(folder)
    return found


def _exercises(args, course):
    if args.handout is not None:
        path = Path(args.handout) / HANDOUT_FILE
        try:
            names = json.loads(path.read_text(encoding="utf-8"))["exercises"]
        except (OSError, ValueError, KeyError, TypeError):
            raise UsageError(f"--handout {args.handout}: no {HANDOUT_FILE} written by minivq course student") from None
        return course.select(names, arg="--handout")
    return course.select(args.exercises)


def _names(subs):
    """A distinct file name for each submission."""
    seen, names = {}, []
    for sub in subs:
        base = Path(os.path.abspath(sub)).name or "submission"
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names


def _self_check(args, course):
    if len(args.directory) > 1 or args.json_dir is not None:
        raise UsageError("grading submissions needs the instructor repository (its hidden checks): run it where "
                         "minivq is installed from the instructor repository, or give --source PATH_TO_IT")
    directory = Path(args.directory[0])
    if not directory.is_dir():
        raise UsageError(f"DIR {directory}: no such folder")
    report = grade(directory, exercises=args.exercises, course=course)
    print(format_report(report), flush=True)
    if args.json is not None:
        write_report(report, args.json)
        print(f"course grade: wrote {args.json}", flush=True)


def grade_command(args, course):
    """Run ``minivq course grade`` for parsed ``args``."""
    source = None if args.self_check else _source(args, course)
    if source is None:
        return _self_check(args, course)
    if args.timeout <= 0 or args.memory <= 0 or (args.jobs is not None and args.jobs < 1):
        bad = "--timeout" if args.timeout <= 0 else "--memory" if args.memory <= 0 else "--jobs"
        raise UsageError(f"{bad}: expected a positive number, got {getattr(args, bad[2:])}")
    subs = submissions_of(args.directory, course)
    if args.json is not None and len(subs) > 1:
        raise UsageError(f"--json {args.json}: one file for one submission, got {len(subs)} submissions; give "
                         "--json-dir OUT")
    out_dir = Path(args.json_dir) if args.json_dir is not None else None
    if out_dir is not None:
        if out_dir.exists() and not out_dir.is_dir():
            raise UsageError(f"--json-dir {args.json_dir} is a file, expected a folder")
        out_dir.mkdir(parents=True, exist_ok=True)
    exercises = _exercises(args, course)
    check_pytest(subs[0] if subs else ".")
    names, reports = {str(p.resolve()): n for p, n in zip(subs, _names(subs))}, []
    if Path(sys.argv[0]).name == "minivq" or Path(sys.argv[0]).parent.name == "minivq":
        become_subreaper()  # only in the command's own process: orphans of a child come back to be killed
        reap = True
    else:
        reap = False
    print(f"course grade: {len(subs)} submission(s), {len(exercises)} exercise(s) each, the teacher's code from "
          f"{source}; limits: {args.timeout:g} s and {args.memory} MB per exercise", file=sys.stderr, flush=True)

    def on_report(report):
        name = report["submission"] = names.get(report["directory"], report["submission"])
        reports.append(report)
        if len(subs) == 1:
            print(format_report(report), flush=True)
        else:
            t = report["total"]
            print(f"{name}: {t['score']}/{t['points']} points, {t['passed']}/{t['exercises']} exercises pass",
                  flush=True)
        if args.json is not None:
            write_report(report, args.json)
            print(f"course grade: wrote {args.json}", flush=True)
        if out_dir is not None:
            write_report(report, out_dir / f"{name}.json")
            atomic_write_text(out_dir / "summary.csv", csv_text(sorted(reports, key=lambda r: r["submission"]),
                                                                [ex.name for ex in exercises]))

    from .teacher import grade_submissions

    old = stop_on_sigterm()
    try:
        grade_submissions(subs, source, course, exercises, on_report, timeout=args.timeout,
                          memory=args.memory << 20, jobs=args.jobs, seed=args.seed, reap_orphans=reap,
                          say=lambda line: print(line, file=sys.stderr, flush=True))
    except KeyboardInterrupt as e:
        kept = f"; the {len(reports)} submission(s) graded before are written" if reports and (
            out_dir or args.json) else ""
        raise KeyboardInterrupt(f"{e or 'stopped'}: every grading process is killed{kept}") from None
    finally:
        signal.signal(signal.SIGTERM, old)
    if out_dir is not None:
        print(f"course grade: wrote {len(reports)} JSON file(s) and summary.csv to {out_dir}", flush=True)
