"""Synthetic toy modalities: the same concepts seen as frames ("a", like speech) and as grid cells ("b").

Each concept has an N(0, 1) prototype per modality, drawn independently, so a
model learns that a-prototype 3 and b-prototype 3 mean the same thing only
from their co-occurrence in pairs: the situation (CM-1..4) is built for.
Units are their concept's (or the background's) prototype plus noise.
``notebooks/05_training_toy.ipynb`` trains on them.
"""
import numpy as np

from ..checks.arrays import MAX_SIZE, check_int, check_number
from .bank import check_int_range, check_n_seed


def _sequence_layout(rng, k, frames_per_concept, gap_frames):
    """Frame labels of modality a: background gaps around k concept runs."""
    runs = rng.integers(frames_per_concept[0], frames_per_concept[1] + 1, size=k)
    gaps = rng.integers(gap_frames[0], gap_frames[1] + 1, size=k + 1)
    starts = np.cumsum(gaps[:-1]) + np.concatenate([[0], np.cumsum(runs)[:-1]])
    return np.stack([starts, starts + runs], axis=1), int(gaps.sum() + runs.sum())


def toy_pairs(n, seed, *, n_concepts=8, min_concepts=1, max_concepts=3, dim_a=16, dim_b=16,
              frames_per_concept=(2, 4), gap_frames=(1, 3), grid=(4, 4), cells_per_concept=1,
              noise=0.5, prototype_seed=0):
    """Draw n toy pairs (modality a: frames, modality b: grid cells).

    Parameters
    ----------
    n : int
        Number of pairs, in [1, 2^20], with at most 2^28 features in all.
    seed : int
        Non-negative; pair i uses ``SeedSequence(seed, spawn_key=(i,))``.
    n_concepts : int
        C; concept ids are 0..C-1.
    min_concepts, max_concepts : int
        Distinct concepts per pair (L = max_concepts).
    dim_a, dim_b : int
        F_a, F_b: features of a frame and of a cell.
    frames_per_concept, gap_frames : (int, int)
        Inclusive ranges of the frames of a concept and of the background before, between and after.
    grid : (int, int)
        Rows and columns of b (T_b = rows * cols, row-major).
    cells_per_concept : int
        Distinct random cells of b each concept covers.
    noise : float
        Standard deviation of the noise on every unit, in [0, 1e30].
    prototype_seed : int
        Seed of the prototypes: datasets with other seeds share their concepts.

    Returns
    -------
    dict of ndarray
        "a" (n, T_a, F_a) float32, T_a = L * max frames + (L + 1) * max gap;
        "a_mask" (n, T_a) bool; "a_labels" (n, T_a) int64 (-1 background and
        padding); "b" (n, T_b, F_b) float32; "b_mask" (n, T_b) bool (all
        True); "b_labels" (n, T_b) int64; "concepts" (n, L) int64 in a's order,
        -1 padded; extra "a_spans" (n, L, 2) int64 [start, end) frames, -1 padded.
    """
    n, seed = check_n_seed(n, seed)
    n_concepts = check_int(n_concepts, "n_concepts", 1, 1 << 16)
    min_concepts = check_int(min_concepts, "min_concepts", 1)
    max_concepts = check_int(max_concepts, "max_concepts", min_concepts, n_concepts)
    frames_per_concept = check_int_range(frames_per_concept, "frames_per_concept", 1)
    gap_frames = check_int_range(gap_frames, "gap_frames", 0)
    rows, cols = check_int_range(grid, "grid", 1, ordered=False)
    cells_per_concept = check_int(cells_per_concept, "cells_per_concept", 1)
    noise = check_number(noise, "noise", 0, 1e30)
    dim_a, dim_b = check_int(dim_a, "dim_a", 1, 1 << 16), check_int(dim_b, "dim_b", 1, 1 << 16)
    L, T_b = max_concepts, rows * cols
    T_a = L * frames_per_concept[1] + (L + 1) * gap_frames[1]
    size = n * (T_a * dim_a + T_b * dim_b)
    if size > MAX_SIZE * 16:
        raise ValueError(f"n, the frames, the grid and dim_a/dim_b ask for {size} features in all; at most "
                         f"{MAX_SIZE * 16}: ask for fewer or smaller pairs")
    if max_concepts * cells_per_concept > T_b:
        raise ValueError(f"grid must have at least max_concepts * cells_per_concept = "
                         f"{max_concepts * cells_per_concept} cells, got {grid}")
    rng = np.random.default_rng(np.random.SeedSequence(check_int(prototype_seed, "prototype_seed", 0), spawn_key=(0,)))
    proto_a, proto_b = rng.standard_normal((n_concepts + 1, dim_a)), rng.standard_normal((n_concepts + 1, dim_b))
    out = {"a_mask": np.zeros((n, T_a), dtype=bool), "a_labels": np.full((n, T_a), -1, dtype=np.int64),
           "b_mask": np.ones((n, T_b), dtype=bool), "b_labels": np.full((n, T_b), -1, dtype=np.int64),
           "concepts": np.full((n, L), -1, dtype=np.int64), "a_spans": np.full((n, L, 2), -1, dtype=np.int64),
           "a": np.zeros((n, T_a, dim_a), dtype=np.float32), "b": np.zeros((n, T_b, dim_b), dtype=np.float32)}
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(i,)))
        k = int(rng.integers(min_concepts, max_concepts + 1))
        concepts = rng.choice(n_concepts, size=k, replace=False)
        spans, length = _sequence_layout(rng, k, frames_per_concept, gap_frames)
        out["a_mask"][i, :length] = True
        for (start, end), c in zip(spans, concepts):
            out["a_labels"][i, start:end] = c
        cells = rng.choice(T_b, size=(k, cells_per_concept), replace=False)
        out["b_labels"][i, cells] = concepts[:, None]
        out["concepts"][i, :k], out["a_spans"][i, :k] = concepts, spans
        out["a"][i, :length] = _render(rng, proto_a, out["a_labels"][i, :length], noise)
        out["b"][i] = _render(rng, proto_b, out["b_labels"][i], noise)
    return out


def _render(rng, proto, labels, noise):
    """Units (T, F) = the prototype of their label (T,) + N(0, noise^2); -1 picks the background's, the last row."""
    return proto[labels] + noise * rng.standard_normal((len(labels), proto.shape[1]))
