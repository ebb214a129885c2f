"""Tests of minivq.data: toy pairs, spoken-digit scenes, the log-mel front end, the loader.

The labels checked here are the ground truth of METHOD.md (LOC) and (CC): a
patch labelled d must lie inside the box of digit d, a frame labelled d inside
the span of the word d, and train/val/test must share no image and no speaker.
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from minivq.data import (
    DIGIT_WORDS,
    DataFileError,
    data_dir,
    dequantize_uint8,
    digit_images,
    digit_scenes,
    hz_to_mel,
    log_mel,
    mel_filterbank,
    mel_to_hz,
    quantize_uint8,
    speaker_names,
    speech_bank,
    toy_pairs,
)

FROZEN_SCENE_KEYS = {"images": np.float32, "image_mask": np.bool_, "image_labels": np.int64,
                     "speech": np.float32, "speech_mask": np.bool_, "speech_labels": np.int64,
                     "word_spans": np.int64, "text": np.int64, "text_mask": np.bool_,
                     "text_labels": np.int64, "digits": np.int64}
FROZEN_TOY_KEYS = {"a": np.float32, "a_mask": np.bool_, "a_labels": np.int64, "b": np.float32,
                   "b_mask": np.bool_, "b_labels": np.int64, "concepts": np.int64}


def digest(arrays):
    """SHA-256 over every array's key, dtype, shape and bytes (sorted keys)."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def scenes():
    return {split: digit_scenes(split, 60, seed=7) for split in ("train", "val", "test")}


# ---------------------------------------------------------------- determinism

def test_same_seed_same_bytes():
    assert digest(digit_scenes("train", 12, 3)) == digest(digit_scenes("train", 12, 3))
    assert digest(digit_scenes("train", 12, 3)) != digest(digit_scenes("train", 12, 4))
    assert digest(toy_pairs(12, 3)) == digest(toy_pairs(12, 3))
    assert digest(toy_pairs(12, 3)) != digest(toy_pairs(12, 4))


def test_same_bytes_across_processes():
    code = ("import sys; sys.path.insert(0, %r); from test_data import digest; "
            "from minivq.data import digit_scenes, toy_pairs; "
            "print(digest(digit_scenes('test', 15, 11)), digest(toy_pairs(15, 11)))"
            % os.path.dirname(__file__))
    expected = f"{digest(digit_scenes('test', 15, 11))} {digest(toy_pairs(15, 11))}"
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, check=True).stdout.strip()
        assert out == expected, f"process with PYTHONHASHSEED={hash_seed} drew other data"


def test_scene_i_does_not_depend_on_n():
    small, large = digit_scenes("val", 4, 5), digit_scenes("val", 9, 5)
    for key in ("images", "image_labels", "digits", "word_spans", "text", "speaker"):
        np.testing.assert_array_equal(small[key], large[key][:4], err_msg=key)
    T = small["speech"].shape[1]
    np.testing.assert_array_equal(small["speech"], large["speech"][:4, :T])


def test_splits_differ_for_the_same_seed(scenes):
    assert not np.array_equal(scenes["train"]["digits"], scenes["test"]["digits"])


# ---------------------------------------------------------------- shapes, masks, dtypes

