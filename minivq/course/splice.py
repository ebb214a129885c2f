"""The student's solution regions, read from a submission (never imported) and checked alone
(:mod:`.lint`), then spliced into the teacher's source."""
import ast
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .lint import RegionSyntaxError, check_cython, check_python
from .markers import MarkerError, cell_source, find_regions

__all__ = ["Regions", "read_regions", "spliced_text", "module_names", "MAX_BYTES"]

MAX_BYTES = 4 << 20


@dataclass
class Regions:
    """What a submission holds for one exercise: ``bodies`` (dedented lines, one list per region, and
    the submission line of each body's first line), or ``status`` and ``reason`` why it cannot be graded."""

    name: str
    bodies: list = field(default_factory=list)
    lines: list = field(default_factory=list)
    status: str = "ok"
    reason: str = ""


def _read_text(root, rel):
    """The text of ``root/rel``, or (None, why not): a regular file inside the submission, small, UTF-8."""
    path = root / rel
    try:
        real = Path(os.path.realpath(path))
        info = os.lstat(path)
    except OSError:
        return None, f"{rel} is missing from the submission"
    if root not in real.parents:
        return None, f"{rel} points outside the submission"
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        return None, f"{rel} is not a regular file"
    if info.st_size > MAX_BYTES:
        return None, f"{rel} is larger than {MAX_BYTES >> 20} MB"
    try:
        with open(path, "rb") as f:
            return f.read(MAX_BYTES + 1).decode("utf-8"), None
    except UnicodeDecodeError as e:
        return None, f"{rel} is not UTF-8 text (byte {e.start})"
    except OSError as e:
        return None, f"{rel} cannot be read ({e.strerror})"


def _texts(text, rel):
    """[(where, text)] of a file: itself, or a notebook's code cells."""
    if not rel.endswith(".ipynb"):
        return [(rel, text)]
    return [(f"{rel} cell {i}", cell_source(cell)) for i, cell in enumerate(json.loads(text).get("cells", []))
            if isinstance(cell, dict) and cell.get("cell_type") == "code"]


def module_names(text, function_line):
    """Names a region in ``text`` may not assign into: the module's globals minus the locals of the
    function around line ``function_line`` (0-based) of a ``.py`` text."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {"np", "numpy", "math"}
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.lineno - 1 <= function_line <= (node.end_lineno or 0) - 1:
            args = node.args
            names -= {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
            names -= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return names | {"np", "numpy", "math"}


def _check_body(ex_path, where, body, first_line, protected):
    """None, or (status, reason) for one region's body."""
    text = "\n".join(body) + "\n"
    try:
        why = check_cython(text) if ex_path.endswith(".pyx") else check_python(text, protected)
    except RegionSyntaxError as e:
        return "syntax_error", f"syntax error at {where}:{first_line + e.lineno}: {e.msg}"
    if why:
        line, _, rest = why.partition(" ")[2].partition(" ")
        return "refused", f"refused: {where}:{first_line + int(line)} {rest}"
    return None


def read_regions(root, exercises, protected_for=None):
    """{exercise name: :class:`Regions`} of the submission at ``root``; ``protected_for(ex, region_index)``:
    the names a region may not assign into (default: numpy and math)."""
    root = Path(os.path.realpath(root))
    found = {}
    by_file = {}
    for ex in exercises:
        by_file.setdefault(ex.path, []).append(ex)
    for rel, group in by_file.items():
        text, why = _read_text(root, rel)
        regions = {}
        if text is not None:
            try:
                for where, part in _texts(text, rel):
                    lines = part.splitlines()
                    for region in find_regions(part, where):
                        body_lines = lines[region.begin + 1:region.end]
                        regions.setdefault(region.name, []).append((where, region, body_lines))
            except (MarkerError, ValueError, AttributeError, TypeError) as e:
                why = f"{rel}: {e}" if isinstance(e, MarkerError) else f"{rel} is not a notebook ({e})"
        for ex in group:
            if why:
                found[ex.name] = Regions(ex.name, status="missing" if "missing" in why else "unreadable",
                                         reason=why)
                continue
            mine = regions.get(ex.name, [])
            if not mine:
                found[ex.name] = Regions(ex.name, status="missing", reason=f"no solution region of {ex.name} in "
                                         f"{rel} (its '### BEGIN SOLUTION {ex.name}' and '### END SOLUTION' lines)")
                continue
            entry = Regions(ex.name)
            for i, (where, region, body_lines) in enumerate(mine):
                outside = [j for j, line in enumerate(body_lines)
                           if line.strip() and not line.startswith(region.indent)]
                if outside:
                    entry.status, entry.reason = "refused", (f"refused: {where}:{region.begin + 2 + outside[0]} is "
                                                             "outside the function body (indented less than its "
                                                             "BEGIN SOLUTION line)")
                    break
                body = [line[len(region.indent):] if line.strip() else "" for line in body_lines]
                protected = protected_for(ex, i) if protected_for else {"np", "numpy", "math"}
                problem = _check_body(ex.path, where, body, region.begin + 1, protected)
                if problem:
                    entry.status, entry.reason = problem
                    break
                entry.bodies.append(body)
                entry.lines.append(region.begin + 2)
            found[ex.name] = entry
    return found


def spliced_text(text, rel, bodies):
    """The teacher's file ``text`` with the regions of the exercises in ``bodies`` ({name: [body, ...]})
    replaced by those bodies, every other region keeping the teacher's solution; markers dropped.

    Returns (new text, line map [(first line, last line, exercise, region index)] of the spliced
    bodies in the new text, 1-based) for a ``.py``/``.pyx`` file; a notebook's JSON for an ``.ipynb``.
    """
    if rel.endswith(".ipynb"):
        nb = json.loads(text)
        for cell in nb.get("cells", []):
            if cell.get("cell_type") == "code":
                new, _ = _splice(cell_source(cell), rel, bodies)
                cell["source"] = new.splitlines(keepends=True)
        return json.dumps(nb, indent=1), []
    return _splice(text, rel, bodies)


def _splice(text, where, bodies):
    lines = text.splitlines()
    out, last, seen, line_map = [], 0, {}, []
    for region in find_regions(text, where):
        index = seen.get(region.name, 0)
        seen[region.name] = index + 1
        out += lines[last:region.begin]
        if region.name in bodies and index < len(bodies[region.name]):
            body = [region.indent + line if line.strip() else "" for line in bodies[region.name][index]]
            line_map.append((len(out) + 1, len(out) + max(1, len(body)), region.name, index))
            out += body or [region.indent + "pass"]
        else:
            out += lines[region.begin + 1:region.end]
        last = region.end + 1
    out += lines[last:]
    return "\n".join(out) + ("\n" if text.endswith("\n") else ""), line_map
