"""Spoken-digit scenes: a canvas of 2 or 3 handwritten digits, a spoken caption and tokens naming them in order.

Every unit carries its concept, the ground truth of METHOD.md (LOC) and (CC):
an image patch the digit whose 8x8 box holds it (digits sit on a
``max(patch, 4)``-pixel grid, so a patch is wholly inside one box or outside
all), a speech frame the digit whose rendering covers it, a token d + 1 the
digit d; -1 is background. ``notebooks/00_data.ipynb`` shows the scenes.
"""
import numpy as np

from ..checks.arrays import check_bool, check_int, check_number, describe
from .bank import DIGIT_WORDS, check_int_range, check_n_seed, digit_images, speech_bank, split_index

TEXT_VOCAB = ("<pad>",) + DIGIT_WORDS
MAX_DIGITS = 3
DIGIT_SIZE = 8


def _check_options(patch, height, width, n_digits):
    """ValueError (TypeError for a wrong type) naming the argument if the canvas cannot hold the layout."""
    if not isinstance(n_digits, (tuple, list)) or not n_digits:
        raise TypeError(f"n_digits must be a non-empty tuple of digit counts, got {describe(n_digits)}")
    n_digits = tuple(check_int(k, "n_digits", 1, MAX_DIGITS) for k in n_digits)
    if not isinstance(patch, (int, np.integer)) or isinstance(patch, (bool, np.bool_)) or patch not in (1, 2, 4, 8):
        raise ValueError(f"patch must be one of 1, 2, 4, 8 (a divisor of the 8-pixel digit), got {describe(patch)}")
    grid = max(patch, 4)
    height, width = check_int(height, "height", DIGIT_SIZE), check_int(width, "width", DIGIT_SIZE * max(n_digits))
    if height % grid:
        raise ValueError(f"height must be a multiple of {grid} that is >= 8, got {height!r}")
    if width % grid:
        raise ValueError(f"width must be a multiple of {grid} that is >= {DIGIT_SIZE * max(n_digits)}, "
                         f"got {width!r}")
    return grid


def _check_mixing(gap_frames, edge_frames, noise_db, gain_db, max_frames, distinct):
    """The caption options of :func:`digit_scenes`: frame ranges, dB ranges, max_frames, distinct."""
    for name, value in (("gap_frames", gap_frames), ("edge_frames", edge_frames)):
        check_int_range(value, name, 0, 10_000)
    for name, value in (("noise_db", noise_db), ("gain_db", gain_db)):
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise TypeError(f"{name} must be a pair of numbers (low, high) in dB, got {describe(value)}")
        a, b = (check_number(v, name, -200.0, 100.0) for v in value)
        if a > b:
            raise ValueError(f"{name} must be a range (low, high) with low <= high, got {tuple(value)}")
    if max_frames is not None:
        check_int(max_frames, "max_frames", 1)
    check_bool(distinct, "distinct")


