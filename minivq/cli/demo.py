"""``minivq demo``: the paper's ablation in miniature, trained, scored and written up.

Every variant of :data:`minivq.model.VARIANTS` once per seed on the spoken-digit scenes, scored on test (or
val, for tuning). Each row is printed when scored; metrics.json and report.md are rewritten after every run
beside ``--out`` and moved in at the end (:class:`minivq.io.results.ResultsFolder`); Ctrl-C keeps what finished.
"""
import time

from threadpoolctl import threadpool_limits

from .. import report
from ..data import toy_pairs
from ..data.world import world_scenes
from ..io.results import ResultsFolder
from ..metrics.evaluate import encode_split, evaluate
from ..nearest import nearest_threads
from ..train import TrainConfig, config_from_data, fit, init_state
from .demo_report import FIGURES, FILES, MODALITIES, check_folder, draw_figures, finished, payload, table, write
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

class Interrupted(Exception):
    """Ctrl-C stopped the demo; what finished is kept (the message says where)."""


def load_split(modalities, split, n, patch=8, seed=0, world="easy"):
    """Data of one split: toy pairs for modalities a/b, else the spoken-digit scenes of the preset ``world``
    (:data:`minivq.data.world.PRESETS`)."""
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


def _in_order(jobs, done):
    """variant -> the finished runs in seed order (workers finish in any order)."""
    runs = {}
    for job in jobs:
        if job in done:
            runs.setdefault(job[0], []).append(done[job])
    return runs


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
    """One (variant, seed, label) job, here or in a worker, on one thread either way: BLAS rounds a product
    split over two threads differently, so the numbers would depend on --jobs."""
    variant, seed, label = job
    with threadpool_limits(limits=1, user_api="blas"), nearest_threads(1):
        return _train_and_score(variant, seed, _SHARED["splits"], _SHARED["settings"], label, _SHARED["clock"])


def run_demo(args, out):
    """Train and score every (variant, seed) of ``args``; the outputs go to the writable folder ``out`` when
    all are done. Returns the payload of metrics.json; :class:`Interrupted` on Ctrl-C, with what finished kept."""
    t_start = time.perf_counter()
    settings = demo_settings(args.quick, args.epochs, args.world)
    d, epochs = settings["data"], settings["train"]["epochs"]
    check_folder(out, settings, args.variants, args.seeds, args.eval_split, args.overwrite)
    jobs = [(v, s) for v in args.variants for s in args.seeds]
    say(f"minivq demo: {len(args.variants)} variants ({', '.join(args.variants)}) x {len(args.seeds)} "
        f"seed{'s' * (len(args.seeds) > 1)} ({', '.join(map(str, args.seeds))}), {epochs} epochs each, "
        f"{d['n_train']} train pairs; scored on {d[f'n_{args.eval_split}']} {args.eval_split} pairs; output in {out}/")
    n_workers = args.jobs or default_workers(len(jobs))
    if n_workers > 1:
        say(f"training {min(n_workers, len(jobs))} runs at a time, in worker processes (--jobs)")
    runs, splits, done, folder = {}, None, {}, ResultsFolder(out, FILES)

    def save(shown):  # metrics.json and report.md of the runs finished so far
        content = payload(args, settings, runs, splits, time.perf_counter() - t_start)
        write(folder, content, runs, shown)
        return content

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
                save({})
        shown = draw_figures(folder, runs, splits["test"])
        content = save(shown)
        folder.publish()
    except BaseException as e:
        if runs:  # the last run's row may have come just before the interruption
            save({})
        _keep_unfinished(e, folder, out, runs, len(jobs))
        raise
    finally:
        folder.discard()
    say(table(runs))
    say(f"LOC chance: {report.format_chance(content['chance'])}; "
        f"instance R@1 of a perfect digit-set retriever (it bounds the R@1 columns): {content['set_ceiling_r1']:.3f}")
    say(f"wrote {out / 'metrics.json'}, {out / 'report.md'} and {len(shown)} figures; "
        f"wall time {format_duration(content['wall_seconds'])}")
    return content


def _keep_unfinished(error, folder, out, runs, n_jobs):
    """Whatever stopped the demo: keep the finished runs (where they replace no finished demo); on Ctrl-C
    raise :class:`Interrupted` saying where."""
    had = finished(out)
    kept = folder.keep(had) if runs else None
    if not isinstance(error, KeyboardInterrupt):
        return
    earlier = f"; {out}/ keeps its earlier results, whole" if had else ""
    if kept is None:
        raise Interrupted("interrupted before any run finished" + (earlier or f" (nothing written to {out}/)")) from None
    say(table(runs))
    raise Interrupted(f"interrupted; {sum(map(len, runs.values()))} of {n_jobs} runs finished, kept in "
                      f"{kept / 'metrics.json'} and {kept / 'report.md'}{earlier}") from None
