"""Inputs of the hidden checks, drawn at grading time from the seed the grader records (MINIVQ_GRADE_SEED)."""
import os
import zlib

import numpy as np

SEED = int(os.environ.get("MINIVQ_GRADE_SEED", "0"))
TOL = 1e-7


def ok(errors, what):
    """Every gradient-check error of ``errors`` ({name: error}) below TOL."""
    for name, err in errors.items():
        assert err < TOL, f"{what}: d{name} rel_error {err:.1e}, expect < {TOL:.0e}"


def setup(request):
    """(rng, note) for one hidden check: a Generator from the grading seed and the check's name, and
    ``note(**inputs)``, which records what was drawn (the grade's JSON shows it)."""
    rng = np.random.default_rng([SEED, zlib.crc32(request.node.name.encode())])
    drawn = []

    def note(**inputs):
        drawn.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in inputs.items()})
        request.node.user_properties[:] = [p for p in request.node.user_properties if p[0] != "inputs"]
        request.node.user_properties.append(("inputs", drawn))

    return rng, note


def integer(rng, low, high):
    """An int in [low, high]."""
    return int(rng.integers(low, high + 1))


def distributions(rng, B, K):
    """B rows of a softmax over K, kept away from 0."""
    Z = 0.5 * rng.standard_normal((B, K))
    return np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)


def mask(rng, B, T):
    """(B, T) bool with at least one True per row."""
    M = rng.random((B, T)) < 0.6
    M[np.arange(B), rng.integers(0, T, size=B)] = True
    return M
