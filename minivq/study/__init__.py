"""``minivq study``: the paper's three claims, each against its strongest baseline, over N seeds.

Two phases, each a list of independent runs (:func:`minivq.study.runs.run_job`)
spread over worker processes: tuning on val (every variant, the same grid),
then the seed runs scored on test. The protocol and the primary endpoints
are written to study.md before the first run; study.json, study.md and the
figures are rewritten when the runs are done (:mod:`minivq.study.report`).
Every run is a pure function of its settings and seed, so the numbers do
not depend on ``--jobs``, and ``--rerun SEED`` retrains the runs of one seed
and checks them against the study.json already written.
"""
import argparse
import json
import math
import os
import shutil
import signal
import tempfile
import textwrap
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..cli.checks import check_memory
from ..cli.parallel import JobRunner
from ..cli.progress import format_duration, say
from ..config import ModelConfig
from ..data import speaker_names
from ..data.bank import MAX_SCENES
from ..data.world import WRITER_NOTE, split_voices, world_settings
from ..io.atomic import atomic_write_text, check_writable_folder
from ..report import jsonable
from . import report as rep
from .analysis import VARIANTS, analyse, tune_choices, tuned_arms
from .report import lr_grid
from .runs import run_job

__all__ = ["DEFAULT", "QUICK", "add_parser", "run", "make_jobs", "epoch_grid", "tune_choices"]

#: The default study (about 12.5 minutes on 2 idle cores with --jobs 2). The budget is 200 epochs because
#: at 100 the full method chose the last epoch on val (the summary and vq arms peak at 60-80).
DEFAULT = {"world": "hard_on_grid", "n_train": 2000, "n_val": 500, "n_test": 500, "n_curve": 200, "n_kmeans": 500,
           "epochs": 200, "batch_size": 64, "lr_grid": [1e-3], "tune_seeds": [1000],
           "lambdas": [0.1, 0.3, 1.0, 3.0], "model": {}}
#: ``--quick``: seconds, every code path (for tests).
QUICK = {**DEFAULT, "n_train": 64, "n_val": 32, "n_test": 32, "n_curve": 16, "n_kmeans": 16, "epochs": 2,
         "batch_size": 16, "lr_grid": [1e-3, 3e-3], "model": {"D": 8, "K": 8, "hidden": 16, "embed_dim": 16}}
ARMS = {"image_speech": ("image", "speech"), "image_text": ("image", "text")}

EPILOG = """examples:
  minivq study                        # 10 seeds, the committed study/ (about 12.5 minutes, 2 cores)
  minivq study --quick --seeds 2 --out /tmp/s   # seconds: every code path
  minivq study --rerun 3              # retrain seed 3 and check it against study/study.json
  minivq study --seeds 3 --no-image-text --codebook-sizes 64 128 --train-sizes 500 --off-grid \\
      --out /tmp/sec               # secondary arms, as study/secondary (about 14 minutes)
  minivq study --seeds 3 --no-image-text --off-grid-window --window-train-size 8000 \\
      --epochs 60 --out /tmp/fw    # free positions, as study/free_window_8000 (about 30 minutes)"""


