"""What a solution region may contain, checked before a student's code runs (COURSE.md, "Before it runs").

Each check returns ``None`` or one line: what was refused, and where. Not a security sandbox.
"""
import ast
import io
import textwrap
import tokenize

__all__ = ["check_python", "check_cython", "RegionSyntaxError"]

ALLOWED_IMPORTS = ("numpy", "math", "itertools", "functools", "operator", "minivq")
FORBIDDEN_NAMES = frozenset({
    "open", "exec", "eval", "compile", "__import__", "getattr", "setattr", "delattr", "globals", "locals", "vars",
    "breakpoint", "input", "exit", "quit", "help", "memoryview", "__builtins__", "os", "sys", "subprocess",
    "ctypes", "builtins", "importlib", "pytest", "_pytest", "signal", "shutil", "socket", "threading",
    "multiprocessing", "gc", "inspect", "atexit", "faulthandler", "resource", "pathlib", "io", "tempfile",
})
FORBIDDEN_ATTRIBUTES = frozenset({
    "testing", "ctypeslib", "ctypes", "f2py", "save", "savez", "savez_compressed", "savetxt", "load", "loadtxt",
    "genfromtxt", "fromfile", "tofile", "memmap", "open_memmap", "DataSource", "f_globals", "f_locals", "f_back",
    "f_builtins", "gi_frame", "cr_frame", "ag_frame", "tb_frame", "tb_next", "modules", "system", "popen",
})
CYTHON_FORBIDDEN = frozenset({"import", "cimport", "include", "extern", "DEF", "IF", "ELIF", "ELSE", "gil"})


class RegionSyntaxError(ValueError):
    """A region that does not parse; ``lineno`` counts from the region's first line (1-based)."""

    def __init__(self, msg, lineno):
        super().__init__(msg)
        self.msg, self.lineno = msg, lineno


def _base_name(node):
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _refusal(node, modules):
    """Why ``node`` is refused (a phrase), or None."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        if isinstance(node, ast.ImportFrom) and node.level:
            return None  # from .layers import ...: the library itself
        bad = [n for n in names if n.split(".")[0] not in ALLOWED_IMPORTS]
        if bad:
            return f"imports {bad[0]} (a solution may import only {', '.join(ALLOWED_IMPORTS)})"
    elif isinstance(node, (ast.Global, ast.Nonlocal)):
        return f"declares {type(node).__name__.lower()} {', '.join(node.names)}"
    elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
        return f"uses {node.id}"
    elif isinstance(node, ast.Attribute):
        if node.attr.startswith("__") or node.attr in FORBIDDEN_ATTRIBUTES:
            return f"uses the attribute .{node.attr}"
        if isinstance(node.ctx, (ast.Store, ast.Del)) and _base_name(node) in modules:
            return f"assigns to an attribute of the module {_base_name(node)}"
    elif isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)) \
            and _base_name(node) in modules:
        return f"assigns into the module {_base_name(node)}"
    return None


def check_python(body, modules=("np", "numpy", "math")):
    """``None`` if the region ``body`` (dedented) is acceptable, else why not, with its line; RegionSyntaxError
    if it does not parse as a function body."""
    source = "def _region():\n" + (textwrap.indent(body, "    ") if body.strip() else "    pass\n")
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise RegionSyntaxError(e.msg, max(1, (e.lineno or 2) - 1)) from None
    modules = set(modules)
    for node in ast.walk(tree):  # first every name an import binds, wherever the import is
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules |= {(a.asname or a.name).split(".")[0] for a in node.names}
    for node in ast.walk(tree):
        why = _refusal(node, modules)
        if why:
            return f"line {max(1, getattr(node, 'lineno', 2) - 1)} {why}"
    return None


def check_cython(body):
    """``None`` if the ``.pyx`` region ``body`` (dedented) is acceptable, else why not; RegionSyntaxError for
    unbalanced brackets or an unterminated string."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(body).readline))
    except (tokenize.TokenError, SyntaxError) as e:
        line = e.args[1][0] if isinstance(e, tokenize.TokenError) and len(e.args) > 1 else getattr(e, "lineno", 1)
        raise RegionSyntaxError(str(e.args[0]), line or 1) from None
    previous = None
    for tok in tokens:
        if tok.type == tokenize.NAME:
            if tok.string in CYTHON_FORBIDDEN or tok.string in FORBIDDEN_NAMES:
                return f"line {tok.start[0]} uses {tok.string}"
            if previous == "." and (tok.string.startswith("__") or tok.string in FORBIDDEN_ATTRIBUTES):
                return f"line {tok.start[0]} uses the attribute .{tok.string}"
        if tok.type == tokenize.OP and tok.string == "@":
            return f"line {tok.start[0]} uses a decorator"
        previous = tok.string
    return None
