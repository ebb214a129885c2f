"""What the student copy strips from the files it keeps, so that no answer is in plain sight.

:data:`minivq.course.exercises.REDACTIONS` maps a file to what its student
version loses:

- ``"drop"``: top-level functions removed whole (with their decorators), e.g.
  a test helper that is a full reference implementation, and the tests that
  use it (those are graded on the teacher's side);
- ``"docstrings"``: ``{function: {"lines": {fragment: new line or None},
  "notes": text or None}}``: in that function's docstring, each line holding
  a fragment is replaced (or removed), and the numpydoc ``Notes`` section is
  replaced by ``text`` (or removed). Docstrings keep the forward equation;
  the notebooks derive the backward.

A redaction whose function or fragment is no longer in the source does
nothing (the source changed); ``tests/test_course.py`` checks that the
student copy holds none of the answers all the same.
"""
import ast

__all__ = ["redact", "REDACTIONS"]

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


_NB02, _NB04 = "notebooks/02_layers_and_gradient_checks.ipynb", "notebooks/04_cross_modal_code_matching.ipynb"

#: This repository's redactions (docstrings state the forward; the notebooks derive the backward).
REDACTIONS = {
    # a full VQ-5 loop: the answer of ema_update; the test that uses it is graded on the teacher's side
    "tests/test_quantizer.py": {"drop": ("ema_reference_step",
                                         "test_ema_fifty_masked_steps_two_modalities_against_the_formula")},
    "minivq/layers/dense.py": {"docstrings": {
        "affine_backward": {"lines": {"With X (N, D_in) the rows": f"Derivation: {_NB02}.",
                                      "dW = X^T dY, db = sum_n dY_n.": "``need_dx=False`` (a first layer, whose"}},
        "l2_normalize_backward": {"lines": {"dx = (dout - [||x|| > eps]": "Gradient of :func:`l2_normalize_forward` "
                                                                          "with respect to x (SUM-3).",
                                            "With y = x / n, n = ||x||": "Below eps the forward divides by the "
                                                                         f"constant eps. Derivation: {_NB02}.",
                                            "component of dout along y.": None}}}},
    "minivq/layers/sequence.py": {"docstrings": {
        "masked_mean_backward": {"lines": {"dH[b, t] = w_bt dout[b]": "Gradient of :func:`masked_mean_forward` "
                                                                      "with respect to H (B, T, D)."}}}},
    "minivq/layers/conv.py": {"docstrings": {"conv1d_backward": {"notes": f"Derivation: {_NB02}."}}},
    "minivq/quantizer.py": {"docstrings": {
        "quantize_backward": {"lines": {"Straight-through estimator (VQ-2): dH = dQ.":
                                        "Straight-through estimator (VQ-2): the gradient of q = h + sg(q - h).",
                                        "A copy of dQ": "A new array (no gradient reaches E through the argmin)."}},
        "commitment_loss": {"lines": {"2 beta/(N D) M (h - q)": "The gradient of L with respect to H; zero on "
                                                                "padded units."}},
        "codebook_loss": {"lines": {"dE_k = 2/(N D) sum_": "The gradient of L with respect to E."}}}},
    "minivq/contrastive.py": {"docstrings": {
        "info_nce_backward": {"lines": {"dloss / (2B) [(softmax_rows(Z) - I)": "The gradient of the loss with "
                                                                               "respect to S."},
                              "notes": f"The margin shifts the diagonal by a constant. Derivation: {_NB04}."}}},
    "minivq/matching.py": {"docstrings": {
        "code_distribution_backward": {"notes": f"Derivation: {_NB04}."},
        "code_similarity_backward": {"lines": {"dS L_b + (dS P_b) / (P_a + eps).": "The gradient with respect to P_a.",
                                               "dS^T L_a + (dS^T P_a) / (P_b + eps).": "The gradient with respect to "
                                                                                       "P_b."},
                                     "notes": f"Derivation: {_NB04}."}}},
}
