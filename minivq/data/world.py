"""The hard world: spoken-digit scenes in which each of the paper's claims can fail.

:func:`world_scenes` returns what :func:`minivq.data.digit_scenes` does (same
keys and labels, deterministic per (seed, split, index)) with five properties
whose defaults are hard (:data:`HARD`): digits at free pixel positions,
unnamed distractor digits, 2 to 5 named digits, digit sets held out of
training, and voices split by type (every voice type heard in training).
``world="easy"`` gives :func:`digit_scenes` itself, byte for byte. The study
uses ``"hard_on_grid"``: off the grid the per-patch image encoder learns next
to nothing, and a window encoder (``image_window``) needs about 8000 scenes
(``study/free_window*/study.md``). The handwritten digits are split per image,
and their 13 writers are shared by all splits. ``notebooks/00_data.ipynb``.
"""
from functools import lru_cache
from itertools import combinations

import numpy as np

from ..checks.arrays import _is_int, check_number
from .bank import check_n_seed, digit_images, speech_bank, speech_stats, split_index, split_voices, voice_type
from .digits import DIGIT_SIZE, _allocate, _fill_text, _pad_speech, digit_scenes, mix_caption

__all__ = ["HARD", "HARD_ON_GRID", "EASY", "PRESETS", "WORLD_SEED", "WRITER_NOTE", "world_scenes", "world_settings",
           "heldout_digit_sets", "split_voices", "voice_type"]

#: Seeds the choice of held-out digit sets (fixed: train and test must agree).
WORLD_SEED = 20220412
#: The hard world: the defaults of :func:`world_scenes`.
HARD = {"height": 32, "width": 48, "free_positions": True, "n_digits": (2, 3, 4, 5), "n_distractors": (1, 2),
        "heldout_sets": 0.25, "heldout_share": 0.5, "voice_split": "types", "balance_voices": True}
#: The world of :func:`minivq.data.digit_scenes` (the demo's first world).
EASY = {"height": 16, "width": 48, "free_positions": False, "n_digits": (2, 3), "n_distractors": (0,),
        "heldout_sets": 0.0, "heldout_share": 0.0, "voice_split": "speakers", "balance_voices": False}
#: The hard world with the digits on the patch grid: what the per-patch image encoder can learn.
HARD_ON_GRID = {**HARD, "free_positions": False}
PRESETS = {"easy": EASY, "hard": HARD, "hard_on_grid": HARD_ON_GRID}
WRITER_NOTE = ("the handwritten digits are split per image; their 13 writers (the UCI test part that "
               "scikit-learn ships) are shared by train, val and test, so test digits are new images "
               "of hands seen in training")
_STREAM = 12  # spawn-key tag: the hard world's random streams differ from digit_scenes'


def world_settings(world="hard", **overrides):
    """The properties (the keys of :data:`HARD`) of a world preset, with overrides (None keeps its value), checked."""
    if world not in PRESETS:
        raise ValueError(f"world: expected one of {sorted(PRESETS)}, got {world!r}")
    unknown = sorted(set(overrides) - set(HARD))
    if unknown:
        raise ValueError(f"overrides: expected keys among {sorted(HARD)}, got {unknown}")
    s = dict(PRESETS[world])
    s.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("n_digits", "n_distractors"):
        values = np.atleast_1d(np.asarray(s[key], dtype=object)).ravel()
        if values.size == 0 or not all(_is_int(v) for v in values):
            raise TypeError(f"{key}: expected an int or a sequence of ints, got {s[key]!r}")
        s[key] = tuple(int(v) for v in values)
    free = s["free_positions"]
    if not isinstance(free, (bool, np.bool_)) and not (_is_int(free) and free >= 0):
        raise ValueError(f"free_positions: expected True, False or a number of pixels >= 0, got {free!r}")
    for key in ("heldout_sets", "heldout_share"):
        check_number(s[key], key)
    if min(s["n_digits"]) < 1 or max(s["n_digits"]) > 9:
        raise ValueError(f"n_digits: expected counts between 1 and 9, got {s['n_digits']!r}")
    if min(s["n_distractors"]) < 0 or max(s["n_digits"]) + max(s["n_distractors"]) > 10:
        raise ValueError(f"n_distractors: expected counts >= 0 with n_digits + n_distractors <= 10 "
                         f"distinct digits, got {s['n_distractors']!r} with n_digits {s['n_digits']!r}")
    for key, top in (("heldout_sets", 0.5), ("heldout_share", 1.0)):
        if not 0.0 <= float(s[key]) <= top:
            raise ValueError(f"{key}: expected a share in [0, {top}], got {s[key]!r}")
    if s["heldout_share"] > 0 and s["heldout_sets"] == 0:
        raise ValueError(f"heldout_share: expected 0 when heldout_sets is 0, got {s['heldout_share']!r}")
    if s["voice_split"] not in ("types", "speakers"):
        raise ValueError(f"voice_split: expected 'types' or 'speakers', got {s['voice_split']!r}")
    return s


