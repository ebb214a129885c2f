"""``minivq demo``: the paper's ablation in miniature, trained, scored and written up.

Trains every variant of :data:`minivq.model.VARIANTS` once per seed on the
shipped spoken-digit scenes, scores each on the held-out test split (or on
validation, for tuning), and writes ``metrics.json``, ``report.md`` and the
figures to the output folder. Nothing is lost on the way: each run's row is
printed as soon as it is scored, ``metrics.json`` and ``report.md`` are
rewritten (atomically) after every run, and Ctrl-C stops with what finished
kept and printed (:class:`Interrupted`).
"""
import time
from dataclasses import asdict

from threadpoolctl import threadpool_limits

from .. import metrics, report
from ..data import toy_pairs
from ..data.world import world_scenes
from ..metrics.evaluate import encode_split, evaluate
from ..nearest import nearest_threads
from ..report import figures
from ..train import TrainConfig, config_from_data, fit, init_state
from .parallel import JobRunner, SharedClock, default_workers
from .progress import Clock, format_duration, say

__all__ = ["DEMO", "QUICK", "FIGURES", "Interrupted", "load_split", "demo_settings", "run_demo"]

#: The demo's settings (chosen on the validation split; ~40 s of training per variant).
DEMO = {"data": {"n_train": 2000, "n_val": 500, "n_test": 500, "world": "hard_on_grid"},
        "train": {"epochs": 40, "batch_size": 64, "lr": 3e-3},
        "model": {}}
#: ``--quick``: a run of a few seconds that exercises every code path.
QUICK = {"data": {"n_train": 192, "n_val": 48, "n_test": 48, "world": "hard_on_grid"},
         "train": {"epochs": 2, "batch_size": 32, "lr": 3e-3},
         "model": {"D": 16, "K": 16, "hidden": 32, "embed_dim": 32}}
TOY_SPLIT_SEEDS = {"train": 0, "val": 1000, "test": 2000}
MODALITIES = ("image", "speech")

#: Every figure the demo may write: file -> (caption, what it shows, in one sentence).
FIGURES = {
    "training_curves.png": ("training curves", "L_MMS and L_CMCM on the training batches and the mean "
                            "R@1 of the quick validation check, per epoch, one line per variant (first seed)."),
    "code_usage.png": ("codebook usage per modality", "The fraction of the image units and of the speech "
                       "units that the full method assigns to each code (log scale): bars in both colours "
                       "are codes the two modalities share."),
    "code_digit.png": ("code x digit, per modality", "For each digit (rows), the fraction of its image units "
                       "and of its speech units on each code (columns), for the VQ-only variant beside the "
                       "full method: a digit whose bright cell sits on the same code in both modalities, a "
                       "code no other digit takes, is a digit on which the modalities agree."),
    "localization.png": ("localization, both ways", "For three scenes of the scored split, the image cells "
                         "the full method finds most relevant to each spoken digit, and the speech frames "
                         "most relevant to each image digit, with the spoken words' spans shaded."),
    "retrieval.png": ("retrieval examples", "Four speech queries of the scored split and the four images "
                      "the full method ranks first by S (SUM-3); the true partner is marked in green."),
}


class Interrupted(Exception):
    """Ctrl-C stopped the demo; what finished is kept (the message says where)."""


def load_split(modalities, split, n, patch=8, seed=0, world="easy"):
    """Data of one split: toy pairs for modalities a/b, spoken-digit scenes otherwise.

    ``world`` names the scenes' preset (:data:`minivq.data.world.PRESETS`):
    ``"easy"`` is v0.1's world (2 or 3 named digits on the patch grid, no
    distractor); ``"hard_on_grid"`` the study's (2 to 5 named digits, unnamed
    distractors, held-out digit sets, voices balanced); ``"hard"`` also moves
    the digits off the patch grid.
    """
    if set(modalities) <= {"a", "b"}:
        return toy_pairs(n, seed + TOY_SPLIT_SEEDS[split])
    return world_scenes(split, n, seed, world=world, patch=patch)


def demo_settings(quick=False, epochs=None, world=None):
    """:data:`DEMO` or :data:`QUICK`, with ``epochs`` and ``world`` overridden if given."""
    settings = QUICK if quick else DEMO
    if epochs is not None:
        settings = {**settings, "train": {**settings["train"], "epochs": epochs}}
    if world is not None:
        settings = {**settings, "data": {**settings["data"], "world": world}}
    return settings


def remove_stale_figures(out):
    """Delete the figures a previous demo wrote to ``out`` (only :data:`FIGURES`' names)."""
    for name in FIGURES:
        path = out / name
        if path.is_file():
            path.unlink()


