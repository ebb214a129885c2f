"""Tests of minivq.data.world: every hard-world property is checked in generated data.

Distractors present and unnamed; boxes off the patch grid and patch labels
that follow the pixels; 2-5 named digits; held-out digit sets in val/test
and never in train; every voice type heard in training; every test voice
equally frequent; the easy world byte for byte the old one.
"""
import numpy as np
import pytest

from minivq.data import digit_scenes, speaker_names, speech_bank
from minivq.data import world
from minivq.data.world import HARD, heldout_digit_sets, split_voices, voice_type, world_scenes

N = 240


@pytest.fixture(scope="module")
def hard():
    return {s: world_scenes(s, N, 3) for s in ("train", "val", "test")}


def named_sets(data):
    return [frozenset(int(d) for d in row if d >= 0) for row in data["digits"]]


def test_easy_world_is_digit_scenes_byte_for_byte():
    a, b = world_scenes("val", 40, 5, world="easy"), digit_scenes("val", 40, 5, patch=8)
    assert set(a) == set(b)
    for key in b:
        assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key


def test_drop_in_keys_and_label_conventions(hard):
    d, old = hard["test"], digit_scenes("test", 4, 0, patch=8)
    for key, value in old.items():
        assert key in d and d[key].dtype == value.dtype and d[key].ndim == value.ndim, key
    L = max(HARD["n_digits"])
    assert d["digits"].shape == (N, L) and d["text"].shape == (N, L)
    np.testing.assert_array_equal(d["text"], np.where(d["digits"] >= 0, d["digits"] + 1, 0))
    np.testing.assert_array_equal(d["text_labels"], d["digits"])
    for i in range(N):
        for (start, end), digit in zip(d["word_spans"][i], d["digits"][i]):
            if digit >= 0:
                assert (d["speech_labels"][i, start:end] == digit).all()
        spoken = set(d["speech_labels"][i][d["speech_labels"][i] >= 0].tolist())
        assert spoken == set(d["digits"][i][d["digits"][i] >= 0].tolist())


def test_two_to_five_distinct_named_digits(hard):
    d = hard["train"]
    assert set(d["n_digits"].tolist()) == {2, 3, 4, 5}
    for row, k in zip(d["digits"], d["n_digits"]):
        assert len(set(row[:k].tolist())) == k and (row[k:] == -1).all()


def test_distractors_are_present_unnamed_and_labelled(hard):
    for d in hard.values():
        assert (d["n_distractors"] >= 1).all() and set(d["n_distractors"].tolist()) == {1, 2}
        for i in range(N):
            named = set(d["digits"][i][d["digits"][i] >= 0].tolist())
            dis = set(d["distractors"][i][d["distractors"][i] >= 0].tolist())
            assert len(dis) == d["n_distractors"][i] and not dis & named
            assert not dis & set(d["text_labels"][i].tolist()) and not dis & set(d["speech_labels"][i].tolist())
            assert set(d["image_labels"][i][d["image_labels"][i] >= 0].tolist()) == named | dis  # each owns a patch


