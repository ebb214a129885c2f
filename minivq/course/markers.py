"""Solution regions in the sources, nbgrader's convention, and what replaces them.

A solution region is a block of code between two comment lines::

    <indent>### BEGIN SOLUTION <exercise name>
    <indent>...the solution, which runs as usual in the instructor version...
    <indent>### END SOLUTION

in a ``.py`` or ``.pyx`` file or a notebook code cell. The name after the
marker ties the region to an exercise of :mod:`minivq.course.exercises`
(nbgrader tolerates it: it only looks for "BEGIN SOLUTION" in the line). In
library files a region is always inside a function body (indented), after
the argument checks, so that a stub still validates its arguments and the
module still imports. In notebook markdown cells, an answer to an inline
question sits between ``### BEGIN ANSWER`` and ``### END ANSWER`` lines.

The student copy replaces the code of each handed-out region, at the
indentation of its BEGIN line and between the same marker lines, by
:func:`stub_lines` (an implementation exercise) or by the exercise's buggy
variant (a spot-the-bug exercise), and each answer by
:data:`ANSWER_PLACEHOLDER`; the teacher's grading takes the student's code
from between the markers (:mod:`minivq.course.splice`). Nested, unclosed or unnamed regions are errors
that name the file and line.
"""
import re
from dataclasses import dataclass

__all__ = ["MarkerError", "Region", "find_regions", "replace_regions", "stub_lines", "find_answers",
           "replace_answers", "ANSWER_PLACEHOLDER", "has_markers"]

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
    """One solution region of a text.

    Attributes
    ----------
    name : str
        The exercise it belongs to.
    begin, end : int
        0-based line numbers of the BEGIN and END marker lines.
    indent : str
        Leading whitespace of the BEGIN line; the replacement gets it.
    """

    name: str
    begin: int
    end: int
    indent: str


def has_markers(text):
    """True when any line of ``text`` is a BEGIN/END SOLUTION or ANSWER marker."""
    return any(_BEGIN.match(line) or _END.match(line) or _BEGIN_ANSWER.match(line) or _END_ANSWER.match(line)
               for line in text.splitlines())


def find_regions(text, where, *, require_indent=False):
    """The solution regions of ``text``, in order.

    Parameters
    ----------
    text : str
        Source code (a file or a notebook cell).
    where : str
        How to name the text in errors, e.g. ``"minivq/ema.py"``.
    require_indent : bool
        Refuse regions at module level (library files: a region must sit in
        a function body so that the module imports without it).

    Returns
    -------
    list of Region

    Raises
    ------
    MarkerError
        For a nested, unclosed, unnamed or (with ``require_indent``)
        unindented region, or an END without a BEGIN.
    """
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


def _dedent(line, indent):
    return line[len(indent):] if line.startswith(indent) else line.lstrip(" \t")


def _indent_block(lines, indent):
    return [indent + line if line.strip() else "" for line in lines]


def replace_regions(text, where, replacement, *, require_indent=False):
    """``text`` with every solution region replaced.

    Parameters
    ----------
    text : str
    where : str
        For errors.
    replacement : callable
        ``replacement(region, body) -> list of str``: the lines that take
        the region's place, markers included, each indented by the region's
        indentation. ``body`` is the region's code without the marker lines,
        with that indentation removed (return it to keep the solution).
    require_indent : bool
        See :func:`find_regions`.

    Returns
    -------
    str
        The new text (the final newline kept as it was).
    """
    lines = text.splitlines()
    out, last = [], 0
    for region in find_regions(text, where, require_indent=require_indent):
        body = [_dedent(line, region.indent) for line in lines[region.begin + 1:region.end]]
        out += lines[last:region.begin] + _indent_block(replacement(region, body), region.indent)
        last = region.end + 1
    out += lines[last:]
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def stub_lines(name, method_ids, instruction):
    """The stub of an implementation exercise: a comment and the raise.

    Parameters
    ----------
    name : str
        Exercise name (the error names it, so a failing test says which one).
    method_ids : sequence of str
        METHOD.md equation IDs, for the comment.
    instruction : str
        One line: what to compute.

    Returns
    -------
    list of str
    """
    message = f"exercise {name}: {instruction}"
    return [f"# YOUR CODE HERE: exercise {name} (METHOD.md {', '.join(method_ids)}); only the code between "
            "the marker lines is graded",
            f"raise NotImplementedError({message!r})"]


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
