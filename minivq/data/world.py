"""The hard world: spoken-digit scenes in which each of the paper's claims can fail.

:func:`world_scenes` is a drop-in replacement for
:func:`minivq.data.digit_scenes` (same keys, same label conventions, the
same determinism per (seed, split, index)) with five properties, each a
parameter whose default is the hard setting:

* ``free_positions``: digits sit at any pixel position, not on the patch
  grid. A patch is labelled with the digit whose 8x8 box covers most of it
  (the largest share of its pixels among the digits, at least ``min_cover``
  of the patch), -1 otherwise; layouts in which some digit would own no
  patch are redrawn, so every digit owns at least one. An int n places the
  boxes within n pixels of the grid. The model's image encoder sees one
  patch at a time (no context, no shift invariance): one pixel off the grid
  (``free_positions=1``) the summary model learns half as much in 30 epochs
  (set-level R@1 0.03-0.05 against 0.09 on the grid), at free positions
  almost nothing, so the study and the demo use ``world="hard_on_grid"``
  (:data:`HARD_ON_GRID`: every other property hard).
  A cell that looks for its digit in a window around it (ModelConfig
  ``image_window=16, image_stride=2``: the max over the cell's window of a
  convolution, :mod:`minivq.layers.patches`) holds every digit whole and
  learns, slowly: the summary model's set-level R@1 on 300 val scenes
  (chance 0.005) is 0.02-0.04 after 60 epochs at lr 1e-3, and at lr 3e-3
  peaks at 0.063 near epoch 50, then falls back to 0.04-0.05 by epoch 100
  (seed 0); on the grid the plain encoder reaches 0.09 in 30 epochs (the
  window encoder 0.065), and here it stays at 0.01-0.03 for 100 epochs. An
  epoch with the window encoder costs about three times as much. A PyTorch
  probe (``benchmarks/probe_free_positions.py``) finds that data is the
  other half: a small convolutional encoder peaks at 0.043 on 2000 scenes
  and reaches 0.12 on 8000. So does the window encoder: on 8000 scenes
  (``minivq study --off-grid-window --window-train-size 8000``, three seeds,
  60 epochs; ``study/free_window_8000``) it reaches 0.11 set-level test R@1
  with the full method; claims 2 and 3 hold there against their baselines,
  claim 1 at 60 epochs but not at 100 (``study/free_window_8000_e100``),
  at five to six times the training time per seed of the grid
  study (547 s against 98 s for the three variants).
* ``n_distractors``: digits in the image that the caption does not name.
  They differ from the named digits and are labelled with their own digit
  (a unit on a 7 is a 7), so finding ink is not finding the named digit.
* ``n_digits``: 2 to 5 named digits per scene (all distinct).
* ``heldout_sets``: a share of all digit sets of each size never named in
  training; ``heldout_share`` of the val and test scenes name one of them.
  The held-out sets are fixed (:data:`WORLD_SEED`), not drawn per seed, so
  train and test agree whatever seeds they use.
* ``voice_split`` and ``balance_voices``: with ``"types"``, the espeak-ng
  speakers keep their disjoint split, and the takes of each flite voice
  (four recorded people) are split between train, val and test (last take
  test, the one before val, the rest train), so every voice type (espeak-ng,
  flite awb, kal, rms, slt) is heard in training; a flite voice in test is a
  known person saying new takes. With ``balance_voices`` scene i of a split
  uses that split's voice (speaker) ``i % n_voices``, so every voice is
  equally frequent in every split (test: 12 voices, 1/12 each).

Speech is normalized with the per-band statistics of the renderings of this
world's train takes. The handwritten digits are split per image, and their
writers are shared by all splits: the 1797 images are the test part of the
UCI set (13 writers), so a test digit is a new image of a hand seen in
training, never a new hand. ``world="easy"`` (or every property at its easy
value) gives :func:`digit_scenes` itself, byte for byte.
"""
from functools import lru_cache
from itertools import combinations

