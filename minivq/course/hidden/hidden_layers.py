"""Hidden checks of the layers' backward passes at shapes drawn at grading time (float64, threshold 1e-7)."""
import json
from pathlib import Path

import numpy as np
from _draw import integer, mask, ok, setup

from minivq.gradcheck import check_backward
from minivq.layers import (affine_backward, affine_forward, conv1d_backward, conv1d_forward, l2_normalize_backward,
                           l2_normalize_forward, masked_mean_backward, masked_mean_forward, patchify)

def test_affine_backward_at_fresh_shapes(request):
    rng, note = setup(request)
    for _ in range(3):
        lead = tuple(integer(rng, 1, 4) for _ in range(integer(rng, 0, 3)))
        D_in, D_out = integer(rng, 1, 6), integer(rng, 1, 6)
        note(x=lead + (D_in,), D_out=D_out)
        draw = lambda r: {"x": r.standard_normal(lead + (D_in,)), "W": r.standard_normal((D_in, D_out)),  # noqa
                          "b": r.standard_normal(D_out)}
        ok(check_backward(affine_forward, affine_backward, draw, rng=rng), f"x {lead + (D_in,)}, D_out {D_out}")
        first = lambda dout, cache: affine_backward(dout, cache, need_dx=False)[1:]  # noqa: E731
        ok(check_backward(affine_forward, first, draw, wrt=["W", "b"], rng=rng), "need_dx=False")


def test_masked_mean_backward_at_fresh_shapes(request):
    rng, note = setup(request)
    for _ in range(3):
        B, T, D = integer(rng, 1, 5), integer(rng, 1, 8), integer(rng, 1, 5)
        note(B=B, T=T, D=D)
        draw = lambda r: {"H": r.standard_normal((B, T, D)), "M": mask(r, B, T)}  # noqa: E731
        ok(check_backward(masked_mean_forward, masked_mean_backward, draw, wrt=["H"], rng=rng), f"{(B, T, D)}")


def test_l2_normalize_backward_at_fresh_shapes_and_below_eps(request):
    rng, note = setup(request)
    for _ in range(3):
        shape = tuple(integer(rng, 1, 4) for _ in range(integer(rng, 1, 3))) + (integer(rng, 1, 6),)
        eps = float(rng.choice([1e-12, 0.5]))
        note(shape=shape, eps=eps)

        def draw(r, shape=shape, eps=eps):
            x = r.standard_normal(shape)
            if eps > 1e-6:  # some rows below eps, some above
                small = r.random(shape[:-1]) < 0.5
                x[small] *= 0.2 * eps / np.maximum(np.linalg.norm(x[small], axis=-1, keepdims=True), 1e-300)
            return {"x": x, "eps": eps}

        kinks = lambda x, eps: np.linalg.norm(x, axis=-1) > eps  # noqa: E731
        ok(check_backward(l2_normalize_forward, l2_normalize_backward, draw, kinks=kinks, rng=rng),
            f"shape {shape}, eps {eps}")


def test_conv1d_backward_at_fresh_shapes(request):
    rng, note = setup(request)
    for _ in range(4):
        k = integer(rng, 1, 4)
        stride, padding = integer(rng, 1, 3), integer(rng, 0, k - 1)
        B, T, C_in, C_out = integer(rng, 1, 3), integer(rng, max(1, k - 2 * padding), 11), integer(rng, 1, 3), \
            integer(rng, 1, 3)
        note(B=B, T=T, C_in=C_in, C_out=C_out, k=k, stride=stride, padding=padding)
        draw = lambda r: {"x": r.standard_normal((B, T, C_in)), "W": r.standard_normal((k, C_in, C_out)),  # noqa
                          "b": r.standard_normal(C_out), "stride": stride, "padding": padding}
        what = f"B={B} T={T} C_in={C_in} C_out={C_out} k={k} stride={stride} padding={padding}"
        ok(check_backward(conv1d_forward, conv1d_backward, draw, rng=rng), what)


def _unpatchify():
    path = Path(__file__).resolve().parent.parent / "notebooks" / "02_layers_and_gradient_checks.ipynb"
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    source = ["".join(c["source"]) for c in cells
              if c["cell_type"] == "code" and "def unpatchify(" in "".join(c["source"])]
    namespace = {"np": np}
    exec(compile(source[0], "the notebook cell defining unpatchify", "exec"), namespace)
    return namespace["unpatchify"]


def test_patchify_backward_at_fresh_shapes(request):
    rng, note = setup(request)
    unpatchify = _unpatchify()
    for _ in range(3):
        p = integer(rng, 1, 4)
        shape = (integer(rng, 1, 3), p * integer(rng, 1, 3), p * integer(rng, 1, 3))
        note(shape=shape, patch=p)
        x = rng.standard_normal(shape)
        np.testing.assert_array_equal(unpatchify(patchify(x, p)[0], shape, p), x,
                                      err_msg=f"unpatchify(patchify(x)) != x for {shape}, patch {p}")
        draw = lambda r: {"x": r.standard_normal(shape)}  # noqa: E731
        ok(check_backward(lambda x: (patchify(x, p)[0], x.shape), lambda d, s: unpatchify(d, s, p), draw, rng=rng),
            f"shape {shape}, patch {p}")
