"""The student copy: the repository with each handed-out region replaced by its stub or its bug.

Inline answers and what :mod:`.redact` strips are removed, the teacher's side is left out, and the copy is
written to a temporary folder renamed into place, with :data:`HANDOUT_FILE`.
"""
import fnmatch
import json
import os
import shlex
import shutil
from datetime import datetime, timezone
from pathlib import Path

from .exercises import COURSE
from .markers import (MarkerError, cell_source, find_answers, find_regions, replace_answers, replace_regions,
                      stub_lines)
from .redact import redact

__all__ = ["write_student_copy", "repository_files", "HANDOUT_FILE"]

#: The file, at the root of a student copy, that lists the handed-out exercises.
HANDOUT_FILE = ".minivq_course.json"
#: Never copied, whatever .gitignore says.
ALWAYS_EXCLUDED = (".git", "__pycache__", "*.pyc", "*.so", "*.pyd", ".ipynb_checkpoints", ".hypothesis",
                   ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", ".venv", HANDOUT_FILE)
SCANNED_SUFFIXES = (".py", ".pyx", ".ipynb")


def _ignore_patterns(source):
    """Patterns of ``source/.gitignore`` (comments and negations skipped) and :data:`ALWAYS_EXCLUDED`."""
    gitignore = source / ".gitignore"
    lines = [line.strip() for line in gitignore.read_text(encoding="utf-8").splitlines()] if gitignore.is_file() else []
    return list(ALWAYS_EXCLUDED) + [line for line in lines if line and not line.startswith(("#", "!"))]


def _ignored(rel, is_dir, patterns):
    for pattern in patterns:
        dir_only = pattern.endswith("/")
        pattern = pattern.rstrip("/")
        if dir_only and not is_dir:
            continue
        target = rel if "/" in pattern else rel.rsplit("/", 1)[-1]
        if fnmatch.fnmatchcase(target, pattern.lstrip("/")):
            return True
    return False


def repository_files(source, skip=()):
    """The files a clone of ``source`` would have (sorted relative POSIX paths): not what ``.gitignore``
    and :data:`ALWAYS_EXCLUDED` exclude, the ``.c`` beside a ``.pyx``, nor the folders ``skip``."""
    source = Path(source)
    patterns, skip = _ignore_patterns(source), {Path(p).resolve() for p in skip}
    files = []
    for folder, dirs, names in os.walk(source):
        folder = Path(folder)
        rel_folder = folder.relative_to(source).as_posix()
        prefix = "" if rel_folder == "." else rel_folder + "/"
        dirs[:] = sorted(d for d in dirs if not _ignored(prefix + d, True, patterns)
                         and (folder / d).resolve() not in skip and not d.startswith(".tmp-student-"))
        for name in names:
            rel = prefix + name
            generated = name.endswith(".c") and (folder / (name[:-2] + ".pyx")).exists()
            if not generated and not _ignored(rel, False, patterns):
                files.append(rel)
    return sorted(files)


def _replacer(rel, handed_out, course, seen):
    """The ``replacement`` of :func:`minivq.course.markers.replace_regions` for the file ``rel``."""

    def replace(region, body):
        try:
            ex = course.get(region.name)
        except KeyError:
            raise MarkerError(f"{rel}:{region.begin + 1}: the region names {region.name!r}, which is not an "
                              f"exercise of the registry (minivq/course/exercises.py)") from None
        if ex.path != rel:
            raise MarkerError(f"{rel}:{region.begin + 1}: a region of {ex.name!r}, whose registry entry says "
                              f"its regions are in {ex.path}")
        index = len(seen.setdefault(ex.name, []))
        seen[ex.name].append(rel)
        if ex.name not in handed_out:
            return body
        if ex.kind == "implement":
            code = stub_lines(ex.name, ex.method_ids, ex.instruction)
        elif ex.buggy is None:
            raise MarkerError(f"{rel}:{region.begin + 1}: {ex.name!r} is a spot-the-bug exercise whose buggy "
                              "variant is on the teacher's side (minivq/course/hidden/): write student copies "
                              "from the instructor repository")
        elif index >= len(ex.buggy):
            raise MarkerError(f"{rel}:{region.begin + 1}: region {index + 1} of {ex.name!r}, which has "
                              f"{len(ex.buggy)} buggy variant(s) in the registry")
        else:
            code = ex.buggy[index].strip("\n").splitlines()
        return [f"### BEGIN SOLUTION {ex.name}"] + code + ["### END SOLUTION"]

    return replace


def _check_left(text, where, handed_out):
    """The regions left in a student text must be handed-out exercises' (and no answer is left)."""
    for region in find_regions(text, where):
        if region.name not in handed_out:
            raise MarkerError(f"{where}:{region.begin + 1}: marker lines of {region.name!r} are left in the "
                              "student version (a malformed marker?)")
    if find_answers(text, where):
        raise MarkerError(f"{where}: an inline question's answer is left in the student version")


def _student_source(text, rel, handed_out, course, seen):
    new = replace_regions(text, rel, _replacer(rel, handed_out, course, seen), require_indent=True)
    _check_left(new, rel, handed_out)
    if rel in course.redactions:
        new = redact(new, rel, course.redactions[rel])
    if rel.endswith(".py") and new != text:
        try:
            compile(new, rel, "exec")
        except SyntaxError as e:
            raise MarkerError(f"{rel}:{e.lineno}: the student version does not compile: {e.msg}") from None
    return new


def _first_cell_note(names, course):
    items = ", ".join(f"`{n}` ({course.get(n).path})" for n in names)
    return ("> **Student copy.** This notebook runs the exercise(s) " + items + ". Until they are "
            "implemented, the first cell that needs one stops with `NotImplementedError: exercise <name>: ...`; "
            "the cells before it run. `minivq course grade` tells which exercises pass.\n\n")


def _student_notebook(text, rel, handed_out, course, seen):
    nb = json.loads(text)
    for i, cell in enumerate(nb.get("cells", [])):
        where, old = f"{rel} cell {i}", cell_source(cell)
        if cell.get("cell_type") == "code":
            new = replace_regions(old, where, _replacer(rel, handed_out, course, seen))
            _check_left(new, where, handed_out)
            if new != old:
                cell["outputs"], cell["execution_count"] = [], None
        elif cell.get("cell_type") == "markdown":
            new = replace_answers(old, where)
        else:
            continue
        cell["source"] = new.splitlines(keepends=True)
    needs = [n for n in course.notebook_needs.get(rel, ()) if n in handed_out]
    if needs:
        note = _first_cell_note(needs, course)
        cells = nb.setdefault("cells", [])
        if cells and cells[0].get("cell_type") == "markdown":
            cells[0]["source"] = (note + cell_source(cells[0])).splitlines(keepends=True)
        else:
            cells.insert(0, {"cell_type": "markdown", "id": "student-copy-note", "metadata": {},
                             "source": note.splitlines(keepends=True)})
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _check_out(out):
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"OUT {out} exists and is not an empty folder; name a new folder")