def _in_order(jobs, done):
    """variant -> the finished runs in seed order (workers finish in any order)."""
    runs = {}
    for job in jobs:
        if job in done:
            runs.setdefault(job[0], []).append(done[job])
    return runs


def _runs_done(runs):
    return sum(len(r) for r in runs.values())


def _train_and_score(variant, seed, splits, settings, label, clock):
    """Train one variant from scratch, then score it; returns the run's record."""
    cfg = config_from_data(splits["train"], MODALITIES, variant=variant, **settings["model"])
    tc = TrainConfig(seed=seed, **settings["train"])
    state = init_state(cfg, tc, splits["train"])
    t0 = time.perf_counter()
    fit(state, splits["train"], splits["val"], log=say, label=label, clock=clock)
    seconds = time.perf_counter() - t0
    say(f"{label} evaluating on {splits['n_scored']} {splits['scored']} pairs ...")
    t1 = time.perf_counter()
    enc = encode_split(state.params, cfg, splits["test"])
    ev = evaluate(state.params, cfg, splits["test"], enc=enc)
    say(f"{label} evaluated in {time.perf_counter() - t1:.1f}s")
    return {"seed": seed, "train_seconds": seconds, "eval": ev, "history": state.history, "enc": enc,
            "cfg": cfg, "train_cfg": tc}


def _shown_run(runs):
    """The run the figures and the report's settings describe: the full method's first seed."""
    return runs["full"][0] if "full" in runs else next(iter(runs.values()))[0]


def _draw_figures(out, runs, test):
    """Write the figures; returns {file: (caption, sentence)} of those written."""
    shown_run = _shown_run(runs)
    written = ["training_curves.png"]
    figures.plot_training_curves({v: r[0]["history"] for v, r in runs.items()}, out / written[0])
    cc = shown_run["eval"].get("code_concept")
    if cc is not None:
        baseline = runs["vq"][0]["eval"]["code_concept"] if "vq" in runs and shown_run is not runs["vq"][0] else None
        figures.plot_code_usage(cc, out / "code_usage.png")
        figures.plot_code_digit(cc, out / "code_digit.png", baseline=baseline)
        figures.plot_localization(test, shown_run["enc"], shown_run["cfg"], out / "localization.png")
        written += ["code_usage.png", "code_digit.png", "localization.png"]
    figures.plot_retrieval(test, shown_run["enc"], out / "retrieval.png")
    written.append("retrieval.png")
    return {name: FIGURES[name] for name in written}


def _payload(args, settings, runs, splits, wall_seconds):
    """Everything metrics.json holds (the writer makes it strict JSON)."""
    from .. import __version__
    shown_run = _shown_run(runs)
    train = {k: v for k, v in asdict(shown_run["train_cfg"]).items() if k != "seed"}
    loc = shown_run["eval"].get("localization", {})
    return {"minivq_version": __version__, "command": " ".join(["minivq"] + args.argv),
            "variants": list(args.variants), "seeds": list(args.seeds), "eval_split": args.eval_split,
            "runs_done": _runs_done(runs), "runs_total": len(args.variants) * len(args.seeds),
            "wall_seconds": wall_seconds,
            "config": {"data": {**settings["data"], "modalities": list(MODALITIES), "seed": 0, "patch": 8},
                       "train": train, "model": shown_run["cfg"].to_dict()},
            "chance": {k: round(v.get("chance_digit_unit", v["chance"]), 3) for k, v in loc.items()},
            "set_ceiling_r1": metrics.set_ceiling_r1(splits["test"]["digits"]),
            "table": _rows(runs),
            "runs": {v: [{k: r[k] for k in ("seed", "train_seconds", "eval", "history")} for r in rs]
                     for v, rs in runs.items()}}


def _rows(runs):
    """Table rows of the finished runs: variant -> one row per seed."""
    return {v: [report.table_row(r["eval"]) for r in rs] for v, rs in runs.items()}


def _table(runs):
    n_concepts = next(iter(runs.values()))[0]["eval"].get("n_concepts")
    return report.ablation_table(_rows(runs), n_concepts)


def _write(out, payload, runs, shown):
    """metrics.json and report.md of the finished runs (atomically)."""
    report.write_metrics(out / "metrics.json", payload)
    report.write_report(out / "report.md", _table(runs), payload, shown)


def _load_splits(settings, eval_split, log=say):
    d = settings["data"]
    log(f"loading the spoken-digit scenes of the {d['world']} world ({d['n_train']} train, {d['n_val']} val"
        + (f", {d['n_test']} test" if eval_split == "test" else "") + " pairs) ...")
    t0 = time.perf_counter()
    splits = {s: load_split(MODALITIES, s, d[f"n_{s}"], world=d["world"]) for s in ("train", "val")}
    splits["test"] = (load_split(MODALITIES, "test", d["n_test"], world=d["world"]) if eval_split == "test"
                      else splits["val"])
    splits["scored"], splits["n_scored"] = eval_split, d[f"n_{eval_split}"]
    log(f"loaded in {time.perf_counter() - t0:.1f}s")
    return splits