import numpy as np

from .._checks import _is_int, check_number
from .bank import check_n_seed, digit_images, speaker_names, speech_bank, split_index
from .digits import DIGIT_SIZE, _fill_text, _pad_speech, digit_scenes, mix_caption

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
#: The hard world with the digits on the patch grid: what the per-patch image encoder can learn
#: (off the grid, no variant learns in the study's budget; see the module docstring).
HARD_ON_GRID = {**HARD, "free_positions": False}
PRESETS = {"easy": EASY, "hard": HARD, "hard_on_grid": HARD_ON_GRID}
WRITER_NOTE = ("the handwritten digits are split per image; their 13 writers (the UCI test part that "
               "scikit-learn ships) are shared by train, val and test, so test digits are new images "
               "of hands seen in training")
_STREAM = 12  # spawn-key tag: the hard world's random streams differ from digit_scenes'


def world_settings(world="hard", **overrides):
    """The properties of a world, with overrides (None keeps the world's value).

    Returns
    -------
    dict
        The keys of :data:`HARD`, checked (ValueError naming the argument).
    """
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
    if not s["n_digits"] or min(s["n_digits"]) < 1 or max(s["n_digits"]) > 9:
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
    """Digit sets of one size, split into those named in training and the held-out ones.

    Parameters
    ----------
    share : float
        Share of the C(10, size) sets held out (rounded; fixed by WORLD_SEED).
    size : int

    Returns
    -------
    seen, heldout : ndarray of int64, shapes (n_seen, size) and (n_heldout, size)
        Sorted digit sets (rows in lexicographic order).
    """
    sets = np.array(list(combinations(range(10), size)), dtype=np.int64)  # (C(10, size), size)
    rng = np.random.default_rng(np.random.SeedSequence(WORLD_SEED, spawn_key=(size,)))
    held = np.zeros(len(sets), dtype=bool)
    held[rng.permutation(len(sets))[:int(round(share * len(sets)))]] = True
    return sets[~held], sets[held]


def voice_type(name):
    """``"espeak-ng"`` for every espeak-ng speaker; a flite speaker is its own type (``"flite:slt"``)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a speaker name (str), got {type(name).__name__} {name!r}")
    return name if name.startswith("flite:") else name.split(":")[0]


@lru_cache(maxsize=8)
def split_voices(split, voice_split="types"):
    """The voices (speakers) of a split and the takes of each.

    Returns
    -------
    list of (speaker id, ndarray of take indices)
        In speaker-id order; see the module docstring for ``"types"``.
    """
    s, bank, names = split_index(split), speech_bank(), speaker_names()
    out = []
    for speaker, name in enumerate(names):
        takes = np.flatnonzero(bank.take_speaker == speaker)
        if voice_split == "types" and name.startswith("flite:"):
            role = np.zeros(len(takes), dtype=np.int64)  # train, then val, then test for the last take
            role[-2:] = (1, 2)
            takes = takes[role == s]
        elif bank.speaker_split[speaker] != s:
            continue
        if len(takes):
            out.append((speaker, takes))
    return out


@lru_cache(maxsize=4)
def _speech_stats(voice_split):
    """Per-band mean and std (dB) over every frame of the train takes' renderings."""
    bank = speech_bank()
    takes = np.concatenate([t for _, t in split_voices("train", voice_split)])
    frames = np.concatenate([bank.rendering_db(r, np.float64) for r in bank.rendering_of[takes].ravel()])
    return frames.mean(axis=0).astype(np.float32), frames.std(axis=0).astype(np.float32)


def _overlap(starts, size, patch, n):
    """(m, n) pixels of each 1-D box [start, start + size) inside each patch [j p, (j + 1) p)."""
    lo = np.arange(n) * patch
    return np.clip(np.minimum(starts[:, None] + size, lo + patch) - np.maximum(starts[:, None], lo), 0, None)