def place_digits(rng, k, height, width, grid):
    """Boxes (k, 4) int64 [top, left, bottom, right) of k 8x8 digits, left to right, apart, corners on the grid."""
    cols, size = width // grid, DIGIT_SIZE // grid  # in grid units
    free = cols - k * size
    cuts = np.sort(rng.integers(0, free + 1, size=k))  # k cut points in the free space
    lefts = (cuts + size * np.arange(k)) * grid  # gap before digit j = cuts[j] - cuts[j-1]
    tops = rng.integers(0, (height - DIGIT_SIZE) // grid + 1, size=k) * grid
    return np.stack([tops, lefts, tops + DIGIT_SIZE, lefts + DIGIT_SIZE], axis=1).astype(np.int64)


def render_canvas(glyphs, digits, boxes, height, width, patch):
    """Paste glyphs (k, 8, 8) of ink 0..16 into their boxes and label the patches.

    Returns the image (height, width) float32 in [0, 1] and the digit of each
    patch (T_img,) in patchify order, -1 for background.
    """
    image = np.zeros((height, width), dtype=np.float32)
    pixel_labels = np.full((height, width), -1, dtype=np.int64)
    for glyph, d, (top, left, bottom, right) in zip(glyphs, digits, boxes):
        image[top:bottom, left:right] = glyph / np.float32(16.0)
        pixel_labels[top:bottom, left:right] = d
    # boxes sit on the patch grid, so a patch's top-left pixel speaks for all of it
    return image, pixel_labels[::patch, ::patch].reshape(-1)


def mix_caption(rng, words_db, gap_frames, edge_frames, noise_db, gain_db):
    """Join word log-mels (T_j, 40) in dB with silences over a noise floor, in the power domain.

    ``gap_frames``, ``edge_frames``: inclusive ranges of the silences between
    and around the words; ``noise_db``: range of the caption's noise floor
    (plus N(0, 2 dB) per frame and band); ``gain_db``: range of a per-word gain.
    Returns the caption (T, 40) float64 in dB and each word's [start, end)
    frames, (k, 2) int64.
    """
    k = len(words_db)
    gaps = np.concatenate([rng.integers(edge_frames[0], edge_frames[1] + 1, size=1),
                           rng.integers(gap_frames[0], gap_frames[1] + 1, size=k - 1),
                           rng.integers(edge_frames[0], edge_frames[1] + 1, size=1)])
    lengths = np.array([len(w) for w in words_db])
    starts = np.cumsum(gaps[:-1]) + np.concatenate([[0], np.cumsum(lengths)[:-1]])
    T, F = int(gaps.sum() + lengths.sum()), words_db[0].shape[1]
    noise = rng.uniform(*noise_db) + 2.0 * rng.standard_normal((T, F))  # (T, 40) dB
    power = 10.0 ** (noise / 10.0)
    gains = rng.uniform(*gain_db, size=k)
    for w, s, g in zip(words_db, starts, gains):
        power[s:s + len(w)] += 10.0 ** ((w + g) / 10.0)
    spans = np.stack([starts, starts + lengths], axis=1).astype(np.int64)
    return 10.0 * np.log10(power), spans


def _draw_scene(rng, k_choices, distinct, pools, takes):
    """The random choices of one scene: digits, glyph rows, take."""
    k = int(rng.choice(k_choices))
    digits = rng.choice(10, size=k, replace=not distinct).astype(np.int64)
    rows = np.array([rng.choice(pools[d]) for d in digits], dtype=np.int64)
    take = int(rng.choice(takes))
    return digits, rows, take


def digit_scenes(split, n, seed, *, patch=4, height=16, width=48, n_digits=(2, 3),
                 distinct=True, gap_frames=(3, 12), edge_frames=(2, 8),
                 noise_db=(-70.0, -55.0), gain_db=(-6.0, 0.0), max_frames=None):
    """Compose n spoken-digit scenes of one split, deterministically from seed.

    Parameters
    ----------
    split : {"train", "val", "test"}
        Images and speakers come from that split only.
    n : int
        Number of scenes, in [1, 2^20]; scene i does not depend on n.
    seed : int
        Non-negative; scene i uses ``SeedSequence(seed, spawn_key=(split, i))``.
    patch : {1, 2, 4, 8}
        Patch size the image labels refer to.
    height, width : int
        Canvas size (default 16 x 48).
    n_digits : tuple of int
        Allowed digit counts, drawn uniformly.
    distinct : bool
        No digit repeats within a scene.
    gap_frames, edge_frames, noise_db, gain_db
        Caption mixing (:func:`mix_caption`): int ranges in [0, 10000], dB ranges within [-200, 100].
    max_frames : int or None
        Length of the speech axis (None: the longest caption).

    Returns
    -------
    dict of ndarray
        "images" (n, H, W) float32 in [0, 1]; "image_mask", "image_labels"
        (n, T_img); "speech" (n, T_sp, 40) float32, normalized with the train
        statistics, 0 on padding; "speech_mask", "speech_labels" (n, T_sp);
        "word_spans" (n, 3, 2) [start, end) frames; "text" (n, 3) (0 pads),
        "text_mask", "text_labels", "digits" (n, 3); "n_digits" (n,); "boxes"
        (n, 3, 4) pixels; "image_ids" (n, 3) rows of digits_8x8.npz; "take",
        "speaker" (n,); "rendering_ids" (n, 3). -1 pads labels, ids and spans.
    """
    s = split_index(split)
    n, seed = check_n_seed(n, seed)
    grid = _check_options(patch, height, width, n_digits)
    patch, height, width = int(patch), int(height), int(width)  # NumPy ints would wrap in the arithmetic
    _check_mixing(gap_frames, edge_frames, noise_db, gain_db, max_frames, distinct)
    glyphs, glyph_digits, glyph_ids = digit_images(split)
    pools = [np.flatnonzero(glyph_digits == d) for d in range(10)]
    bank = speech_bank()
    takes = bank.takes_of(split)
    out = _allocate(n, height, width, patch)
    captions = []
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(s, i)))
        digits, rows, take = _draw_scene(rng, tuple(n_digits), distinct, pools, takes)
        k = len(digits)
        boxes = place_digits(rng, k, height, width, grid)
        out["images"][i], out["image_labels"][i] = render_canvas(
            glyphs[rows], digits, boxes, height, width, patch)
        renderings = bank.rendering_of[take, digits]  # (k,)
        caption_db, spans = mix_caption(rng, [bank.rendering_db(r, np.float64) for r in renderings],
                                        gap_frames, edge_frames, noise_db, gain_db)
        captions.append((caption_db - bank.mean_db) / bank.std_db)
        for key, value in (("digits", digits), ("boxes", boxes), ("image_ids", glyph_ids[rows]),
                           ("rendering_ids", renderings), ("word_spans", spans)):
            out[key][i, :k] = value
        out["n_digits"][i], out["take"][i] = k, take
    out["speaker"] = bank.take_speaker[out["take"]].copy()
    _fill_text(out)
    out.update(_pad_speech(captions, out["word_spans"], out["digits"], max_frames))
    return out


