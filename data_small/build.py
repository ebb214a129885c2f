"""Rebuild every file of data_small/ from scratch (offline, about a minute).

Not needed at run time or in CI: the built files are committed. Rebuilding
needs three tools that minivq itself never uses::

    apt-get update && apt-get install -y espeak-ng flite   # Debian / Ubuntu
    pip install scikit-learn                                 # sklearn.datasets.load_digits

then, from the repository root::

    python data_small/build.py            # writes data_small/*.npz, *.json, README table
    python data_small/build.py --out DIR  # the same into DIR (a copy of data_small/)

What it writes
--------------
digits_8x8.npz
    The 1797 UCI optical digits (8x8, values 0..16) that scikit-learn ships,
    with a per-class random split: 20% test, 10% val, 70% train.
speech_bank.npz
    For every *take* (one speaker with one setting of accent, speed and
    pitch) the ten words "zero".."nine", synthesized to WAV, resampled to
    16 kHz (read at ``sr * warp``, which scales pitch, formants and duration
    together, like a longer or shorter vocal tract), turned into a 40-band log-mel spectrogram (25 ms window, 10 ms hop;
    ``minivq.data.audio.log_mel``), peak-normalized to 0 dB, trimmed to the
    frames within 35 dB of the peak (plus 2 frames each side), clipped at
    -80 dB and stored as uint8 with ``db_lo`` and ``db_step``.
speakers.json
    Every speaker and take: the engine, voice, exact command and split.
checksums.json
    SHA-256 and size of the three files above; ``minivq.data`` verifies them.

Speakers, not takes, are split: an espeak-ng speaker is one family of voice
variants (``iven``, ``iven2``, ... are one speaker; ``f3`` is one), which keeps
its timbre across accents; a flite speaker is one recorded person (``kal`` and
``kal16`` are the same person). Train, val and
test share no speaker; the flite voice ``rms`` is val only and ``slt`` is
test only. Everything is drawn from ``np.random.default_rng(BUILD_SEED)``.
"""
import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly

HERE = Path(__file__).resolve().parent
if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))  # run from a checkout without installing
from minivq.data.audio import SAMPLE_RATE, log_mel, quantize_uint8

BUILD_SEED = 0
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPLITS = ("train", "val", "test")
DB_LO, DB_STEP = -80.0, 80.0 / 255.0
TRIM_DB, TRIM_MARGIN = -35.0, 2
ESPEAK_ACCENTS = ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp",
                  "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
# effects rather than voices: growl, announcer echo, whisper, a test stub
ESPEAK_EXCLUDED = {"Demonic", "announcer", "whisper", "whisperf", "fast"}
ESPEAK_TAKES, ESPEAK_HELD_OUT = 2, 12  # takes per variant; at least 12 variants for val and test
FLITE_SPEAKERS = (("awb", ("awb",) * 4, "train"), ("kal", ("kal", "kal", "kal16", "kal16"), "train"),
                  ("rms", ("rms",) * 4, "val"), ("slt", ("slt",) * 6, "test"))
README_BEGIN, README_END = "<!-- BEGIN FILES -->", "<!-- END FILES -->"


