"""What the student copy strips from the files it keeps (the rules: ``hidden/redactions.py``).

``"drop"``: top-level functions removed whole; ``"docstrings"``: ``{function: {"lines": {fragment: new line
or None}, "notes": text or None}}`` replaces lines of a docstring and its Notes section. A rule that no
longer matches does nothing.
"""
import ast

__all__ = ["redact"]

_SECTIONS = ("Parameters", "Returns", "Raises", "Notes", "Examples", "See Also", "Yields", "Attributes", "References")


def _functions(tree):
    return {node.name: node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def _drop(lines, tree, names):
    spans = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in names:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            spans.append((first, node.end_lineno))
    for first, last in sorted(spans, reverse=True):
        while last < len(lines) and not lines[last].strip():  # and the blank lines after it
            last += 1
        del lines[first:last]


def _notes_span(doc_lines):
    """(first, end) of the Notes section among the docstring's lines, or None."""
    for i, line in enumerate(doc_lines[:-1]):
        if line.strip() == "Notes" and set(doc_lines[i + 1].strip()) == {"-"}:
            end = i + 2
            while end < len(doc_lines) and not (doc_lines[end].strip() in _SECTIONS and end + 1 < len(doc_lines)
                                                and set(doc_lines[end + 1].strip()) == {"-"}):
                if doc_lines[end].strip().endswith(('"""', "'''")) and doc_lines[end].strip() not in ('"""', "'''"):
                    break
                end += 1
            while end > i + 2 and doc_lines[end - 1].strip() in ('"""', "'''", ""):
                end -= 1
            return i, end
    return None


def _docstring(lines, node, rules):
    body = node.body[0] if node.body else None
    if not (isinstance(body, ast.Expr) and isinstance(getattr(body, "value", None), ast.Constant)
            and isinstance(body.value.value, str)):
        return
    first, last = body.lineno - 1, body.end_lineno
    doc = lines[first:last]
    for fragment, new in rules.get("lines", {}).items():
        for i, line in enumerate(doc):
            if fragment in line:
                if new is None:
                    doc[i] = None
                else:
                    indent = line[:len(line) - len(line.lstrip())]
                    prefix = '"""' if line.lstrip().startswith('"""') else ""
                    suffix = '"""' if line.rstrip().endswith('"""') and (prefix == "" or line.count('"""') > 1) else ""
                    doc[i] = indent + prefix + new + suffix
    doc = [line for line in doc if line is not None]
    if "notes" in rules:
        span = _notes_span(doc)
        if span is not None:
            indent = doc[span[0]][:len(doc[span[0]]) - len(doc[span[0]].lstrip())]
            new = [] if rules["notes"] is None else [indent + "Notes", indent + "-----", indent + rules["notes"]]
            doc[span[0]:span[1]] = new
    lines[first:last] = doc


def redact(text, rel, rules):
    """``text`` of the file ``rel`` with ``rules`` (one entry of the redactions) applied."""
    lines = text.splitlines()
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    functions = _functions(tree)
    for name in sorted(rules.get("docstrings", {}), key=lambda n: -functions[n].lineno if n in functions else 0):
        if name in functions:
            _docstring(lines, functions[name], rules["docstrings"][name])
    if rules.get("drop"):
        _drop(lines, ast.parse("\n".join(lines) + "\n"), set(rules["drop"]))
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")

