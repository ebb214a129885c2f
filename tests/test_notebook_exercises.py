"""Exercises written in notebook cells (nbgrader's convention), graded like the library's.

A notebook code cell that holds a solution region defines a function; these
tests run that cell alone (with numpy as ``np``), as the notebook runs it, and
check the function it defines. In a student copy the function raises
``NotImplementedError("exercise <name>: ...")`` until the student writes it.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from minivq import layers
from minivq.gradcheck import check_backward

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def defined_in(notebook, name):
    """The function ``name`` that a code cell of ``notebook`` defines, the cell run on its own."""
    cells = json.loads((NOTEBOOKS / notebook).read_text(encoding="utf-8"))["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    matching = [s for s in sources if f"def {name}(" in s]
    assert len(matching) == 1, f"{notebook} must define {name} in exactly one code cell, found {len(matching)}"
    namespace = {"np": np}
    exec(compile(matching[0], f"{notebook}, the cell defining {name}", "exec"), namespace)
    return namespace[name]


@pytest.mark.parametrize("shape, p", [((1, 1, 1), 1), ((1, 2, 2), 2), ((2, 4, 6), 2), ((3, 6, 9), 3)])
def test_unpatchify_is_the_backward_of_patchify(shape, p):
    """(ENC) patchify permutes the pixels; its backward puts every gradient entry back on its pixel."""
    unpatchify = defined_in("02_layers_and_gradient_checks.ipynb", "unpatchify")
    x = np.arange(np.prod(shape), dtype=float).reshape(shape)
    np.testing.assert_array_equal(unpatchify(layers.patchify(x, p)[0], shape, p), x)
    draw = lambda rng: {"x": rng.standard_normal(shape)}  # noqa: E731
    errors = check_backward(lambda x: (layers.patchify(x, p)[0], x.shape), lambda d, s: unpatchify(d, s, p),
                            draw, rng=0)
    assert errors["x"] < 1e-7, f"dx rel_error {errors['x']:.1e}, expect < 1e-7"