def patch_owners(boxes, height, width, patch, min_cover):
    """Which box labels each patch: the one covering the largest share, if at least ``min_cover``.

    Returns
    -------
    owner : ndarray of int64, shape (height // patch * width // patch,)
        Index of the owning box (ties: the lower index), -1 for background.
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


def _allocate(n, height, width, patch, L, L_dis):
    """The per-scene arrays of L named digits and L_dis distractors, filled with their padding values."""
    def pad(*shape):
        return np.full((n,) + shape, -1, dtype=np.int64)

    T_img = (height // patch) * (width // patch)
    return {"images": np.zeros((n, height, width), dtype=np.float32),
            "image_mask": np.ones((n, T_img), dtype=bool), "image_labels": pad(T_img),
            "digits": pad(L), "n_digits": np.zeros(n, dtype=np.int64), "boxes": pad(L, 4),
            "image_ids": pad(L), "rendering_ids": pad(L), "word_spans": pad(L, 2),
            "distractors": pad(L_dis), "n_distractors": np.zeros(n, dtype=np.int64),
            "distractor_boxes": pad(L_dis, 4), "distractor_ids": pad(L_dis),
            "heldout": np.zeros(n, dtype=bool), "take": np.zeros(n, dtype=np.int64)}


def world_scenes(split, n, seed, *, world="hard", patch=8, height=None, width=None, free_positions=None,
                 n_digits=None, n_distractors=None, heldout_sets=None, heldout_share=None, voice_split=None,
                 balance_voices=None, min_cover=0.25, gap_frames=(3, 12), edge_frames=(2, 8),
                 noise_db=(-70.0, -55.0), gain_db=(-6.0, 0.0), max_frames=None):
    """Compose n scenes of one split of the hard (or easy) world, deterministically from seed.

    Parameters
    ----------
    split : {"train", "val", "test"}
    n : int
        Number of scenes (>= 1); scene i does not depend on n.
    seed : int
        Non-negative; scene i uses ``SeedSequence(seed, spawn_key=(split, i, 12))``.
    world : {"hard", "hard_on_grid", "easy"}
        The preset (:data:`HARD` or :data:`EASY`) of every property left None.
    patch : {1, 2, 4, 8}
        Patch size the image labels refer to (the model's ``patch``).
    height, width : int or None
        Canvas size (hard: 32 x 48, 24 patches of 8 x 8).
    free_positions : bool, int or None
        Boxes at any pixel (hard), on the patch grid (False), or within n
        pixels of it (an int).
    n_digits, n_distractors : tuple of int or None
        Allowed counts of named digits (hard: 2-5) and unnamed distractors (hard: 1-2).
    heldout_sets, heldout_share : float or None
        Share of digit sets never named in training (hard: 0.25), and share of
        val/test scenes naming one (hard: 0.5).
    voice_split : {"types", "speakers"} or None
    balance_voices : bool or None
        See the module docstring (hard: "types", True).
    min_cover : float
        Least share of a patch a box must cover to label it.
    gap_frames, edge_frames, noise_db, gain_db, max_frames
        Caption mixing and padding, as in :func:`minivq.data.digit_scenes`.

    Returns
    -------
    dict of ndarray
        The keys of :func:`minivq.data.digit_scenes` with L = max(n_digits)
        named digits in caption order (left to right, then top to bottom):
        "images", "image_mask", "image_labels" (the owning digit, named or
        distractor; -1 background), "speech", "speech_mask", "speech_labels",
        "word_spans" (n, L, 2), "text" (n, L), "text_mask", "text_labels",
        "digits" (n, L), "n_digits", "boxes" (n, L, 4), "image_ids",
        "rendering_ids", "take", "speaker"; and "distractors",
        "distractor_boxes", "distractor_ids", "n_distractors", "heldout"
        (the scene names a held-out set). -1 pads. With every property at
        its easy value: exactly ``digit_scenes(split, n, seed, patch=patch)``.
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
    mean_db, std_db = _speech_stats(s["voice_split"])
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