def brute_labels(boxes, digits, height, width, patch, min_cover=0.25):
    """Pixel by pixel: each patch goes to the digit whose box covers most of its pixels."""
    labels = []
    for r in range(height // patch):
        for c in range(width // patch):
            cover = [sum(t <= y < b and le <= x < ri for y in range(r * patch, (r + 1) * patch)
                         for x in range(c * patch, (c + 1) * patch)) for t, le, b, ri in boxes]
            j = int(np.argmax(cover))
            labels.append(digits[j] if cover[j] >= min_cover * patch * patch else -1)
    return labels


def test_free_positions_off_the_grid_and_labels_follow_the_pixels(hard):
    d = hard["train"]
    tops = np.concatenate([d["boxes"][..., 0][d["digits"] >= 0], d["distractor_boxes"][..., 0][d["distractors"] >= 0]])
    lefts = np.concatenate([d["boxes"][..., 1][d["digits"] >= 0], d["distractor_boxes"][..., 1][d["distractors"] >= 0]])
    assert set((tops % 8).tolist()) == set(range(8)) and set((lefts % 8).tolist()) == set(range(8))
    assert np.mean((tops % 8 == 0) & (lefts % 8 == 0)) < 0.1, "most boxes must be off the 8-pixel patch grid"
    for i in range(20):
        k, m = d["n_digits"][i], d["n_distractors"][i]
        boxes = np.concatenate([d["boxes"][i, :k], d["distractor_boxes"][i, :m]])
        digits = np.concatenate([d["digits"][i, :k], d["distractors"][i, :m]])
        for j, (t, le, b, r) in enumerate(boxes):  # boxes do not overlap; ink sits inside its box
            for t2, le2, b2, r2 in boxes[j + 1:]:
                assert t >= b2 or t2 >= b or le >= r2 or le2 >= r
        assert brute_labels(boxes, digits, 32, 48, 8) == d["image_labels"][i].tolist()
        inked = np.zeros((32, 48), bool)
        for t, le, b, r in boxes:
            inked[t:b, le:r] = True
        assert (d["images"][i][~inked] == 0).all()
    lefts_named = np.where(d["digits"] >= 0, d["boxes"][..., 1], 10 ** 6)
    assert (np.diff(lefts_named, axis=1) >= 0).all(), "caption order: left to right"


def test_grid_positions_when_asked():
    d = world_scenes("train", 60, 0, world="hard_on_grid")
    assert (d["boxes"][..., :2][d["digits"] >= 0] % 8 == 0).all()
    assert (d["n_distractors"] >= 1).all() and d["digits"].shape[1] == 5  # the other properties stay hard
    near = world_scenes("train", 60, 0, free_positions=2)["boxes"][..., :2]
    off = np.minimum(near % 8, 8 - near % 8)[near >= 0]
    assert off.max() == 2 and (off > 0).any()


def test_heldout_sets_in_val_and_test_never_in_train(hard):
    held = {frozenset(s.tolist()) for k in HARD["n_digits"] for s in heldout_digit_sets(HARD["heldout_sets"], k)[1]}
    assert held, "some sets must be held out"
    assert not held & set(named_sets(hard["train"])) and not hard["train"]["heldout"].any()
    for split in ("val", "test"):
        sets, flags = named_sets(hard[split]), hard[split]["heldout"]
        assert [s in held for s in sets] == flags.tolist()
        assert 0.35 < flags.mean() < 0.65, f"{split}: about half the scenes name a held-out set"
    other_seed = world_scenes("train", N, 11)
    assert not held & set(named_sets(other_seed)), "held-out sets do not depend on the seed"


def test_every_voice_type_in_training_and_test_balanced(hard):
    names = speaker_names()
    all_types = {voice_type(n) for n in names}
    assert {voice_type(names[s]) for s in hard["train"]["speaker"]} == all_types
    assert "flite:slt" in all_types
    voices = [s for s, _ in split_voices("test")]
    counts = np.bincount(hard["test"]["speaker"][:len(voices) * (N // len(voices))], minlength=len(names))
    assert len(set(counts[voices].tolist())) == 1 and counts[voices][0] == N // len(voices)


def test_voice_split_keeps_takes_disjoint_and_espeak_speakers_disjoint():
    bank, names = speech_bank(), speaker_names()
    takes = {s: np.concatenate([t for _, t in split_voices(s)]) for s in ("train", "val", "test")}
    assert not set(takes["train"]) & set(takes["test"]) and not set(takes["val"]) & set(takes["test"])
    espeak = {s: {int(bank.take_speaker[t]) for t in takes[s] if not names[bank.take_speaker[t]].startswith("flite")}
              for s in takes}
    assert not espeak["train"] & espeak["test"] and not espeak["train"] & espeak["val"]
    assert sum(len(t) for t in takes.values()) == len(bank.take_speaker)


def test_deterministic_per_seed_split_and_index():
    a, b = world_scenes("test", 12, 4), world_scenes("test", 5, 4)
    for key in ("images", "image_labels", "digits", "distractors", "take", "boxes"):
        np.testing.assert_array_equal(a[key][:5], b[key][:5])
    n = b["speech_mask"].shape[1]
    np.testing.assert_array_equal(a["speech"][:5, :n], b["speech"])
    c = world_scenes("test", 5, 5)
    assert not np.array_equal(c["images"], b["images"])


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="world"):
        world_scenes("train", 2, 0, world="medium")
    with pytest.raises(ValueError, match="n_distractors"):
        world_scenes("train", 2, 0, n_digits=(5,), n_distractors=(6,))
    with pytest.raises(ValueError, match="heldout_share"):
        world_scenes("train", 2, 0, heldout_sets=0.0, heldout_share=0.5)
    with pytest.raises(ValueError, match="height, width"):
        world_scenes("train", 2, 0, height=8, width=16, n_digits=(5,))
    with pytest.raises(ValueError, match="width"):
        world_scenes("train", 2, 0, width=50)
    with pytest.raises(ValueError, match="split"):
        world_scenes("dev", 2, 0)


def test_docstrings_state_the_writer_overlap():
    assert "writers" in world.__doc__ and "shared" in world.__doc__
    assert "13 writers" in world.WRITER_NOTE


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"free_positions": "yes"}, ValueError, r"free_positions: expected True, False or a number of pixels >= 0"),
    ({"n_digits": ("a",)}, TypeError, r"n_digits: expected an int or a sequence of ints"),
    ({"heldout_sets": "x"}, TypeError, r"heldout_sets must be a finite number"),
])
def test_bad_world_settings_are_named(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        world_scenes("train", 2, 0, **kwargs)


def test_voice_type_wants_a_name():
    from minivq.data.world import voice_type
    with pytest.raises(TypeError, match="name must be a speaker name"):
        voice_type(None)
