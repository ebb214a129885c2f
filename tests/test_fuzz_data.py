"""Fuzz of the data functions (speech front end, toy pairs, spoken-digit scenes) and the small
helpers around the model: the documented result or a named ValueError/TypeError (issue 10)."""
from pathlib import Path

import numpy as np
import pytest
from fuzz.oracle import Invalid, WrongResult, arr, boolean, close, equal, f64, float_dtype, integer, need, num
from fuzz.runner import Spec, run_spec
from fuzz.values import floats
from hypothesis import strategies as st

from minivq import data as DATA
from minivq.encoders import modality_arrays
from minivq.model_check import tiny_config, tiny_inputs


def expect_hz(a):
    f = arr(a["f"], "f", "r")
    need((f >= 0).all(), "f")
    return lambda r: close(np.asarray(r), 2595 * np.log10(1 + f64(f) / 700), 2595 * np.log10(1 + f64(f) / 700) + 1,
                           np.float64)


def expect_mel(a):
    m = arr(a["m"], "m", "r")
    need((m >= 0).all(), "m")
    with np.errstate(over="ignore"):
        ref = 700 * (10 ** (f64(m) / 2595) - 1)
    need(np.isfinite(ref).all(), "m")
    return lambda r: close(np.asarray(r), ref, np.abs(ref) * 8 + 700, np.float64)


def draw_freqs(name, high):
    def draw(data):
        shape = data.draw(st.sampled_from([(), (3,), (2, 2)]))
        return {name: np.abs(floats(data, shape)) * high if shape else float(data.draw(st.floats(0, high)))}
    return draw


def draw_filterbank(data):
    sr = data.draw(st.sampled_from([16000, 8000, 22050.0]))
    return {"n_mels": data.draw(st.integers(1, 60)), "n_fft": data.draw(st.sampled_from([64, 256, 512])), "sr": sr,
            "fmin": data.draw(st.sampled_from([0.0, 20.0])), "fmax": data.draw(st.sampled_from([None, sr / 4]))}