def save_npz(path, arrays):
    """np.savez_compressed with a fixed timestamp, so equal arrays give equal bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as f:
                np.lib.format.write_array(f, np.asarray(arr), allow_pickle=False)


def build_digits(rng):
    """The 8x8 UCI digits with a per-class 70/10/20 train/val/test split."""
    from sklearn.datasets import load_digits  # build-time only
    d = load_digits()
    images = d.images.astype(np.uint8)  # (1797, 8, 8), 0..16
    labels = d.target.astype(np.int64)
    split = np.zeros(len(labels), dtype=np.int64)  # 0 train, 1 val, 2 test
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test, n_val = int(round(0.2 * len(idx))), int(round(0.1 * len(idx)))
        split[idx[:n_test]] = 2
        split[idx[n_test:n_test + n_val]] = 1
    return {"images": images, "labels": labels, "split": split}


def espeak_variants():
    """Voice-variant ids of the installed espeak-ng (e.g. 'f3', 'Annie'), sorted."""
    out = subprocess.run(["espeak-ng", "--voices=variant"], capture_output=True, text=True,
                         check=True).stdout.splitlines()[1:]
    ids = {line.split()[4].split("/")[-1] for line in out if line.strip()}
    return sorted(ids - ESPEAK_EXCLUDED)


def voice_family(variant):
    """Speaker of an espeak-ng variant: numbered or robot versions of one voice
    (``iven``, ``iven2``; ``anika``, ``anikaRobot``) count as one speaker."""
    stem = re.sub(r"(robot)?\d*$", "", variant, flags=re.IGNORECASE).lower()
    return stem if len(stem) > 1 else variant  # f1..f5 and m1..m8 are distinct voices


def plan_takes(rng):
    """Speakers (with their split) and takes (with the exact synthesis command)."""
    families = {}
    for v in espeak_variants():
        families.setdefault(voice_family(v), []).append(v)
    speakers, takes, held_out = [], [], {"test": 0, "val": 0}
    for family in rng.permutation(sorted(families)):
        variants = families[family]
        split = next((s for s in ("test", "val") if held_out[s] < ESPEAK_HELD_OUT), "train")
        held_out[split] = held_out.get(split, 0) + len(variants)
        speakers.append({"name": f"espeak-ng:{family}", "engine": "espeak-ng", "split": split})
        for v in variants:
            for _ in range(ESPEAK_TAKES):
                accent = str(rng.choice(ESPEAK_ACCENTS))
                rate, pitch = int(rng.integers(130, 201)), int(rng.integers(25, 76))
                cmd = ["espeak-ng", "-v", f"{accent}+{v}", "-s", str(rate), "-p", str(pitch)]
                warp = round(float(rng.uniform(0.92, 1.08)), 3)  # vocal tract length
                takes.append({"speaker": len(speakers) - 1, "command": cmd, "warp": warp})
    for name, voices, split in FLITE_SPEAKERS:
        speakers.append({"name": f"flite:{name}", "engine": "flite", "split": split})
        for voice in voices:
            stretch = round(float(rng.uniform(0.85, 1.2)), 3)
            cmd = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch}"]
            if voice.startswith("kal"):  # only the diphone voice obeys a pitch target
                cmd += ["--setf", f"int_f0_target_mean={int(rng.integers(85, 140))}"]
            warp = round(float(rng.uniform(0.94, 1.06)), 3)  # read the samples at sr * warp
            takes.append({"speaker": len(speakers) - 1, "command": cmd, "warp": warp})
    return speakers, takes


def synthesize(command, word, tmpdir):
    """Run one TTS command for one word; return (float64 samples, sample rate)."""
    path = os.path.join(tmpdir, "w.wav")
    if command[0] == "espeak-ng":
        args = command + ["-w", path, word]
    else:
        args = command + ["-t", word, "-o", path]
    subprocess.run(args, check=True, capture_output=True)
    sr, x = wavfile.read(path)
    return x.astype(np.float64) / 32768.0, sr


def word_log_mel(x, sr, warp):
    """Resample to 16 kHz, log-mel, peak-normalize, trim and quantize one word."""
    sr_eff = int(round(sr * warp))  # warp != 1 shifts pitch and formants together
    g = np.gcd(SAMPLE_RATE, sr_eff)
    y = resample_poly(x, SAMPLE_RATE // g, sr_eff // g) if sr_eff != SAMPLE_RATE else x
    S = log_mel(y)  # (T, 40) dB
    S = S - S.max()
    loud = np.flatnonzero(S.max(axis=1) > TRIM_DB)
    a, b = max(loud[0] - TRIM_MARGIN, 0), min(loud[-1] + 1 + TRIM_MARGIN, len(S))
    return quantize_uint8(np.maximum(S[a:b], DB_LO), DB_LO, DB_STEP)


def build_speech(takes):
    """Render every (take, word); rendering r is take r // 10, word r % 10."""
    mels, word, take = [], [], []
    with tempfile.TemporaryDirectory() as tmpdir:
        for t, spec in enumerate(takes):
            for w, text in enumerate(WORDS):
                x, sr = synthesize(spec["command"], text, tmpdir)
                mels.append(word_log_mel(x, sr, spec["warp"]))
                word.append(w)
                take.append(t)
    lengths = np.array([len(m) for m in mels], dtype=np.int64)
    return {"mel": np.concatenate(mels, axis=0), "offsets": np.concatenate([[0], np.cumsum(lengths)]),
            "word": np.array(word, dtype=np.int64), "take": np.array(take, dtype=np.int64),
            "take_speaker": np.array([s["speaker"] for s in takes], dtype=np.int64),
            "db_lo": np.float64(DB_LO), "db_step": np.float64(DB_STEP)}


def tool_versions():
    """The versions of the synthesis tools, recorded in speakers.json."""
    espeak = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    # flite --version prints its version and exits with status 1
    flite = subprocess.run(["flite", "--version"], capture_output=True, text=True).stdout
    return {"espeak-ng": espeak.split(":")[1].split("Data")[0].strip(),
            "flite": flite.split("version:")[1].split("(")[0].strip()}


def describe(arrays):
    """One README row per array: name, shape, dtype."""
    return "; ".join(f"`{k}` {tuple(np.shape(v))} {np.asarray(v).dtype}" for k, v in arrays.items())


def write_readme_table(out, rows):
    """Replace the file table between the README markers."""
    readme = out / "README.md"
    text = readme.read_text()
    head, rest = text.split(README_BEGIN)
    _, tail = rest.split(README_END)
    table = ["| file | bytes | SHA-256 | contents |", "|---|---|---|---|"]
    table += [f"| `{f}` | {n} | `{h}` | {c} |" for f, n, h, c in rows]
    readme.write_text(head + README_BEGIN + "\n" + "\n".join(table) + "\n" + README_END + tail)


def main(out=HERE):
    """Build everything into ``out`` and print the sizes and the time taken."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(BUILD_SEED)
    digits = build_digits(rng)
    speakers, takes = plan_takes(rng)
    speech = build_speech(takes)
    speech["speaker_split"] = np.array([SPLITS.index(s["split"]) for s in speakers], dtype=np.int64)
    save_npz(out / "digits_8x8.npz", digits)
    save_npz(out / "speech_bank.npz", speech)
    meta = {"words": WORDS, "splits": SPLITS, "tools": tool_versions(),
            "speakers": speakers, "takes": takes}
    (out / "speakers.json").write_text(json.dumps(meta, indent=1) + "\n")
    files, rows = {}, []
    contents = {"digits_8x8.npz": describe(digits), "speech_bank.npz": describe(speech),
                "speakers.json": f"{len(speakers)} speakers, {len(takes)} takes"}
    for name in ("digits_8x8.npz", "speech_bank.npz", "speakers.json"):
        data = (out / name).read_bytes()
        files[name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        rows.append((name, len(data), files[name]["sha256"], contents[name]))
    (out / "checksums.json").write_text(json.dumps(files, indent=1, sort_keys=True) + "\n")
    write_readme_table(out, rows)
    total = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"{len(takes)} takes, {len(speech['word'])} renderings, {len(speech['mel'])} frames; "
          f"data_small {total / 1e6:.2f} MB; {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE,
                        help="folder to write into; it must hold a README.md with the table markers")
    main(parser.parse_args().out)
