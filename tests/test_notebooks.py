"""Every notebook in notebooks/ runs top to bottom (STYLE.md: notebooks run in CI).

Outputs are not committed; nbclient executes each notebook in a fresh kernel
with the working directory set to notebooks/, and any exception in a cell
fails the test with that cell's traceback.
"""
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="install the test extras: pip install -e '.[test]'")
nbclient = pytest.importorskip("nbclient", reason="install the test extras: pip install -e '.[test]'")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def test_notebooks_exist():
    assert NOTEBOOKS, "expected notebooks/*.ipynb, found none"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs"), f"{path.name}: outputs are committed; strip them"
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
