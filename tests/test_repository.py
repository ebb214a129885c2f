"""The repository's own promises: the spec copy is current, the README's commands are marked."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["METHOD.md", "STYLE.md"])
def test_copies_match_the_shared_documents(name):
    """METHOD.md (the spec) and STYLE.md (the house style the sources cite) are copies of ../shared/."""
    shared = ROOT.parent / "shared" / name
    if not shared.is_file():
        pytest.skip(f"no ../shared/{name} beside this checkout")
    assert (ROOT / name).read_text() == shared.read_text(), (
        f"{name} is out of date: copy ../shared/{name} over it"
    )


@pytest.mark.parametrize("marker", ["run-command", "test-command"])
def test_readme_marks_the_two_commands_ci_runs(marker):
    text = (ROOT / "README.md").read_text()
    block = text.split(f"<!-- {marker} -->")[1].split(f"<!-- /{marker} -->")[0]
    lines = [l for l in block.strip().splitlines() if not l.startswith("```")]
    assert len(lines) == 1 and lines[0].startswith("pip install"), f"{marker}: {lines}"


def _signed(x, digits):
    return f"{x:+.{digits}f}"


def test_readme_quotes_the_committed_study():
    """The claims table of the README is study/study.json's primary endpoints, digit for digit."""
    import json
    study = json.loads((ROOT / "study" / "study.json").read_text())
    readme = (ROOT / "README.md").read_text()
    rows = {int(line.split("|")[1].strip()[0]): line for line in readme.splitlines()
            if line.startswith("| 1. ") or line.startswith("| 2. ") or line.startswith("| 3. ")}
    for i, (name, r) in enumerate(study["results"]["primary"].items(), start=1):
        digits = 1 if name == "claim2_shared_codes" else 3
        lo, hi = r["ci95"]
        cell = f"{_signed(r['mean_difference'], digits)} [{_signed(lo, digits)}, {_signed(hi, digits)}]"
        row = rows[i]
        assert cell in row, f"README claim {i}: expected {cell} from study/study.json in {row!r}"
        assert f"{r['n_positive']}/{r['n_negative']}" in row and f"**{r['verdict']}**" in row, row
        assert f"{r['mean_method']:.{digits}f}" in row and f"{r['mean_baseline']:.{digits}f}" in row, row


def test_readme_quotes_the_free_position_study():
    """study/README.md's table of the 8000-scene free-position arm is study/free_window_8000's, digit for digit."""
    import json
    study = json.loads((ROOT / "study" / "free_window_8000" / "study.json").read_text())
    readme = (ROOT / "study" / "README.md").read_text()
    rows = {int(line.split("|")[1].split()[1][0]): line for line in readme.splitlines() if line.startswith("| free ")}
    assert sorted(rows) == [1, 2, 3], rows
    longer = json.loads((ROOT / "study" / "free_window_8000_e100" / "study.json").read_text())
    for i, name in enumerate(("claim1_retrieval", "claim2_shared_codes", "claim3_localization"), start=1):
        digits = 1 if i == 2 else 3
        r = study["results"]["secondary"][f"image_speech_free_window_{name}"]
        lo, hi = r["ci95"]
        cell = f"{_signed(r['mean_difference'], digits)} [{_signed(lo, digits)}, {_signed(hi, digits)}]"
        assert cell in rows[i], f"README free claim {i}: expected {cell} in {rows[i]!r}"
        assert f"{r['mean_method']:.{digits}f}" in rows[i] and f"{r['mean_baseline']:.{digits}f}" in rows[i], rows[i]
        assert r["n_positive"] == 3, r  # the README says: positive on every seed
        r = longer["results"]["secondary"][f"image_speech_free_window_{name}"]  # the 100-epoch column
        lo, hi = r["ci95"]
        cell = (f"{r['mean_method']:.{digits}f}, {r['mean_baseline']:.{digits}f}, "
                f"{_signed(r['mean_difference'], digits)} [{_signed(lo, digits)}, {_signed(hi, digits)}]")
        assert cell in rows[i], f"README free claim {i}, 100 epochs: expected {cell} in {rows[i]!r}"
        assert r["n_positive"] == 3, r


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")
                                          if p.name != "torch_twin.py"))
def test_every_benchmark_script_starts_and_explains_itself(script):
    """`--help` of each script in benchmarks/: it imports (torch only where it is optional) and parses."""
    import subprocess
    import sys
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--help"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout and "--" in done.stdout


def _equation_table_functions():
    """(ID, dotted name) of every function named in the README's equation table."""
    import re
    rows = [line for line in (ROOT / "README.md").read_text().splitlines()
            if line.startswith("| ") and "`minivq." in line.split("|")[2]]
    out = []
    for row in rows:
        eq_id, cell = row.split("|")[1].strip(), row.split("|")[2]
        module = None
        for name in re.findall(r"`([\w.]+)`", cell):
            if name.startswith("minivq."):
                module, _, attr = name.rpartition(".")
            else:  # a bare name continues the module of the previous one
                attr = name
            out.append((eq_id, module, attr))
    return out


def test_every_equation_of_the_readme_table_starts_within_30_lines_of_its_def():
    """A reader who opens the function the equation table names meets the equation's code within 30 lines."""
    import ast
    import importlib
    import inspect
    import textwrap

    for eq_id, module, attr in _equation_table_functions():
        try:
            obj = getattr(importlib.import_module(module), attr)
        except ImportError:  # a module attribute named as a dotted path: minivq.metrics.claims.localize
            parent, _, mod_attr = module.rpartition(".")
            obj = getattr(getattr(importlib.import_module(parent), mod_attr), attr)
        func = inspect.unwrap(obj)
        if inspect.isclass(func) or not inspect.isfunction(func):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
        body = tree.body[0].body
        first = body[1] if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) else body[0]
        offset = first.lineno - tree.body[0].lineno
        assert offset <= 30, f"{eq_id}: {module}.{attr} reaches its first line of code {offset} lines after its def"
