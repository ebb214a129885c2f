"""``minivq study``: the paper's three claims, each against its strongest baseline, over N seeds.

Two phases of independent runs in worker processes (:mod:`.jobs`, :mod:`.runs`): tuning on val, every
variant by the same grid, then the seed runs on test (:mod:`.analysis`). The protocol goes to study.md before
the first run; all files are written beside ``--out`` and moved in when the study ends
(:class:`minivq.io.results.ResultsFolder`). ``--rerun SEED`` checks a seed's numbers exactly (:mod:`.rerun`).
"""
import argparse
import json
import math
import textwrap
import time
from pathlib import Path

from ..cli.checks import check_memory
from ..cli.progress import format_duration, say
from ..config import ModelConfig
from ..data import speaker_names
from ..data.bank import MAX_SCENES
from ..data.world import WRITER_NOTE, split_voices, world_settings
from ..io.atomic import atomic_write_text, check_writable_folder
from ..io.results import ResultsFolder
from ..report import write_metrics
from . import report as rep
from .analysis import VARIANTS, analyse, tune_choices, tuned_arms
from .jobs import job_cost, make_jobs, run_jobs, scenes_folder, seed_jobs  # noqa: F401 (scenes_folder: its old home)
from .report import lr_grid
from .rerun import check_not_another_study, finished_study, rerun

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
#: Every file the study writes in --out (nothing else there is touched).
FILES = ("study.json", "study.md", "paired_differences.png", "learning_curves.png")