def _int_at_least(low):
    """An argparse type: an int >= ``low``, with the expected value in the error (not the function's name)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an int >= {low}, got {text!r}")
        return value
    return parse


_positive, _seed = _int_at_least(1), _int_at_least(0)


def add_parser(subparsers, parents=(), **kwargs):
    """Register ``minivq study`` on an argparse subparsers object; returns the parser.

    ``parents`` and ``kwargs`` go to ``add_parser`` (``minivq/cli.py`` gives
    its ``--debug`` parent and its help formatter).
    """
    p = subparsers.add_parser(
        "study", help="test the paper's claims over N seeds, each against its strongest baseline",
        description=textwrap.fill(
            "Train summary, vq and full over N seeds in the hard_on_grid world (every variant tuned on val by the "
            "same grid, the same budget), score the pre-stated primary endpoints on test with paired 95% "
            "CIs and sign counts, and write study.json, study.md and figures to --out.", 79),
        epilog=EPILOG, parents=list(parents), **kwargs)
    p.add_argument("--seeds", type=_positive, default=10, help="number of seeds (0..N-1)")
    p.add_argument("--out", default="study", help="output folder (created if needed)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and 2 epochs: seconds, for tests")
    p.add_argument("--jobs", type=_positive, default=2, help="worker processes (results do not depend on it)")
    p.add_argument("--epochs", type=_positive, default=None,
                   help=f"the training budget: each variant trains the number of epochs up to it that is best "
                   f"on val (default: {DEFAULT['epochs']}, {QUICK['epochs']} with --quick)")
    p.add_argument("--no-image-text", action="store_true", help="skip the image-text arm (secondary)")
    p.add_argument("--codebook-sizes", type=_positive, nargs="*", default=[], help="secondary arms: other K")
    p.add_argument("--train-sizes", type=_positive, nargs="*", default=[], help="secondary arms: other n_train")
    p.add_argument("--off-grid", action="store_true",
                   help="secondary arm: digits at free pixel positions (world 'hard'), --extra-seeds seeds")
    p.add_argument("--off-grid-window", action="store_true",
                   help="secondary arm: digits at free pixel positions with an image encoder that looks for its "
                   "digit in a 16-pixel window around each cell, tuned on its own (lr in {0.001, 0.003}), "
                   "--extra-seeds seeds")
    p.add_argument("--window-train-size", type=_positive, default=None, metavar="N",
                   help="training pairs of the --off-grid-window arm (default: the primary arm's, 2000); free "
                   "positions need more data than the grid")
    p.add_argument("--extra-seeds", type=_positive, default=3, help="seeds of each secondary arm")
    p.add_argument("--rerun", type=_seed, nargs="+", default=None, metavar="SEED",
                   help="retrain these seeds with the settings of --out/study.json and check every number")
    if not any(a.dest == "debug" for parent in parents for a in parent._actions):
        p.add_argument("--debug", action="store_true", help="show the traceback of an error (or MINIVQ_DEBUG=1)")
    p.set_defaults(func=run)
    return p


def settings_from(args):
    """The study's settings: DEFAULT or QUICK with the command's overrides."""
    s = json.loads(json.dumps(QUICK if args.quick else DEFAULT))  # a deep copy
    if args.epochs is not None:
        s["epochs"] = args.epochs
    s["epoch_grid"] = epoch_grid(s["epochs"])
    s["arms"] = {"image_speech": {"modalities": list(ARMS["image_speech"]), "model": {}, "n_train": s["n_train"]}}
    if not args.no_image_text:
        s["arms"]["image_text"] = {"modalities": list(ARMS["image_text"]), "model": {}, "n_train": s["n_train"]}
    for K in args.codebook_sizes:
        s["arms"][f"image_speech_k{K}"] = {"modalities": list(ARMS["image_speech"]), "model": {"K": K},
                                           "n_train": s["n_train"], "extra": True}
    for n in args.train_sizes:
        s["arms"][f"image_speech_n{n}"] = {"modalities": list(ARMS["image_speech"]), "model": {},
                                           "n_train": n, "extra": True}
    if args.off_grid:
        s["arms"]["image_speech_off_grid"] = {"modalities": list(ARMS["image_speech"]), "model": {},
                                              "n_train": s["n_train"], "world": "hard", "extra": True}
    _check_arm_options(args, s)
    if args.window_train_size is not None and not args.off_grid_window:
        raise ValueError(f"--window-train-size {args.window_train_size} sizes the --off-grid-window arm: "
                         "add --off-grid-window, or drop it")
    if args.off_grid_window:
        s["arms"]["image_speech_free_window"] = {
            "modalities": list(ARMS["image_speech"]), "model": {"image_window": 16, "image_stride": 2},
            "n_train": args.window_train_size or s["n_train"], "world": "hard", "extra": True, "own_tuning": True,
            "lr_grid": sorted(set(s["lr_grid"]) | {1e-3, 3e-3})}
    s["n_seeds"], s["extra_seeds"] = args.seeds, min(args.extra_seeds, args.seeds)
    return s


def _check_arm_options(args, s):
    """--train-sizes and --window-train-size (scenes the generator can make and the memory can hold) and
    --codebook-sizes (a K ModelConfig takes), checked before anything is written: they would fail after the
    tuning runs otherwise."""
    sizes = [("--train-sizes", n) for n in args.train_sizes]
    if args.window_train_size is not None:
        sizes.append(("--window-train-size", args.window_train_size))
    for option, n in sizes:
        if n > MAX_SCENES:
            raise ValueError(f"{option}: expected at most {MAX_SCENES} training scenes, got {n}")
        check_memory(f"{option} {n}", n + s["n_val"])
    for K in args.codebook_sizes:
        try:
            ModelConfig(**{**s["model"], "K": K})
        except (TypeError, ValueError) as e:
            raise ValueError(f"--codebook-sizes {K}: {e}") from None


def _scene_counts(s):
    """'2000 scenes', or with an arm of its own size '2000 scenes (image_speech_free_window: 8000)'."""
    own = [f"{arm}: {a['n_train']}" for arm, a in s["arms"].items() if a["n_train"] != s["n_train"]]
    return f"{s['n_train']} scenes" + (f" ({', '.join(own)})" if own else "")


def epoch_grid(epochs):
    """The ten (or fewer) epoch counts tried on val: evenly spaced up to the budget."""
    return sorted({max(1, round(epochs * k / 10)) for k in range(1, 11)})


def make_jobs(s, arm, variant, seed, lr, split, epochs=None, score_epochs=()):
    """The job dict of one run (see :mod:`minivq.study.runs`); epochs default: the budget."""
    a = s["arms"][arm]
    return {"arm": arm, "variant": variant, "seed": seed, "data_seed": seed, "lr": lr, "split": split,
            "modalities": tuple(a["modalities"]), "world": a.get("world", s["world"]), "n_train": a["n_train"],
            "n_val": s["n_val"], "n_test": s["n_test"], "n_curve": s["n_curve"], "n_kmeans": s["n_kmeans"],
            "epochs": epochs or s["epochs"], "score_epochs": list(score_epochs), "batch_size": s["batch_size"],
            "model": {**s["model"], **a["model"]}, "lambdas": s["lambdas"]}


def _line(phase, done, total, rec, eta):
    what = f"{rec['arm']} {rec['variant']} seed {rec['seed']} lr {rec['lr']:g}, {rec['epochs']} epochs"
    if rec["diverged"]:
        return f"[{phase} {done}/{total}] {what}: diverged ({rec['error']}); ETA {format_duration(eta)}"
    m = rec["metrics"]
    extra = f", LOC {m['loc_code_to_image']:.3f}" if "loc_code_to_image" in m else ""
    return (f"[{phase} {done}/{total}] {what}: {rec['split']} set R@1 {m['set_mean_r1']:.3f}{extra} "
            f"({rec['seconds']:.0f}s); ETA {format_duration(eta)}")


def _cost(job):
    """A rough relative cost, for the ETA before any run of a kind has finished."""
    window = 3.0 if job["model"].get("image_window") else 1.0  # the window image encoder: 3 times an epoch
    return (1.0 if job["variant"] == "summary" else 2.2) * (0.3 if "speech" not in job["modalities"] else 1.0) \
        * window * job["n_train"] * job["epochs"]


_SCENES_PREFIX = "minivq-study-data-"


def _alive(pid):
    """False only when no process ``pid`` exists (another user's, or no way to tell: alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass
    return True


@contextmanager
def scenes_folder():
    """A temporary folder for the scenes the workers share (:func:`minivq.study.runs.load`), always removed.

    Removed when the block ends, on an error, on Ctrl-C and on SIGTERM (turned into SystemExit while
    the block runs). A study killed outright (SIGKILL) cannot remove it: the next study removes the
    folders whose process is gone (their names carry its pid).
    """
    root = Path(tempfile.gettempdir())
    for old in root.glob(f"{_SCENES_PREFIX}*-*"):
        pid = old.name[len(_SCENES_PREFIX):].split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    previous = None
    if threading.current_thread() is threading.main_thread():
        def stop(signum, frame):
            raise SystemExit(128 + signum)
        previous = signal.signal(signal.SIGTERM, stop)
    try:
        with tempfile.TemporaryDirectory(prefix=f"{_SCENES_PREFIX}{os.getpid()}-") as folder:
            yield folder
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run_jobs(jobs, n_workers, phase, eta_after=0.0):
    """Run every job in ``n_workers`` processes (:class:`minivq.cli.parallel.JobRunner`); records in job order.

    One progress line per finished run, with the ETA of this phase plus ``eta_after`` (cost units of
    the phases still to come, see :func:`_cost`).
    """
    n_workers = min(n_workers, len(jobs))
    say(f"minivq study: {phase}: {len(jobs)} runs on {n_workers} worker process{'es' * (n_workers > 1)}")
    order = sorted(range(len(jobs)), key=lambda i: -_cost(jobs[i]))  # longest first
    t0, records, done_cost = time.perf_counter(), [None] * len(jobs), 0.0
    total_cost = sum(_cost(j) for j in jobs)
    with scenes_folder() as cache, JobRunner(n_workers) as runner:
        # each seed's scenes are made once and shared by the workers through `cache` (deleted at the end)
        for k, rec in runner.results(run_job, [{**jobs[i], "data_cache": cache} for i in order]):
            i = order[k]
            records[i], done_cost = rec, done_cost + _cost(jobs[i])
            rate = (time.perf_counter() - t0) / done_cost  # seconds per cost unit, all workers together
            eta = rate * (total_cost - done_cost + eta_after)
            say(_line(phase, sum(r is not None for r in records), len(jobs), rec, eta))
    return records


def seed_jobs(s, choices, seeds):
    """The test runs: every arm, variant and seed (secondary arms: the first extra_seeds).

    An arm tuned on its own (:func:`minivq.study.analysis.tuned_arms`) uses its own choices; the other
    secondary arms reuse those of the image-speech arm.
    """
    jobs, own = [], tuned_arms(s)
    for arm, a in s["arms"].items():
        tuned = choices[arm if arm in own else "image_speech"]
        for seed in seeds:
            if a.get("extra") and seed >= s["extra_seeds"]:
                continue
            jobs += [make_jobs(s, arm, v, seed, tuned["lr"][v], "test", tuned["epochs"][v]) for v in VARIANTS]
    return jobs


def _world_info(s):
    ws = world_settings(s["world"])
    names = speaker_names()
    return {"settings": ws, "writers": WRITER_NOTE,
            "test_voices": ", ".join(names[sp] for sp, _ in split_voices("test", ws["voice_split"]))}


def _left_out(s):
    out = [f"only the number of epochs (up to {s['epochs']}) and the learning rate (from {s['lr_grid']}) are "
           "tuned; K, tau, tau_c and lambda_cmcm are the ModelConfig defaults for every variant"]
    if not any(k.startswith("image_speech_k") for k in s["arms"]):
        out.append("other codebook sizes (secondary; `minivq study --codebook-sizes 64 128`)")
    if not any(k.startswith("image_speech_n") for k in s["arms"]):
        out.append("other training-set sizes (secondary; `minivq study --train-sizes 500 1000`)")
    if "image_speech_off_grid" not in s["arms"] and "image_speech_free_window" not in s["arms"]:
        out.append("digits off the patch grid (world 'hard'; secondary arm with --off-grid): measured while building "
                   "the study (summary model, set-level R@1 on 300 val scenes, seed 0), the per-patch image encoder "
                   "stays at 0.01-0.03 for 100 epochs there (with 4-pixel patches too, after 30 epochs) and learns "
                   "half as much as on the grid 1 pixel off it (0.03-0.05 after 30 epochs against 0.09); with a "
                   "16-pixel window per cell (ModelConfig image_window=16, image_stride=2) it peaks at 0.063 "
                   "(lr 3e-3, epoch 50), at three times the cost of an epoch")
    if "image_text" not in s["arms"]:
        out.append("the image-text arm (dropped with --no-image-text)")
    return out


def _tuning_summary(choices):
    lines = []
    for arm, c in choices.items():
        for v, lr in c["lr"].items():
            lam = f", lambda {c['lambda'][v]:g}" if v in c["lambda"] else ""
            best = max(c["val"][v]["set_mean_r1"].values())
            lines.append(f"{arm} {v}: lr {lr:g}, {c['epochs'][v]} epochs{lam} (val set-level R@1 {best:.3f})")
        own, summary = (c["val"][v]["loc_dense_to_image"] for v in ("full", "summary"))
        lines.append(f"{arm}: claim-3 dense baseline on val: {c['claim3_baseline']} (full's own units "
                     f"{own:.3f}, summary's {summary:.3f})")
    return lines


def _write(out, payload, final):
    rep.write_json(out / "study.json", payload)
    if final:
        rep.plot_differences(payload["results"]["primary"], out / "paired_differences.png")
        rep.plot_curves(payload["results"]["curves"], out / "learning_curves.png", payload["tuning"]["choices"])
        atomic_write_text(out / "study.md", rep.markdown(payload))


def run(args):
    """Run the study (or ``--rerun`` seeds of an existing one); see the module docstring."""
    out = Path(args.out)
    if args.rerun is not None:
        return rerun(args, out)
    s, t0, seeds = settings_from(args), time.perf_counter(), list(range(args.seeds))  # its errors come first
    problem = check_writable_folder(out, create=True)
    if problem:
        raise ValueError(f"--out: {problem}")
    from .. import __version__
    _check_not_another_study(out, s)
    payload = {"minivq_version": __version__, "command": " ".join(["minivq"] + list(getattr(args, "argv", ["study"]))),
               "n_seeds": args.seeds, "jobs": args.jobs, "settings": s, "protocol": rep.protocol(s, args.seeds),
               "world": _world_info(s), "left_out": _left_out(s)}
    atomic_write_text(out / "study.md", f"# minivq study (running)\n\n{payload['protocol']}\nResults pending.\n")
    say(f"minivq study: {len(s['arms'])} arms ({', '.join(s['arms'])}) x 3 variants x {args.seeds} seeds, "
        f"up to {s['epochs']} epochs on {_scene_counts(s)}; protocol written to {out / 'study.md'}")
    tune = [make_jobs(s, arm, v, seed, lr, "val", score_epochs=s["epoch_grid"]) for arm in tuned_arms(s)
            for v in VARIANTS for lr in lr_grid(s, arm) for seed in s["tune_seeds"]]
    guess = {"lr": dict.fromkeys(VARIANTS, 0.0), "epochs": dict.fromkeys(VARIANTS, s["epochs"])}
    later = sum(_cost(j) for j in seed_jobs(s, dict.fromkeys(s["arms"], guess), seeds))
    tune_records = run_jobs(tune, args.jobs, "tuning on val", eta_after=later)
    choices = tune_choices(s, tune_records)
    payload["tuning"] = {"choices": choices, "summary": _tuning_summary(choices), "runs": tune_records}
    _write(out, payload, final=False)
    records = run_jobs(seed_jobs(s, choices, seeds), args.jobs, "seed runs on test")
    bad = [f"{r['arm']} {r['variant']} seed {r['seed']}" for r in records if r["diverged"]]
    if bad:
        raise ValueError(f"training diverged in {', '.join(bad)} with the lr chosen on val; "
                         "study.json keeps the tuning")
    payload["runs"] = records
    payload["results"] = analyse(s, choices, records)
    payload["wall_seconds"] = time.perf_counter() - t0
    _write(out, payload, final=True)
    for key, st in payload["results"]["primary"].items():
        lo, hi = (_signed(x) for x in st["ci95"])
        say(f"{key}: {st['mean_difference']:+.3f} [{lo}, {hi}] vs {st['baseline_name']}, "
            f"{st['n_positive']}/{st['n']} seeds positive: {st['verdict']}")
    say(f"wrote {out / 'study.json'}, {out / 'study.md'} and 2 figures; "
        f"wall time {format_duration(payload['wall_seconds'])}")
    return payload


def _signed(x):
    """+0.123, or n/a for an interval one seed cannot give (as study.md prints it)."""
    return "n/a" if x is None or not math.isfinite(x) else f"{x:+.3f}"


def _check_not_another_study(out, s):
    """Refuse to overwrite ``out/study.json`` when it holds a study of other settings (e.g. the committed one).

    Running the same study again (the same settings) replaces it, as asked.
    """
    path = out / "study.json"
    if not path.exists():
        return
    try:
        old = json.loads(path.read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"--out {out}: {path} exists and is not a study's; give another --out, or remove it")
    if old != _normal(s):
        what = f"{old.get('n_seeds')} seeds, {old.get('epochs')} epochs, arms {', '.join(old.get('arms', {}))}"
        raise ValueError(f"--out {out} holds a study of other settings ({what}); give another --out "
                         f"(e.g. --out /tmp/s), or remove {path} to replace it")


_RERUN_FIXED = {"quick": False, "epochs": None, "seeds": 10, "no_image_text": False, "codebook_sizes": [],
                "train_sizes": [], "off_grid": False, "off_grid_window": False, "window_train_size": None,
                "extra_seeds": 3}


def _rerun_ignores(args):
    """The options given with --rerun that would change the study's settings (which --rerun reads from its json)."""
    return ["--" + name.replace("_", "-") for name, default in _RERUN_FIXED.items()
            if getattr(args, name, default) != default]


def _normal(x):
    """JSON round trip: what study.json holds for a value."""
    return json.loads(json.dumps(jsonable(x)))


def rerun(args, out):
    """Retrain the seed runs of ``args.rerun`` and check every number against ``out/study.json``."""
    extra = _rerun_ignores(args)
    if extra:
        raise ValueError(f"--rerun retrains with the settings of {out / 'study.json'}; {', '.join(extra)} "
                         "cannot change them: drop it (only --out and --jobs go with --rerun)")
    if out.is_file():
        raise ValueError(f"--out {out} is a file, expected the folder of a study")
    path = out / "study.json"
    if not path.is_file():
        raise ValueError(f"--rerun: {path} does not exist; run `minivq study` first or give its --out")
    payload = json.loads(path.read_text())
    if "runs" not in payload:
        raise ValueError(f"--rerun: {path} holds no seed runs (the study did not finish)")
    wrong = [x for x in args.rerun if x >= payload["n_seeds"]]
    if wrong:
        raise ValueError(f"--rerun: expected seeds in 0..{payload['n_seeds'] - 1} (the study's), got {wrong}")
    stored = {(r["arm"], r["variant"], r["seed"]): r for r in payload["runs"]}
    jobs = [j for j in seed_jobs(payload["settings"], payload["tuning"]["choices"], args.rerun)
            if (j["arm"], j["variant"], j["seed"]) in stored]
    differ, n_numbers = [], 0
    for rec in run_jobs(jobs, args.jobs, f"rerun of seed {' '.join(map(str, args.rerun))}"):
        old = stored[(rec["arm"], rec["variant"], rec["seed"])]
        for part in ("metrics", "history"):
            new = _normal(rec[part])
            n_numbers += len(json.dumps(new).split(","))
            if new != old[part]:
                keys = [k for k in new if new[k] != old[part].get(k)] if isinstance(new, dict) else ["(per epoch)"]
                where = f"{rec['arm']} {rec['variant']} seed {rec['seed']} {part}"
                differ.append(f"{where}: {', '.join(map(str, keys[:5]))}")
    if differ:
        raise ValueError(f"--rerun: numbers differ from {path}: {'; '.join(differ)}")
    say(f"rerun of seed {' '.join(map(str, args.rerun))}: {len(jobs)} runs, about {n_numbers} numbers, "
        f"all identical to {path}")
    return None
