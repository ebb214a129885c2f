"""Every notebook in notebooks/ runs top to bottom and shows its figures (STYLE.md: notebooks run in CI).

Outputs are not committed; nbclient executes each notebook in a fresh kernel
with the working directory set to notebooks/, and any exception in a cell
fails the test with that cell's traceback. The kernel runs without
``MPLBACKEND`` (conftest.py sets Agg for the other tests), so matplotlib
uses Jupyter's inline backend, as a student's kernel does; the test counts
the images the notebook displays and fails below the number its prose
describes.
"""
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="install the test extras: pip install -e '.[test]'")
nbclient = pytest.importorskip("nbclient", reason="install the test extras: pip install -e '.[test]'")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))

#: Images each notebook's prose describes (display_data or execute_result with image/png).
MIN_IMAGES = {
    "00_data": 6,  # three scenes, the mel filters, "seven" by six takes, the toy pairs
    "01_nearest_codeword": 2,  # the nearest codeword of 2-D points, time against the GEMM
    "02_layers_and_gradient_checks": 0,  # numbers only
    "03_vector_quantization": 5,  # Voronoi cells, the beta mistake, EMA paths, a dead code, usage
    "04_cross_modal_code_matching": 4,  # P of two pairs, S^code, CMCM at work, S beside S^code
    "05_training_toy": 3,  # agreement per epoch, code x concept, the VQ-only ablation beside it
    "06_spoken_digits": 3,  # localization, code x digit, retrieval examples
    "07_choices": 0,  # tables of the unit_norm and tau_c experiments
}


def image_outputs(nb):
    """Number of outputs that display a PNG."""
    return sum(1 for cell in nb.cells for out in cell.get("outputs", [])
               if out.get("output_type") in ("display_data", "execute_result") and "image/png" in out.get("data", {}))


def test_notebooks_exist_and_have_expectations():
    assert NOTEBOOKS, "expected notebooks/*.ipynb, found none"
    assert sorted(p.stem for p in NOTEBOOKS) == sorted(MIN_IMAGES), "MIN_IMAGES must list every notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_and_shows_its_figures(path, monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel inherits the environment: inline backend
    # as a reader runs them: notebook 01 times the compiled kernels, and says they are missing under NumPy only
    monkeypatch.delenv("MINIVQ_PUREPYTHON", raising=False)
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs"), f"{path.name}: outputs are committed; strip them"
    client = nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()
    shown, expected = image_outputs(nb), MIN_IMAGES[path.stem]
    assert shown >= expected, f"{path.name} shows {shown} images, expected at least {expected}"


def test_notebook_01_goes_on_without_cython(monkeypatch, capsys):
    """After a plain `pip install .` Cython is not installed (it only builds the kernels): notebook 01's
    `cython -a` cell stopped with a CalledProcessError; it says in one line how to get Cython and goes on."""
    import importlib.util
    import json
    import re
    import subprocess
    import sys
    import tempfile

    import minivq
    cells = json.loads((NOTEBOOKS[0].parent / "01_nearest_codeword.ipynb").read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if c["cell_type"] == "code" and '"cython", "-3", "-a"'
                  in "".join(c["source"]))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name.lower() == "cython" else real(name, *a, **k))
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("ran cython, which is not installed"))
    namespace = {"Path": Path, "re": re, "sys": sys, "tempfile": tempfile, "subprocess": subprocess,
                 "src_dir": Path(minivq.__file__).parent}
    exec(compile(source, "notebook 01, the cython -a cell", "exec"), namespace)
    assert capsys.readouterr().out.strip().splitlines() == [
        'Cython is not installed here, so `cython -a` cannot annotate the kernels: pip install "minivq[notebooks]" '
        "(or pip install cython) and rerun this cell to see it"]