def _allocate(n, height, width, patch, L=MAX_DIGITS, L_dis=None):
    """The per-scene arrays of L named digits (and L_dis distractors), filled with their padding values."""
    def pad(*shape):
        return np.full((n,) + shape, -1, dtype=np.int64)

    T_img = (height // patch) * (width // patch)
    out = {"images": np.zeros((n, height, width), dtype=np.float32),
           "image_mask": np.ones((n, T_img), dtype=bool), "image_labels": pad(T_img),
           "digits": pad(L), "n_digits": np.zeros(n, dtype=np.int64), "boxes": pad(L, 4), "image_ids": pad(L),
           "take": np.zeros(n, dtype=np.int64), "rendering_ids": pad(L), "word_spans": pad(L, 2)}
    if L_dis is not None:
        out.update({"distractors": pad(L_dis), "n_distractors": np.zeros(n, dtype=np.int64),
                    "distractor_boxes": pad(L_dis, 4), "distractor_ids": pad(L_dis), "heldout": np.zeros(n, bool)})
    return out


def _fill_text(out):
    """Tokens from digits: id d + 1 for digit d, 0 for padding (TEXT_VOCAB)."""
    digits = out["digits"]  # (n, 3)
    out["text_mask"] = digits >= 0
    out["text"] = np.where(out["text_mask"], digits + 1, 0).astype(np.int64)
    out["text_labels"] = digits.copy()


def _pad_speech(captions, spans, digits, max_frames):
    """Stack normalized captions into (n, T_sp, 40) with their mask and frame labels."""
    lengths = np.array([len(c) for c in captions])
    T_sp = int(lengths.max()) if max_frames is None else int(max_frames)
    if lengths.max() > T_sp:
        raise ValueError(f"max_frames must be >= the longest caption ({lengths.max()} frames), "
                         f"got {max_frames}")
    n, F = len(captions), captions[0].shape[1]
    speech = np.zeros((n, T_sp, F), dtype=np.float32)
    labels = np.full((n, T_sp), -1, dtype=np.int64)
    for i, c in enumerate(captions):
        speech[i, :len(c)] = c
        for (start, end), d in zip(spans[i], digits[i]):
            if d >= 0:
                labels[i, start:end] = d
    mask = np.arange(T_sp)[None, :] < lengths[:, None]  # (n, T_sp)
    return {"speech": speech, "speech_mask": mask, "speech_labels": labels}