def _under(rel, folders):
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in folders)


def _copy_tree(source, tmp, files, handed_out, course):
    """Copy ``files`` from ``source`` to ``tmp``, transformed; returns {exercise: [files of its regions]}."""
    seen = {}
    for rel in files:
        src, dst = source / rel, tmp / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not rel.endswith(SCANNED_SUFFIXES) or _under(rel, course.unscanned):
            shutil.copy2(src, dst)
            continue
        text = src.read_text(encoding="utf-8")
        transform = _student_notebook if rel.endswith(".ipynb") else _student_source
        new = transform(text, rel, handed_out, course, seen)
        dst.write_text(new, encoding="utf-8")
        shutil.copymode(src, dst)
    return seen


def _check_coverage(course, seen):
    missing = [ex.name for ex in course.exercises if ex.name not in seen]
    if missing:
        raise MarkerError(f"exercise(s) {', '.join(missing)} of the registry have no solution region in the "
                          f"files the registry names ({', '.join(course.get(n).path for n in missing)})")
    for ex in course.exercises:
        if ex.buggy is not None and len(seen[ex.name]) != len(ex.buggy):
            raise MarkerError(f"{ex.path}: {ex.name!r} has {len(seen[ex.name])} region(s) and {len(ex.buggy)} "
                              "buggy variant(s) in the registry; they must match one to one")


def write_student_copy(source, out, *, exercises=None, course=COURSE, say=print):
    """Write the student copy of ``source`` to the new (or empty: else FileExistsError) folder ``out``,
    handing out ``exercises`` (default: all); returns the handout. MarkerError for a malformed region, a
    region of an unknown exercise, an exercise without one, or a student file that does not compile."""
    source, out = Path(source).resolve(), Path(out).resolve()
    selected = course.select(exercises)
    _check_out(out)
    tmp = out.parent / f".tmp-student-{out.name}-{os.getpid()}"
    files = repository_files(source, skip=(out, tmp))
    say(f"course student: {len(files)} files from {source}, {len(selected)} exercise(s) handed out")
    handed_out = {ex.name for ex in selected}
    try:
        seen = _copy_tree(source, tmp, [f for f in files if not _under(f, course.instructor_only)], handed_out, course)
        _check_coverage(course, seen)
        handout = {"exercises": [ex.name for ex in selected], "points": sum(ex.points for ex in selected),
                   "created": datetime.now(timezone.utc).date().isoformat()}
        (tmp / HANDOUT_FILE).write_text(json.dumps(handout, indent=1) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"course student: wrote {out}; build it, with pytest for grading, by "
        f"`pip install -e {shlex.quote(str(out) + '[test]')}`, grade it with `minivq course grade {out}`")
    return handout