@pytest.mark.parametrize("patch", [2, 4, 8])
def test_scene_shapes_and_dtypes(patch):
    d = digit_scenes("train", 5, 0, patch=patch)
    n, H, W = d["images"].shape
    T_img, T_sp = (H // patch) * (W // patch), d["speech"].shape[1]
    assert (n, H % patch, W % patch) == (5, 0, 0)
    for key, dtype in FROZEN_SCENE_KEYS.items():
        assert d[key].dtype == dtype, f"{key}: dtype {d[key].dtype}, expected {dtype}"
    expected = {"image_mask": (n, T_img), "image_labels": (n, T_img), "speech": (n, T_sp, 40),
                "speech_mask": (n, T_sp), "speech_labels": (n, T_sp), "word_spans": (n, 3, 2),
                "text": (n, 3), "text_mask": (n, 3), "text_labels": (n, 3), "digits": (n, 3)}
    for key, shape in expected.items():
        assert d[key].shape == shape, f"{key}: shape {d[key].shape}, expected {shape}"


def test_scene_masks_and_padding(scenes):
    d = scenes["train"]
    assert d["image_mask"].all()
    assert 0.0 <= d["images"].min() and d["images"].max() <= 1.0
    lengths = d["speech_mask"].sum(axis=1)
    np.testing.assert_array_equal(d["speech_mask"], np.arange(d["speech"].shape[1]) < lengths[:, None])
    assert lengths.max() == d["speech"].shape[1], "speech is padded to the longest caption"
    assert not d["speech"][~d["speech_mask"]].any(), "padded frames must be 0"
    assert (d["speech_labels"][~d["speech_mask"]] == -1).all()
    valid = d["speech"][d["speech_mask"]]
    assert abs(valid.mean()) < 0.5 and 0.5 < valid.std() < 1.5, "speech is roughly standardized"
    n_digits = (d["digits"] >= 0).sum(axis=1)
    assert set(n_digits) == {2, 3}
    np.testing.assert_array_equal(d["text_mask"], np.arange(3) < n_digits[:, None])


def test_max_frames_pads_and_rejects_too_short():
    d = digit_scenes("train", 3, 1, max_frames=400)
    assert d["speech"].shape == (3, 400, 40)
    with pytest.raises(ValueError, match="max_frames"):
        digit_scenes("train", 3, 1, max_frames=20)


@pytest.mark.parametrize("kwargs, name", [({"split": "dev"}, "split"), ({"patch": 3}, "patch"),
                                          ({"n": 0}, "n"), ({"seed": -1}, "seed"),
                                          ({"width": 20}, "width"), ({"n_digits": (4,)}, "n_digits")])
def test_scene_bad_arguments_are_named(kwargs, name):
    args = dict(split="train", n=2, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        digit_scenes(args.pop("split"), args.pop("n"), args.pop("seed"), **args)


# ---------------------------------------------------------------- label consistency

@pytest.mark.parametrize("patch", [2, 4, 8])
def test_patch_labels_lie_inside_their_digit(patch):
    d = digit_scenes("test", 40, 2, patch=patch)
    n, _, W = d["images"].shape
    cols = W // patch
    for i in range(n):
        for t, label in enumerate(d["image_labels"][i]):
            r, c = divmod(t, cols)  # patchify order: t = r * (W // patch) + c
            y0, x0 = r * patch, c * patch
            inside = [j for j, (top, left, bottom, right) in enumerate(d["boxes"][i])
                      if d["digits"][i, j] >= 0 and top <= y0 and y0 + patch <= bottom
                      and left <= x0 and x0 + patch <= right]
            expected = d["digits"][i, inside[0]] if inside else -1
            assert label == expected, f"scene {i} patch {t}: label {label}, box says {expected}"


def test_patch_labels_follow_patchify_order():
    layers = pytest.importorskip("minivq.layers")
    if not hasattr(layers, "patchify"):
        pytest.skip("minivq.layers.patchify is not there yet")
    d = digit_scenes("train", 20, 0, patch=4)
    patches, mask = layers.patchify(d["images"], 4)  # (n, T_img, 16)
    assert patches.shape[:2] == d["image_labels"].shape and mask.all()
    assert not patches[d["image_labels"] == -1].any(), "background patches hold no ink"
    inked = patches[d["image_labels"] >= 0].any(axis=-1).mean()
    assert inked > 0.8, f"only {inked:.2f} of the digit patches hold ink"


def test_images_show_the_labelled_glyphs(scenes):
    z_images, z_labels, _ = digit_images("test")
    all_ids = np.concatenate([digit_images(s)[2] for s in ("train", "val", "test")])
    d = scenes["test"]
    lookup = dict(zip(digit_images("test")[2], range(len(z_labels))))
    for i in range(len(d["digits"])):
        ink = np.zeros(d["images"].shape[1:], dtype=bool)
        for j in np.flatnonzero(d["digits"][i] >= 0):
            top, left, bottom, right = d["boxes"][i, j]
            row = lookup[d["image_ids"][i, j]]
            assert z_labels[row] == d["digits"][i, j]
            np.testing.assert_allclose(d["images"][i, top:bottom, left:right], z_images[row] / 16.0)
            ink[top:bottom, left:right] = True
        assert not d["images"][i][~ink].any(), "no ink outside the digit boxes"
    assert np.isin(d["image_ids"][d["image_ids"] >= 0], all_ids).all()


def test_frame_labels_lie_inside_their_word(scenes):
    bank = speech_bank()
    for d in scenes.values():
        for i in range(len(d["digits"])):
            k = int((d["digits"][i] >= 0).sum())
            spans = d["word_spans"][i, :k]
            assert (spans[1:, 0] > spans[:-1, 1]).all(), "words are ordered and separated by silence"
            assert spans[-1, 1] < d["speech_mask"][i].sum()
            expected = np.full(d["speech_labels"].shape[1], -1)
            for (start, end), digit, r in zip(spans, d["digits"][i], d["rendering_ids"][i]):
                expected[start:end] = digit
                assert bank.word[r] == digit, "the rendering says the labelled word"
                assert end - start == bank.offsets[r + 1] - bank.offsets[r]
                assert bank.take_speaker[bank.take[r]] == d["speaker"][i], "one speaker per caption"
            np.testing.assert_array_equal(d["speech_labels"][i], expected)


def test_text_names_the_digits_in_order(scenes):
    d = scenes["val"]
    np.testing.assert_array_equal(d["text"], np.where(d["digits"] >= 0, d["digits"] + 1, 0))
    np.testing.assert_array_equal(d["text_labels"], d["digits"])
    assert (d["text_mask"] == (d["text"] > 0)).all()
    distinct = [len(set(row[row >= 0])) == (row >= 0).sum() for row in d["digits"]]
    assert all(distinct), "distinct=True: no digit repeats within a scene"


# ---------------------------------------------------------------- disjoint splits

def test_splits_share_no_image():
    ids = {s: set(digit_images(s)[2]) for s in ("train", "val", "test")}
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["val"] and not ids["val"] & ids["test"]
    assert sum(len(v) for v in ids.values()) == 1797


def test_splits_share_no_speaker(scenes):
    bank = speech_bank()
    speakers = {s: set(bank.take_speaker[bank.takes_of(s)]) for s in ("train", "val", "test")}
    assert not speakers["train"] & speakers["test"] and not speakers["train"] & speakers["val"]
    assert not speakers["val"] & speakers["test"]
    names = speaker_names()
    assert "flite:slt" in {names[s] for s in speakers["test"]}, "a flite voice is held out for test"
    for split, d in scenes.items():
        assert set(d["speaker"]) <= speakers[split], f"{split} scenes use {split} speakers only"


def test_bank_has_about_200_renderings_per_word():
    counts = np.bincount(speech_bank().word, minlength=10)
    assert len(counts) == len(DIGIT_WORDS) and (counts >= 150).all(), counts


# ---------------------------------------------------------------- files and checksums

@pytest.fixture
def data_copy(tmp_path, monkeypatch):
    folder = tmp_path / "data_small"
    shutil.copytree(data_dir(), folder)
    monkeypatch.setenv("MINIVQ_DATA_DIR", str(folder))
    return folder


def test_corrupted_file_raises_a_clear_error(data_copy):
    path = data_copy / "speech_bank.npz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataFileError, match=r"speech_bank\.npz .*damaged"):
        digit_scenes("train", 2, 0)


def test_missing_file_raises_a_clear_error(data_copy):
    (data_copy / "digits_8x8.npz").unlink()
    with pytest.raises(DataFileError, match=r"digits_8x8\.npz is missing"):
        digit_scenes("train", 2, 0)


def test_data_dir_override_must_exist(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIVQ_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataFileError, match="MINIVQ_DATA_DIR"):
        data_dir()


def test_data_small_is_under_8_mb_and_documented():
    folder = data_dir()
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert total < 8e6, f"data_small holds {total / 1e6:.2f} MB, expected < 8 MB"
    readme = (folder / "README.md").read_text()
    for name, entry in json.loads((folder / "checksums.json").read_text()).items():
        assert entry["sha256"] in readme and name in readme, f"README.md lacks {name}'s checksum"


def test_runs_without_the_build_tools():
    code = ("import sys; from minivq.data import digit_scenes, toy_pairs; digit_scenes('train', 3, 0); "
            "toy_pairs(3, 0); print('sklearn' in sys.modules)")
    env = dict(os.environ, PATH="")  # no espeak-ng, no flite
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False", "scikit-learn must not be needed at run time"


# ---------------------------------------------------------------- log-mel front end

def test_mel_filterbank_is_a_set_of_triangles():
    fb = mel_filterbank(40, 512, 16000)
    assert fb.shape == (40, 257)
    assert fb.min() >= 0.0 and fb.max() <= 1.0 + 1e-12
    assert (fb.sum(axis=1) > 0).all(), "every band covers some FFT bin"
    peaks = fb.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all(), "band centres increase with the band index"


def test_log_mel_finds_a_tone_and_counts_frames():
    sr, f0 = 16000, 1000.0
    wave = np.sin(2 * np.pi * f0 * np.arange(sr // 2) / sr)  # 0.5 s
    S = log_mel(wave, sr)
    assert S.shape == (1 + (sr // 2 - 400) // 160, 40)
    band = mel_filterbank()[:, int(round(f0 * 512 / sr))].argmax()
    assert (S.argmax(axis=1) == band).all(), "the loudest band holds 1 kHz"


def test_uint8_round_trip_is_within_half_a_step():
    x = np.linspace(-80.0, 0.0, 1001)
    step = 80.0 / 255.0
    back = dequantize_uint8(quantize_uint8(x, -80.0, step), -80.0, step, np.float64)
    assert np.abs(back - x).max() <= step / 2 + 1e-9
    with pytest.raises(TypeError, match="uint8"):
        dequantize_uint8(x, -80.0, step)


# ---------------------------------------------------------------- toy pairs

def test_toy_shapes_dtypes_and_masks():
    t = toy_pairs(20, 0)
    for key, dtype in FROZEN_TOY_KEYS.items():
        assert t[key].dtype == dtype, f"{key}: dtype {t[key].dtype}, expected {dtype}"
    n, T_a, _ = t["a"].shape
    assert t["a_mask"].shape == t["a_labels"].shape == (n, T_a)
    assert t["b"].shape[:2] == t["b_mask"].shape == t["b_labels"].shape
    assert not t["a"][~t["a_mask"]].any() and (t["a_labels"][~t["a_mask"]] == -1).all()
    assert t["b_mask"].all() and t["concepts"].shape == (n, 3)


def test_toy_labels_match_concepts_and_spans():
    t = toy_pairs(30, 1, cells_per_concept=2)
    for i in range(30):
        concepts = t["concepts"][i][t["concepts"][i] >= 0]
        assert 1 <= len(concepts) <= 3 and len(set(concepts)) == len(concepts)
        for c, (start, end) in zip(concepts, t["a_spans"][i]):
            assert (t["a_labels"][i, start:end] == c).all() and (t["a_labels"][i] == c).sum() == end - start
            assert (t["b_labels"][i] == c).sum() == 2
        assert set(t["b_labels"][i]) - {-1} == set(concepts)


def test_toy_prototypes_are_shared_across_seeds():
    means = []
    for seed in (0, 1):
        t = toy_pairs(300, seed, noise=0.3)
        means.append(np.stack([t["a"][t["a_labels"] == c].mean(axis=0) for c in range(8)]))
    assert np.abs(means[0] - means[1]).max() < 0.2, "concept c looks the same in every dataset"


# ---------------------------------------------------------------- issue 10: arguments named

@pytest.mark.parametrize("call, exc, words", [
    (lambda: hz_to_mel("abc"), TypeError, "f must be a real-valued"),
    (lambda: hz_to_mel(-1.0), ValueError, "f must be >= 0"),
    (lambda: mel_to_hz(1e6), ValueError, "m must be at most"),
    (lambda: mel_filterbank(n_mels=0), ValueError, "n_mels must be an int"),
    (lambda: mel_filterbank(sr="16k"), TypeError, "sr must be a finite number"),
    (lambda: log_mel(np.ones((2, 400))), ValueError, "wave must be 1-D"),
    (lambda: log_mel(np.full(800, 1e200)), ValueError, r"wave must hold samples with \|wave\| <= 1e100"),
    (lambda: log_mel(np.ones(800), floor=0.0), ValueError, "floor must be"),
    (lambda: quantize_uint8(np.ones(3), 0.0, step=0.0), ValueError, "step must be a finite number > 0"),
    (lambda: dequantize_uint8(np.ones(3, np.uint8), 0.0, 1e38, np.float32), ValueError, "lo and step must keep"),
    (lambda: dequantize_uint8(np.ones(3, np.uint8), 0.0, 1.0, "abc"), TypeError, "dtype must be float32"),
    (lambda: toy_pairs(2, 0, noise=np.inf), ValueError, "noise must be a finite number"),
    (lambda: toy_pairs(2, 0, frames_per_concept=(3, 2)), ValueError, "frames_per_concept must be an inclusive"),
    (lambda: toy_pairs(2, 0, grid="4x4"), TypeError, "grid must be a pair of ints"),
    (lambda: toy_pairs(2.0, 0), TypeError, "n must be an int"),
    (lambda: digit_scenes("train", 2, 0, noise_db=(0.0, 1e5)), ValueError, "noise_db must be a finite number"),
    (lambda: digit_scenes("train", 2, 0, distinct="yes"), TypeError, "distinct must be True or False"),
    (lambda: digit_scenes("train", 2, 0, n_digits=3), TypeError, "n_digits must be a non-empty tuple"),
    (lambda: digit_scenes(None, 2, 0), ValueError, "split must be one of"),
])
def test_bad_arguments_name_the_argument(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


def test_edges_the_fuzz_found():
    x = np.array([-40.0, -40.2, -39.84313725490196], np.float64)
    step = 80 / 255
    np.testing.assert_array_equal(quantize_uint8(x.astype(np.float32), -80.0, step), quantize_uint8(x, -80.0, step))
    assert isinstance(dequantize_uint8(np.uint8(3) * np.ones((), np.uint8), 0.0, 1.0), np.ndarray)
    with pytest.raises(ValueError, match="sr must be a finite number >= 1"):
        mel_filterbank(sr=1e-320)
    with pytest.raises(ValueError, match="ask for fewer or smaller pairs"):
        toy_pairs(1 << 20, 0)
    with pytest.raises(ValueError, match="win_ms and hop_ms must span at most"):
        log_mel(np.ones(1000), hop_ms=1e30)


def test_numpy_integers_are_plain_ints_inside():
    d = digit_scenes("train", 1, 0, patch=np.int8(4))  # int8 arithmetic wrapped: "could not broadcast"
    assert d["image_mask"].shape == (1, 48)
    assert toy_pairs(np.int8(2), np.int8(0))["a"].shape[0] == 2