def expect_filterbank(a):
    n_mels, n_fft = integer(a["n_mels"], "n_mels", 1, 4096), integer(a["n_fft"], "n_fft", 1, 1 << 20)
    sr = num(a["sr"], "sr", 1)
    fmin = num(a["fmin"], "fmin", 0)
    fmax = sr / 2 if a["fmax"] is None else num(a["fmax"], "fmax", 0)
    need(fmin < fmax <= sr / 2, "fmin", "fmax")
    mel = np.linspace(2595 * np.log10(1 + fmin / 700), 2595 * np.log10(1 + fmax / 700), n_mels + 2)
    need((np.diff(700 * (10 ** (mel / 2595) - 1)) > 0).all(), "fmin", "fmax")

    def check(r):
        if r.shape != (n_mels, n_fft // 2 + 1) or not np.isfinite(r).all() or r.min() < 0 or r.max() > 1:
            raise WrongResult(f"filterbank {r.shape}, range [{r.min()}, {r.max()}]")
    return check


def draw_log_mel(data):
    n = data.draw(st.integers(0, 2000))
    return {"wave": floats(data, (n,)) * 0.1, "sr": 16000, "n_mels": data.draw(st.integers(1, 40)),
            "win_ms": 25.0, "hop_ms": data.draw(st.sampled_from([10.0, 12.5])), "n_fft": 512, "floor": 1e-10}


def expect_log_mel(a):
    wave = arr(a["wave"], "wave", "r", ndim=1)
    need(np.abs(f64(wave)).max(initial=0) <= 1e100, "wave")
    sr = num(a["sr"], "sr", 1)
    win_ms, hop_ms = num(a["win_ms"], "win_ms", 0, low_open=True), num(a["hop_ms"], "hop_ms", 0, low_open=True)
    need(sr * max(win_ms, hop_ms) / 1000 <= 1 << 24, "win_ms", "hop_ms")
    win, hop = int(round(sr * win_ms / 1000)), int(round(sr * hop_ms / 1000))
    need(win >= 1 and hop >= 1, "win_ms", "hop_ms")
    n_fft = integer(a["n_fft"], "n_fft", 1, 1 << 20)
    need(n_fft >= win, "n_fft")
    floor = num(a["floor"], "floor", 1e-300)
    expect_filterbank({"n_mels": a["n_mels"], "n_fft": n_fft, "sr": sr, "fmin": 0.0, "fmax": None})
    T = 0 if len(wave) < win else 1 + (len(wave) - win) // hop

    def check(r):
        if r.shape != (T, a["n_mels"]) or not np.isfinite(r).all() or (r < 10 * np.log10(floor) - 1e-9).any():
            raise WrongResult(f"log-mel {r.shape}")
    return check


def draw_quantize(data):
    return {"x": floats(data, (5,)) * 20 - 40, "lo": -80.0, "step": data.draw(st.sampled_from([80 / 255, 1.0]))}


def expect_quantize(a):
    x = arr(a["x"], "x", "r")
    lo, step = num(a["lo"], "lo"), num(a["step"], "step", 0, low_open=True)
    with np.errstate(all="ignore"):
        ref = np.clip(np.rint((f64(x) - lo) / step), 0, 255).astype(np.uint8)
    return lambda r: equal(r, ref)


def draw_dequantize(data):
    return {"q": np.arange(0, 256, 37, dtype=np.uint8), "lo": -80.0, "step": 80 / 255,
            "dtype": data.draw(st.sampled_from([np.float32, np.float64]))}


def expect_dequantize(a):
    q = arr(a["q"], "q", "r")
    need(q.dtype == np.uint8, "q")
    dt = float_dtype(a["dtype"])
    lo, step = num(a["lo"], "lo"), num(a["step"], "step", 0, low_open=True)
    need(abs(lo) + 255 * step <= float(np.finfo(dt).max), "lo", "step")
    ref = lo + f64(q) * step
    return lambda r: close(r, ref, np.abs(lo) + np.abs(f64(q)) * step + 1e-30, dt)


def draw_toy(data):
    return {"n": data.draw(st.integers(1, 4)), "seed": data.draw(st.integers(0, 9)),
            "n_concepts": data.draw(st.integers(3, 6)), "max_concepts": data.draw(st.integers(1, 3)),
            "noise": data.draw(st.sampled_from([0.5, 0.0, 2]))}


def int_range(v, name, low):
    need(isinstance(v, (tuple, list)) and len(v) == 2, name)
    a, b = (integer(x, name, low) for x in v)
    need(a <= b, name)


def expect_toy(a):
    n = integer(a["n"], "n", 1, 1 << 20)
    integer(a["seed"], "seed", 0)
    C = integer(a["n_concepts"], "n_concepts", 1, 1 << 16)
    L = integer(a["max_concepts"], "max_concepts", 1, C)
    noise = num(a["noise"], "noise", 0, 1e30)
    need(n * ((4 * L + 3 * (L + 1)) * 16 + 16 * 16) <= 1 << 28, "n")  # at most 2^28 features in all
    del noise

    def check(r):
        if r["a"].shape[0] != n or r["concepts"].shape != (n, L) or not np.isfinite(r["a"]).all():
            raise WrongResult(f"toy pairs {r['a'].shape} {r['concepts'].shape}")
    return check


def draw_scenes(data):
    return {"split": data.draw(st.sampled_from(["train", "val", "test"])), "n": data.draw(st.integers(1, 2)),
            "seed": data.draw(st.integers(0, 5)), "patch": data.draw(st.sampled_from([4, 8])),
            "n_digits": data.draw(st.sampled_from([(2, 3), (1,)])), "distinct": data.draw(st.booleans())}


def expect_scenes(a):
    need(isinstance(a["split"], str) and a["split"] in ("train", "val", "test"), "split")
    n = integer(a["n"], "n", 1, 1 << 20)
    integer(a["seed"], "seed", 0)
    need(integer(a["patch"], "patch") in (1, 2, 4, 8), "patch")
    nd = a["n_digits"]
    need(isinstance(nd, (tuple, list)) and len(nd) >= 1, "n_digits")
    [integer(k, "n_digits", 1, 3) for k in nd]
    need(max(nd) * 8 <= 48, "width", "n_digits")
    boolean(a["distinct"], "distinct")

    def check(r):
        if r["images"].shape[0] != n or not np.isfinite(r["speech"]).all():
            raise WrongResult(f"scenes {r['images'].shape}")
    return check


def expect_split(a):
    need(isinstance(a["split"], str) and a["split"] in ("train", "val", "test"), "split")
    return lambda r: None if r[0].ndim == 3 else (_ for _ in ()).throw(WrongResult("images"))


def draw_modality_arrays(data):
    d = DATA.toy_pairs(3, 0)
    return {"data": d, "modality": data.draw(st.sampled_from(["a", "b"])),
            "rows": data.draw(st.sampled_from([slice(None), np.array([0, 2]), [1], 2]))}


def expect_modality_arrays(a):
    m = a["modality"]
    need(isinstance(m, str) and m in ("image", "speech", "text", "a", "b"), "modality")
    d = a["data"]
    need(isinstance(d, dict) and m in d and f"{m}_mask" in d, "data")
    refs = []
    for key in (m, f"{m}_mask", f"{m}_labels"):
        try:
            refs.append(np.asarray(d[key])[a["rows"]] if key in d else None)
        except Exception:
            raise Invalid("rows" if key == m else f"data[{key!r}]") from None
    return lambda r: [equal(x, y) for x, y in zip(r, refs, strict=True) if y is not None]


def draw_tiny(data):
    return {"modalities": data.draw(st.sampled_from([("image", "speech"), ("a", "b"), ("text", "image")])),
            "variant": data.draw(st.sampled_from(["summary", "vq", "full"]))}


def expect_tiny(a):
    from fuzz.model_contract import config_fields
    mods, variant = a["modalities"], a["variant"]
    from minivq.model_check import TINY
    config_fields({**vars(tiny_config()), **TINY, "modalities": mods, "variant": variant})
    return lambda r: equal(tuple(r.modalities), tuple(mods))


def run_tiny_inputs(cfg, rng, B):
    return tiny_inputs(cfg, rng, B)


def expect_tiny_inputs(a):
    from fuzz.model_contract import config
    cfg = config(a["cfg"])
    need(isinstance(a["rng"], np.random.Generator), "rng")
    B = integer(a["B"], "B", 1, 1 << 16)
    return lambda r: equal(sorted(r) == sorted(cfg.modalities) and all(len(x) == B for x, _ in r.values()), True)


SPECS = [
    Spec("hz_to_mel", DATA.hz_to_mel, draw_freqs("f", 8000), expect_hz),
    Spec("mel_to_hz", DATA.mel_to_hz, draw_freqs("m", 3000), expect_mel),
    Spec("mel_filterbank", DATA.mel_filterbank, draw_filterbank, expect_filterbank),
    Spec("log_mel", DATA.log_mel, draw_log_mel, expect_log_mel, weight=0.5),
    Spec("quantize_uint8", DATA.quantize_uint8, draw_quantize, expect_quantize),
    Spec("dequantize_uint8", DATA.dequantize_uint8, draw_dequantize, expect_dequantize),
    Spec("toy_pairs", DATA.toy_pairs, draw_toy, expect_toy, weight=0.5),
    Spec("digit_scenes", DATA.digit_scenes, draw_scenes, expect_scenes, weight=0.12),
    Spec("digit_images", DATA.digit_images, lambda d: {"split": d.draw(st.sampled_from(["train", "test"]))},
         expect_split, weight=0.2),
    Spec("modality_arrays", modality_arrays, draw_modality_arrays, expect_modality_arrays, weight=0.5),
    Spec("tiny_config", tiny_config, draw_tiny, expect_tiny, weight=0.5),
    Spec("tiny_inputs", run_tiny_inputs, lambda d: {"cfg": tiny_config(), "rng": np.random.default_rng(0),
                                                   "B": d.draw(st.integers(1, 4))}, expect_tiny_inputs, weight=0.3),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_fuzz(spec):
    run_spec(spec)


def test_the_functions_without_arguments():
    """data_dir, speech_bank and speaker_names take no argument: they answer, every time."""
    assert Path(DATA.data_dir()).is_dir()
    bank = DATA.speech_bank()
    assert bank.mel.dtype == np.uint8 and len(DATA.speaker_names()) == len(bank.speaker_split)
    with pytest.raises(ValueError, match="r must be an int"):
        bank.rendering_db(len(bank.word))
    with pytest.raises(ValueError, match="split must be one of"):
        bank.takes_of("dev")