#: What every run of this process shares: the splits, the settings, the clock (:func:`_init_runs`).
_SHARED = {}


def _init_runs(settings, eval_split, clock, splits=None):
    """Load (in a worker) or take (here) what every run needs."""
    if splits is None:
        splits = _load_splits(settings, eval_split, log=lambda *_: None)
    _SHARED.update(settings=settings, splits=splits, clock=clock)


def _run(job):
    """One (variant, seed, label) job, in this process or a worker, on one thread either way.

    BLAS splits a product differently on two threads and rounds it
    differently; one thread everywhere makes the numbers independent of --jobs.
    """
    variant, seed, label = job
    with threadpool_limits(limits=1, user_api="blas"), nearest_threads(1):
        return _train_and_score(variant, seed, _SHARED["splits"], _SHARED["settings"], label, _SHARED["clock"])


def run_demo(args, out):
    """Train and score every (variant, seed), writing the outputs to ``out`` as runs finish.

    Parameters
    ----------
    args : argparse.Namespace
        ``quick``, ``epochs``, ``variants``, ``seeds``, ``eval_split``, ``argv``, and ``jobs``
        (worker processes; None: one per core, at most one per run).
    out : pathlib.Path
        An existing, writable folder (checked by the command).

    Returns
    -------
    dict
        The payload of metrics.json.

    Raises
    ------
    Interrupted
        On Ctrl-C, after printing and keeping the runs that finished.
    """
    t_start = time.perf_counter()
    settings = demo_settings(args.quick, args.epochs, getattr(args, "world", None))
    d, epochs = settings["data"], settings["train"]["epochs"]
    jobs = [(v, s) for v in args.variants for s in args.seeds]
    say(f"minivq demo: {len(args.variants)} variants ({', '.join(args.variants)}) x {len(args.seeds)} "
        f"seed{'s' * (len(args.seeds) > 1)} ({', '.join(map(str, args.seeds))}), {epochs} epochs each, "
        f"{d['n_train']} train pairs; scored on {d[f'n_{args.eval_split}']} {args.eval_split} pairs; output in {out}/")
    remove_stale_figures(out)
    n_workers = getattr(args, "jobs", None) or default_workers(len(jobs))
    if n_workers > 1:
        say(f"training {min(n_workers, len(jobs))} runs at a time, in worker processes (--jobs)")
    runs, splits, done = {}, None, {}
    try:
        splits = _load_splits(settings, args.eval_split)
        clock = SharedClock(len(jobs) * epochs) if n_workers > 1 else Clock(len(jobs) * epochs)
        labelled = [(v, s, f"[{v} {i + 1}/{len(jobs)}, seed {s}]") for i, (v, s) in enumerate(jobs)]
        initargs = (settings, args.eval_split, clock) + ((splits,) if n_workers == 1 else ())
        with JobRunner(n_workers, _init_runs, initargs) as runner:
            for i, run in runner.results(_run, labelled):
                done[jobs[i]] = run
                runs = _in_order(jobs, done)
                variant, seed = jobs[i]
                row_name = variant if len(args.seeds) == 1 else f"{variant} (seed {seed})"
                say(report.ablation_table({row_name: [report.table_row(run["eval"])]},
                                          run["eval"].get("n_concepts")))
                _write(out, _payload(args, settings, runs, splits, time.perf_counter() - t_start), runs, {})
        shown = _draw_figures(out, runs, splits["test"])
    except KeyboardInterrupt:
        if not runs:
            raise Interrupted(f"interrupted before any run finished (nothing written to {out}/)") from None
        _write(out, _payload(args, settings, runs, splits, time.perf_counter() - t_start), runs, {})
        say(_table(runs))
        raise Interrupted(f"interrupted; {_runs_done(runs)} of {len(jobs)} runs finished, kept in "
                          f"{out / 'metrics.json'} and {out / 'report.md'}") from None
    payload = _payload(args, settings, runs, splits, time.perf_counter() - t_start)
    _write(out, payload, runs, shown)
    say(_table(runs))
    say(f"LOC chance: {report.format_chance(payload['chance'])}; "
        f"instance R@1 of a perfect digit-set retriever (it bounds the R@1 columns): {payload['set_ceiling_r1']:.3f}")
    say(f"wrote {out / 'metrics.json'}, {out / 'report.md'} and {len(shown)} figures; "
        f"wall time {format_duration(payload['wall_seconds'])}")
    return payload
