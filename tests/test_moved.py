"""The layout of 0.3: the old module paths warn and give the new modules; minivq's imports have no cycle.

The import graph is read from the sources with ``ast``: an edge A -> B when
module A imports module B (``from pkg import name`` is an edge to the
submodule ``pkg.name`` when there is one, else to ``pkg``).
"""
import ast
import importlib
import json
import sys
import warnings
from pathlib import Path

import pytest

import minivq
from minivq._moved import MOVED

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "minivq"
TOOLS = ("minivq.cli", "minivq.study", "minivq.report", "minivq.io", "minivq.metrics", "minivq.data", "minivq.course")


def forget(old, monkeypatch):
    """As in a fresh interpreter: no ``sys.modules[old]``, no ``minivq.<old>`` (hasattr would import it)."""
    monkeypatch.delitem(sys.modules, old, raising=False)
    if old.rsplit(".", 1)[1] in vars(minivq):
        monkeypatch.delattr(minivq, old.rsplit(".", 1)[1])


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_warns_and_gives_the_new_module(old, monkeypatch):
    new = importlib.import_module(MOVED[old])
    forget(old, monkeypatch)
    with pytest.warns(DeprecationWarning, match=f"{old} is now {MOVED[old]};"):
        module = importlib.import_module(old)
    assert module is new and sys.modules[old] is new
    name = new.__all__[0]
    assert getattr(module, name) is getattr(new, name)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_path_as_an_attribute_of_the_package_warns(old, monkeypatch):
    attribute = old.rsplit(".", 1)[1]
    forget(old, monkeypatch)
    with pytest.warns(DeprecationWarning, match=f"{old} is now {MOVED[old]};"):
        module = getattr(minivq, attribute)
    assert module is importlib.import_module(MOVED[old])
    with pytest.raises(AttributeError, match="has no attribute 'no_such_module'"):
        minivq.no_such_module


@pytest.mark.parametrize("name, new", [("build_parser", "minivq.cli.parser"), ("load_split", "minivq.cli.demo"),
                                       ("DEMO", "minivq.cli.demo"), ("QUICK", "minivq.cli.demo")])
def test_the_old_names_of_minivq_cli_warn(name, new):
    """minivq/cli.py became the package minivq.cli; what it held is in its modules."""
    import minivq.cli

    with pytest.warns(DeprecationWarning, match=f"minivq.cli.{name} is now {new}.{name};"):
        value = getattr(minivq.cli, name)
    assert value is getattr(importlib.import_module(new), name)


def test_the_new_paths_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for new in MOVED.values():
            importlib.import_module(new)
        from minivq import report
    assert report.write_metrics is importlib.import_module("minivq.report.tables").write_metrics


def test_changes_md_lists_every_move():
    changes = (ROOT / "CHANGES.md").read_text()
    missing = [old for old, new in MOVED.items() if f"| `{old}` | `{new}` |" not in changes]
    assert not missing, f"CHANGES.md, 'Modules moved': add {missing}"


def module_names():
    """Dotted name -> source file of every module of minivq (the compiled ones as None: they import nothing)."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    for pyx in PACKAGE.rglob("*.pyx"):
        names[".".join(pyx.relative_to(ROOT).with_suffix("").parts)] = None
    return names


def imported_modules(tree, name, is_package, modules, deferred):
    """The modules of minivq that an import statement of module ``name`` names, at import time or also later."""
    statements = ast.walk(tree) if deferred else tree.body
    for node in statements:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module
            if node.level:  # relative: from the package of ``name``, node.level - 1 levels up
                package = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
            if base in modules:
                yield from (f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)


def import_graph(deferred, with_parents):
    """Module -> the modules importing it runs; ``with_parents``: the packages above them too (they run first)."""
    modules = module_names()
    graph = {}
    for name, path in modules.items():
        targets = set()
        if path is not None:
            tree = ast.parse(path.read_text(), str(path))
            for target in imported_modules(tree, name, path.name == "__init__.py", modules, deferred):
                parts = target.split(".")
                chain = [".".join(parts[:i]) for i in range(1, len(parts) + 1)] if with_parents else [target]
                # a package that contains this module is already running: importing it again runs nothing
                targets.update(t for t in chain if not (name == t or name.startswith(t + ".")))
        graph[name] = targets
    return graph


def cycles(graph):
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_importing_any_module_of_minivq_meets_no_import_cycle():
    """Module-level imports, with the packages each import runs first (train -> minivq.cli.progress runs
    minivq/cli/__init__.py): no module can find another half-initialized, whichever is imported first."""
    graph = import_graph(deferred=False, with_parents=True)
    assert {"minivq.cli", "minivq.cli.progress"} <= graph["minivq.train"]  # the graph sees the package's __init__
    assert not cycles(graph), cycles(graph)


def test_no_tool_module_is_on_an_import_cycle_even_through_imports_inside_functions():
    """E.g. minivq.study.analysis imports minivq.study.report, which never imports analysis, not even inside a
    function. (The core's deferred imports, e.g. model -> model_check -> model, are the core's business.)"""
    graph = import_graph(deferred=True, with_parents=False)
    assert "minivq.study.report" in graph["minivq.study.analysis"]
    tangled = [c for c in cycles(graph) if any(m == t or m.startswith(t + ".") for m in c for t in TOOLS)]
    assert not tangled, tangled


def repository_imports():
    """(file, imported module) for every import in minivq's sources, tests, benchmarks and notebooks."""
    modules = module_names()
    folders = ("minivq", "tests", "benchmarks")
    sources = [(p, p.read_text()) for folder in folders for p in (ROOT / folder).rglob("*.py")]
    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        sources.append((nb, "\n".join(line for line in code.splitlines() if not line.startswith(("%", "!")))))
    for path, text in sources:
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for target in imported_modules(ast.parse(text), name.removesuffix(".__init__"), path.name == "__init__.py",
                                       {**modules, **dict.fromkeys(MOVED)}, deferred=True):
            yield path.relative_to(ROOT).as_posix(), target


def test_nothing_in_the_repository_imports_an_old_path():
    old = [(f, m) for f, m in repository_imports() if m in MOVED and f not in ("tests/test_moved.py",)]
    assert not old, f"import the new paths (minivq/_moved.py): {old}"
