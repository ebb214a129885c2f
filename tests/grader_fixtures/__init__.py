"""Submissions for the grader's tests: a student copy with answers written in, honest or hostile.

:func:`solve` writes the teacher's solution into the regions of a student copy (a student who got
everything right); the tests then edit one region, or add files, to make a wrong or hostile submission.
"""
import re
import shutil
from pathlib import Path

from minivq.course.markers import replace_regions

ROOT = Path(__file__).resolve().parent.parent.parent


def teacher_bodies(rel, source=ROOT):
    """{exercise: [body lines of each region]} of the teacher's file ``rel`` (dedented)."""
    found = {}

    def keep(region, body):
        found.setdefault(region.name, []).append(body)
        return body

    text = (source / rel).read_text(encoding="utf-8")
    if rel.endswith(".ipynb"):
        import json

        for cell in json.loads(text)["cells"]:
            if cell["cell_type"] == "code":
                replace_regions("".join(cell["source"]), rel, keep)
    else:
        replace_regions(text, rel, keep)
    return found


def _fill(text, rel, bodies, edits):
    seen = {}

    def put(region, body):
        index = seen.get(region.name, 0)
        seen[region.name] = index + 1
        new = bodies.get(region.name, [body] * (index + 1))[index]
        edit = edits.get((region.name, index), edits.get(region.name))
        new = edit(list(new)) if callable(edit) else (edit.splitlines() if isinstance(edit, str) else new)
        return [f"### BEGIN SOLUTION {region.name}"] + new + ["### END SOLUTION"]

    return replace_regions(text, rel, put)


def solve(copy, course, edits=None, source=ROOT):
    """Write the teacher's solutions into the student copy ``copy``; ``edits`` {exercise: new body text or
    a function of the body lines} replaces some of them (a wrong or hostile answer)."""
    import json

    edits = edits or {}
    for rel in sorted({ex.path for ex in course.exercises}):
        bodies = teacher_bodies(rel, source)
        path = Path(copy) / rel
        text = path.read_text(encoding="utf-8")
        if rel.endswith(".ipynb"):
            nb = json.loads(text)
            for cell in nb["cells"]:
                if cell["cell_type"] == "code":
                    cell["source"] = _fill("".join(cell["source"]), rel, bodies, edits).splitlines(keepends=True)
            text = json.dumps(nb, indent=1)
        else:
            text = _fill(text, rel, bodies, edits)
        path.write_text(text, encoding="utf-8")


def copy_of(template, dest):
    """A fresh copy of the submission folder ``template``."""
    shutil.copytree(template, dest, symlinks=True)
    return Path(dest)


def replace_in(path, old, new, count=1):
    """Edit a file of a submission: ``old`` must be there."""
    text = Path(path).read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    Path(path).write_text(text.replace(old, new, count), encoding="utf-8")


def body_of(rel, name, index=0):
    """The teacher's body of a region, as text."""
    return "\n".join(teacher_bodies(rel)[name][index])


def sub(pattern, repl, text):
    out, n = re.subn(pattern, repl, text)
    assert n, f"{pattern!r} not found"
    return out