EPILOG = """examples:
  minivq study                        # 10 seeds, into results/study (about 12.5 minutes, 2 cores)
  minivq study --out study            # the same, refreshing the repository's committed study/
  minivq study --quick --seeds 2 --out /tmp/s   # seconds: every code path
  minivq study --rerun 3 --out study  # retrain seed 3 and check it against study/study.json
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
    """Register ``minivq study`` on argparse ``subparsers`` (``parents`` and ``kwargs`` go to its
    ``add_parser``); returns the parser."""
    p = subparsers.add_parser(
        "study", help="test the paper's claims over N seeds, each against its strongest baseline",
        description=textwrap.fill(
            "Train summary, vq and full over N seeds in the hard_on_grid world (every variant tuned on val by the "
            "same grid, the same budget), score the pre-stated primary endpoints on test with paired 95% "
            "CIs and sign counts, and write study.json, study.md and figures to --out.", 79),
        epilog=EPILOG, parents=list(parents), **kwargs)
    p.add_argument("--seeds", type=_positive, default=10, help="number of seeds (0..N-1)")
    p.add_argument("--out", default="results/study",
                   help="output folder (created if needed; the repository's committed study is --out study); "
                   "its files are replaced only when the new study is finished")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a study of other settings in --out (without it, that is an error)")
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

    def arm(pair="image_speech", model=None, n_train=None, **extra):
        return {"modalities": list(ARMS[pair]), "model": model or {}, "n_train": n_train or s["n_train"], **extra}

    s["arms"] = {"image_speech": arm()}
    if not args.no_image_text:
        s["arms"]["image_text"] = arm("image_text")
    for K in args.codebook_sizes:
        s["arms"][f"image_speech_k{K}"] = arm(model={"K": K}, extra=True)
    for n in args.train_sizes:
        s["arms"][f"image_speech_n{n}"] = arm(n_train=n, extra=True)
    if args.off_grid:
        s["arms"]["image_speech_off_grid"] = arm(world="hard", extra=True)
    _check_arm_options(args, s)
    if args.window_train_size is not None and not args.off_grid_window:
        raise ValueError(f"--window-train-size {args.window_train_size} sizes the --off-grid-window arm: "
                         "add --off-grid-window, or drop it")
    if args.off_grid_window:
        s["arms"]["image_speech_free_window"] = arm(
            model={"image_window": 16, "image_stride": 2}, n_train=args.window_train_size, world="hard", extra=True,
            own_tuning=True, lr_grid=sorted(set(s["lr_grid"]) | {1e-3, 3e-3}))
    s["n_seeds"], s["extra_seeds"] = args.seeds, min(args.extra_seeds, args.seeds)
    return s


def _check_arm_options(args, s):
    """--train-sizes, --window-train-size (scenes the generator can make and memory hold), --codebook-sizes (a K
    ModelConfig takes): checked before anything is written, not after the tuning runs."""
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


def _write(folder, payload, final):
    write_metrics(folder.path("study.json"), payload)
    if final:
        rep.plot_differences(payload["results"]["primary"], folder.path("paired_differences.png"))
        rep.plot_curves(payload["results"]["curves"], folder.path("learning_curves.png"), payload["tuning"]["choices"])
        atomic_write_text(folder.path("study.md"), rep.markdown(payload))


def run(args):
    """Run the study (or ``--rerun`` seeds of an existing one); see the module docstring."""
    out = Path(args.out)
    if args.rerun is not None:
        return rerun(args, out)
    s = settings_from(args)  # its errors come first
    problem = check_writable_folder(out, create=True)
    if problem:
        raise ValueError(f"--out: {problem}")
    check_not_another_study(out, s, getattr(args, "overwrite", False))
    folder = ResultsFolder(out, FILES)
    try:
        return _study(args, s, out, folder)
    except BaseException as e:  # Ctrl-C, SIGTERM (SystemExit), an error: keep what is written, where it replaces
        tuned = folder.path("study.json").exists()  # no finished study
        kept = folder.keep(finished_study(out))
        if isinstance(e, KeyboardInterrupt) and kept is not None:
            earlier = f"; {out}/ keeps its earlier study, whole" if kept != out else ""
            raise KeyboardInterrupt(f"the protocol{' and the tuning' if tuned else ''} kept in {kept}/{earlier}") \
                from None
        raise
    finally:
        folder.discard()


def _study(args, s, out, folder):
    """The two phases, writing into ``folder``'s temporary folder; moved into ``out`` at the end."""
    from .. import __version__
    t0, seeds = time.perf_counter(), list(range(args.seeds))
    payload = {"minivq_version": __version__, "command": " ".join(["minivq"] + list(getattr(args, "argv", ["study"]))),
               "n_seeds": args.seeds, "jobs": args.jobs, "settings": s, "protocol": rep.protocol(s, args.seeds),
               "world": _world_info(s), "left_out": _left_out(s)}
    atomic_write_text(folder.path("study.md"), f"# minivq study (running)\n\n{payload['protocol']}\nResults pending.\n")
    say(f"minivq study: {len(s['arms'])} arms ({', '.join(s['arms'])}) x 3 variants x {args.seeds} seeds, "
        f"up to {s['epochs']} epochs on {_scene_counts(s)}; protocol written to {folder.path('study.md')} "
        f"(moved to {out}/ with the results)")
    tune = [make_jobs(s, arm, v, seed, lr, "val", score_epochs=s["epoch_grid"]) for arm in tuned_arms(s)
            for v in VARIANTS for lr in lr_grid(s, arm) for seed in s["tune_seeds"]]
    guess = {"lr": dict.fromkeys(VARIANTS, 0.0), "epochs": dict.fromkeys(VARIANTS, s["epochs"])}
    later = sum(job_cost(j) for j in seed_jobs(s, dict.fromkeys(s["arms"], guess), seeds))
    tune_records = run_jobs(tune, args.jobs, "tuning on val", eta_after=later)
    choices = tune_choices(s, tune_records)
    payload["tuning"] = {"choices": choices, "summary": _tuning_summary(choices), "runs": tune_records}
    _write(folder, payload, final=False)
    records = run_jobs(seed_jobs(s, choices, seeds), args.jobs, "seed runs on test")
    bad = [f"{r['arm']} {r['variant']} seed {r['seed']}" for r in records if r["diverged"]]
    if bad:
        kept = folder.keep(finished_study(out))
        raise ValueError(f"training diverged in {', '.join(bad)} with the lr chosen on val; "
                         f"{kept / 'study.json'} keeps the tuning")
    payload["runs"] = records
    payload["results"] = analyse(s, choices, records)
    payload["wall_seconds"] = time.perf_counter() - t0
    _write(folder, payload, final=True)
    folder.publish()
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