@lru_cache(maxsize=16)
def heldout_digit_sets(share, size):
    """The C(10, size) digit sets, split into seen and held out (a ``share`` of them, fixed by WORLD_SEED).

    Returns ``seen`` (n_seen, size) and ``heldout`` (n_heldout, size) int64, rows in lexicographic order.
    """
    sets = np.array(list(combinations(range(10), size)), dtype=np.int64)  # (C(10, size), size)
    rng = np.random.default_rng(np.random.SeedSequence(WORLD_SEED, spawn_key=(size,)))
    held = np.zeros(len(sets), dtype=bool)
    held[rng.permutation(len(sets))[:int(round(share * len(sets)))]] = True
    return sets[~held], sets[held]


def _overlap(starts, size, patch, n):
    """(m, n) pixels of each 1-D box [start, start + size) inside each patch [j p, (j + 1) p)."""
    lo = np.arange(n) * patch
    return np.clip(np.minimum(starts[:, None] + size, lo + patch) - np.maximum(starts[:, None], lo), 0, None)


def patch_owners(boxes, height, width, patch, min_cover):
    """Index of the box (m, 4) covering most of each patch, at least ``min_cover`` of it (ties: the lower), else -1.

    Returns ``owner`` int64 (T_img,), patches in patchify order.
    """
    cover = (_overlap(boxes[:, 0], DIGIT_SIZE, patch, height // patch)[:, :, None]
             * _overlap(boxes[:, 1], DIGIT_SIZE, patch, width // patch)[:, None, :]).reshape(len(boxes), -1)
    best = np.argmax(cover, axis=0)  # (T_img,)
    enough = cover[best, np.arange(cover.shape[1])] >= min_cover * patch * patch
    return np.where(enough, best, -1)


def _positions(last, patch, free):
    """Allowed box corners 0..last: any pixel (free True), the patch grid (False), or within ``free`` pixels of it."""
    pos = np.arange(last + 1)
    if free is True:
        return pos
    off = np.minimum(pos % patch, patch - pos % patch)  # distance to the nearest grid line
    return pos[off <= int(free)]


def _layout(rng, m, height, width, patch, free, min_cover, tries=200):
    """Non-overlapping boxes for m digits, each owning a patch: (boxes (m, 4), owner (T_img,))."""
    tops, lefts = (_positions(size - DIGIT_SIZE, patch, free) for size in (height, width))
    for _ in range(tries):
        corners = []
        for _ in range(20 * m):
            t, left = int(rng.choice(tops)), int(rng.choice(lefts))
            if all(abs(t - a) >= DIGIT_SIZE or abs(left - b) >= DIGIT_SIZE for a, b in corners):
                corners.append((t, left))
                if len(corners) == m:
                    break
        if len(corners) < m:
            continue
        c = np.array(corners, dtype=np.int64)
        boxes = np.concatenate([c, c + DIGIT_SIZE], axis=1)
        owner = patch_owners(boxes, height, width, patch, min_cover)
        if len(np.unique(owner[owner >= 0])) == m:
            return boxes, owner
    raise ValueError(f"height, width: a {height}x{width} canvas cannot hold {m} digits that each own a "
                     f"{patch}x{patch} patch; use a larger canvas or fewer digits")


def _draw(rng, split, s, i, voices):
    """The random choices of scene i: named digits, held-out flag, distractors, take."""
    k = int(rng.choice(s["n_digits"]))
    heldout = split != "train" and s["heldout_share"] > 0 and rng.random() < s["heldout_share"]
    seen, held = heldout_digit_sets(float(s["heldout_sets"]), k)
    pool = held if heldout else seen
    named = pool[rng.integers(len(pool))]
    others = np.setdiff1d(np.arange(10), named)
    distractors = rng.choice(others, size=int(rng.choice(s["n_distractors"])), replace=False)
    if s["balance_voices"]:
        take = int(rng.choice(voices[i % len(voices)][1]))
    else:
        take = int(rng.choice(np.concatenate([t for _, t in voices])))
    return named, bool(heldout), distractors.astype(np.int64), take


def _check_canvas(patch, height, width):
    """ValueError naming the argument unless the canvas is made of whole patches and holds a digit."""
    if patch not in (1, 2, 4, 8):
        raise ValueError(f"patch: expected one of 1, 2, 4, 8, got {patch!r}")
    for name, size in (("height", height), ("width", width)):
        if not isinstance(size, (int, np.integer)) or size < DIGIT_SIZE or size % patch:
            raise ValueError(f"{name}: expected a multiple of patch={patch} that is >= {DIGIT_SIZE}, got {size!r}")


def world_scenes(split, n, seed, *, world="hard", patch=8, height=None, width=None, free_positions=None,
                 n_digits=None, n_distractors=None, heldout_sets=None, heldout_share=None, voice_split=None,
                 balance_voices=None, min_cover=0.25, gap_frames=(3, 12), edge_frames=(2, 8),
                 noise_db=(-70.0, -55.0), gain_db=(-6.0, 0.0), max_frames=None):
    """Compose n scenes of one split of the hard (or easy) world, deterministically from seed.

    Parameters
    ----------
    split, n, seed
        As in :func:`minivq.data.digit_scenes`; scene i uses ``SeedSequence(seed, spawn_key=(split, i, 12))``.
    world : {"hard", "hard_on_grid", "easy"}
        The preset of every property left None.
    patch : {1, 2, 4, 8}
        Patch size the image labels refer to.
    height, width : int or None
        Canvas size (hard: 32 x 48).
    free_positions : bool, int or None
        Boxes at any pixel, on the patch grid (False), or within n pixels of it.
    n_digits, n_distractors : tuple of int or None
        Allowed counts of named digits (hard: 2-5) and unnamed distractors (hard: 1-2).
    heldout_sets, heldout_share : float or None
        Share of digit sets never named in training (hard: 0.25), and of val/test scenes naming one (hard: 0.5).
    voice_split : {"types", "speakers"} or None
        See :func:`minivq.data.bank.split_voices` (hard: "types").
    balance_voices : bool or None
        Scene i uses its split's voice ``i % n_voices`` (hard: True).
    min_cover : float
        Least share of a patch a box must cover to label it.
    gap_frames, edge_frames, noise_db, gain_db, max_frames
        As in :func:`minivq.data.digit_scenes`.

    Returns
    -------
    dict of ndarray
        The keys of :func:`minivq.data.digit_scenes` with L = max(n_digits)
        named digits in caption order (left to right, then top down); a patch
        is labelled with the digit that owns it, named or distractor; and
        "distractors", "distractor_boxes", "distractor_ids", "n_distractors",
        "heldout" (the scene names a held-out set). -1 pads.
    """
    s = world_settings(world, height=height, width=width, free_positions=free_positions, n_digits=n_digits,
                       n_distractors=n_distractors, heldout_sets=heldout_sets, heldout_share=heldout_share,
                       voice_split=voice_split, balance_voices=balance_voices)
    mix = {"gap_frames": gap_frames, "edge_frames": edge_frames, "noise_db": noise_db, "gain_db": gain_db}
    if s == EASY:
        return digit_scenes(split, n, seed, patch=patch, height=s["height"], width=s["width"],
                            n_digits=s["n_digits"], max_frames=max_frames, **mix)
    si = split_index(split)
    check_n_seed(n, seed)
    H, W = s["height"], s["width"]
    _check_canvas(patch, H, W)
    if not 0.0 < float(min_cover) <= 1.0:
        raise ValueError(f"min_cover: expected a share in (0, 1], got {min_cover!r}")
    glyphs, glyph_digits, glyph_ids = digit_images(split)
    pools = [np.flatnonzero(glyph_digits == d) for d in range(10)]
    bank, voices = speech_bank(), split_voices(split, s["voice_split"])
    mean_db, std_db = speech_stats(s["voice_split"])
    out = _allocate(n, H, W, patch, max(s["n_digits"]), max(s["n_distractors"]))
    captions = []
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(si, i, _STREAM)))
        named, heldout, distractors, take = _draw(rng, split, s, i, voices)
        k, everything = len(named), np.concatenate([named, distractors])
        rows = np.array([rng.choice(pools[d]) for d in everything], dtype=np.int64)
        boxes, owner = _layout(rng, len(everything), H, W, patch, s["free_positions"], float(min_cover))
        out["image_labels"][i] = np.where(owner >= 0, everything[owner], -1)
        for glyph, (top, left, bottom, right) in zip(glyphs[rows], boxes):
            out["images"][i, top:bottom, left:right] = glyph / np.float32(16.0)
        order = np.lexsort((boxes[:k, 0], boxes[:k, 1]))  # caption order: left to right, then top down
        named, nboxes, nrows = named[order], boxes[:k][order], rows[:k][order]
        renderings = bank.rendering_of[take, named]  # (k,)
        caption_db, spans = mix_caption(rng, [bank.rendering_db(r, np.float64) for r in renderings], **mix)
        captions.append((caption_db - mean_db) / std_db)
        for key, value in (("digits", named), ("boxes", nboxes), ("image_ids", glyph_ids[nrows]),
                           ("rendering_ids", renderings), ("word_spans", spans), ("distractors", distractors),
                           ("distractor_boxes", boxes[k:]), ("distractor_ids", glyph_ids[rows[k:]])):
            out[key][i, :len(value)] = value
        out["n_digits"][i], out["n_distractors"][i] = k, len(distractors)
        out["heldout"][i], out["take"][i] = heldout, take
    out["speaker"] = bank.take_speaker[out["take"]].copy()
    _fill_text(out)
    out.update(_pad_speech(captions, out["word_spans"], out["digits"], max_frames))
    return out
