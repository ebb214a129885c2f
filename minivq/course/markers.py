"""Solution regions (``### BEGIN SOLUTION <name>`` ... ``### END SOLUTION``, nbgrader's convention),
inline-question answers (``### BEGIN ANSWER`` ... ``### END ANSWER``), and what replaces them."""
import re
from dataclasses import dataclass

__all__ = ["MarkerError", "Region", "find_regions", "replace_regions", "stub_lines", "find_answers",
           "replace_answers", "ANSWER_PLACEHOLDER", "cell_source"]

_BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION\b(?P<rest>.*)$")
_END = re.compile(r"^[ \t]*### END SOLUTION\b")
_BEGIN_ANSWER = re.compile(r"^[ \t]*### BEGIN ANSWER\b")
_END_ANSWER = re.compile(r"^[ \t]*### END ANSWER\b")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

#: What a student sees where an inline question's answer was.
ANSWER_PLACEHOLDER = "*Your answer here.*"


class MarkerError(ValueError):
    """A malformed solution or answer region; the message names the file and the line."""


@dataclass(frozen=True)
class Region:
    """One solution region: its exercise, the 0-based lines of its markers, the indentation of BEGIN."""

    name: str
    begin: int
    end: int
    indent: str


def find_regions(text, where, *, require_indent=False):
    """The solution regions of ``text``, in order; MarkerError naming ``where`` and the line for a nested,
    unclosed, unnamed or (``require_indent``: library files) module-level region, or a lone END."""
    regions, open_at, name, indent = [], None, None, ""
    for i, line in enumerate(text.splitlines()):
        begin = _BEGIN.match(line)
        if begin:
            if open_at is not None:
                raise MarkerError(f"{where}:{i + 1}: BEGIN SOLUTION inside the region opened at line {open_at + 1}")
            name, indent = begin.group("rest").strip(), begin.group("indent")
            if not _NAME.match(name):
                raise MarkerError(f"{where}:{i + 1}: BEGIN SOLUTION must name its exercise in snake_case, e.g. "
                                  f"'### BEGIN SOLUTION ema_update', got {line.strip()!r}")
            if require_indent and not indent:
                raise MarkerError(f"{where}:{i + 1}: the region of {name!r} is at module level; put it inside a "
                                  "function body, after the argument checks, so the module imports without it")
            open_at = i
        elif _END.match(line):
            if open_at is None:
                raise MarkerError(f"{where}:{i + 1}: END SOLUTION without a BEGIN SOLUTION before it")
            regions.append(Region(name, open_at, i, indent))
            open_at = None
    if open_at is not None:
        raise MarkerError(f"{where}:{open_at + 1}: the region of {name!r} is never closed (no END SOLUTION)")
    return regions


def replace_regions(text, where, replacement, *, require_indent=False):
    """``text`` with every region replaced by ``replacement(region, body)``: the lines (markers included)
    that take its place, indented like it; ``body`` is the region's dedented code without the markers."""
    lines = text.splitlines()
    out, last = [], 0
    for region in find_regions(text, where, require_indent=require_indent):
        indent = region.indent
        body = [line[len(indent):] if line.startswith(indent) else line.lstrip(" \t")
                for line in lines[region.begin + 1:region.end]]
        out += lines[last:region.begin] + [indent + line if line.strip() else "" for line in replacement(region, body)]
        last = region.end + 1
    out += lines[last:]
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def stub_lines(name, method_ids, instruction):
    """The stub of an implementation exercise: a comment and a raise that names it."""
    message = f"exercise {name}: {instruction}"
    return [f"# YOUR CODE HERE: exercise {name} (METHOD.md {', '.join(method_ids)}); only the code between "
            "the marker lines is graded",
            f"raise NotImplementedError({message!r})"]


def cell_source(cell):
    """A notebook cell's source as one string."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def find_answers(text, where):
    """(begin, end) line pairs of the ANSWER regions of a markdown text; MarkerError if malformed."""
    pairs, open_at = [], None
    for i, line in enumerate(text.splitlines()):
        if _BEGIN_ANSWER.match(line):
            if open_at is not None:
                raise MarkerError(f"{where}:{i + 1}: BEGIN ANSWER inside the answer opened at line {open_at + 1}")
            open_at = i
        elif _END_ANSWER.match(line):
            if open_at is None:
                raise MarkerError(f"{where}:{i + 1}: END ANSWER without a BEGIN ANSWER before it")
            pairs.append((open_at, i))
            open_at = None
    if open_at is not None:
        raise MarkerError(f"{where}:{open_at + 1}: the answer is never closed (no END ANSWER)")
    return pairs


def replace_answers(text, where):
    """A markdown text with every answer region replaced by :data:`ANSWER_PLACEHOLDER`."""
    lines, out, last = text.splitlines(), [], 0
    for begin, end in find_answers(text, where):
        out += lines[last:begin] + [ANSWER_PLACEHOLDER]
        last = end + 1
    out += lines[last:]
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")
