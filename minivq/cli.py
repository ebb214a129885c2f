"""The ``minivq`` command: ``train``, ``evaluate`` and ``demo``.

``minivq demo`` (also ``python -m minivq demo``) trains the three variants of
the ablation on the shipped spoken-digit scenes, evaluates them on the
held-out test split, prints the table and writes ``metrics.json``,
``report.md`` and the figures to ``--out`` (default ``results/``). With
``--seeds 0 1 2`` every variant is trained once per seed and the table shows
mean ± std. ``--quick`` is a much smaller run, for tests.
"""
import argparse
import json
import sys
import time
from pathlib import Path

from . import figures, metrics, report
from .data import digit_scenes, toy_pairs
from .evaluate import encode_split, evaluate
from .model import VARIANTS
from .train import TrainConfig, config_from_data, fit, init_state, load_checkpoint

__all__ = ["main", "load_split", "DEMO", "QUICK"]

#: The demo's settings (chosen on the validation split; ~40 s of training per variant).
DEMO = {"data": {"n_train": 2000, "n_val": 500, "n_test": 500},
        "train": {"epochs": 40, "batch_size": 64, "lr": 3e-3},
        "model": {}}
#: ``--quick``: a run of a few seconds that exercises every code path.
QUICK = {"data": {"n_train": 192, "n_val": 48, "n_test": 48},
         "train": {"epochs": 2, "batch_size": 32, "lr": 3e-3},
         "model": {"D": 16, "K": 16, "hidden": 32, "embed_dim": 32}}
TOY_SPLIT_SEEDS = {"train": 0, "val": 1000, "test": 2000}


def load_split(modalities, split, n, patch=8, seed=0):
    """Data of one split: toy pairs for modalities a/b, spoken-digit scenes otherwise."""
    if set(modalities) <= {"a", "b"}:
        return toy_pairs(n, seed + TOY_SPLIT_SEEDS[split])
    return digit_scenes(split, n, seed, patch=patch)


def _train_one(variant, seed, splits, settings, modalities=("image", "speech"), log=print):
    """Train one variant from scratch; returns the state and the training seconds."""
    cfg = config_from_data(splits["train"], modalities, variant=variant, **settings["model"])
    tc = TrainConfig(seed=seed, **settings["train"])
    state = init_state(cfg, tc, splits["train"])
    t0 = time.perf_counter()
    fit(state, splits["train"], splits["val"], log=log)
    return state, time.perf_counter() - t0


def _shown_run(runs):
    """The run the figures and the report's settings describe: the full method's first seed."""
    return runs["full"][0] if "full" in runs else next(iter(runs.values()))[0]


def _demo_figures(out, runs, test):
    """Draw the demo's figures (the full method's codes; every variant's curves)."""
    full = _shown_run(runs)
    histories = {v: r[0]["history"] for v, r in runs.items()}
    figures.plot_training_curves(histories, out / "training_curves.png")
    shown = {"training curves": "training_curves.png"}
    cc = full["eval"].get("code_concept")
    if cc is not None:
        figures.plot_code_usage(cc, out / "code_usage.png")
        figures.plot_code_digit(cc, out / "code_digit.png")
        figures.plot_localization(test, full["enc"], full["cfg"], out / "localization.png")
        shown.update({"codebook usage per modality": "code_usage.png",
                      "code x digit, per modality": "code_digit.png",
                      "localization, both ways": "localization.png"})
    figures.plot_retrieval(test, full["enc"], out / "retrieval.png")
    shown["retrieval examples"] = "retrieval.png"
    return shown


def _run_variants(args, splits, settings):
    """Train and evaluate every (variant, seed); returns the runs and the table rows."""
    runs, rows = {}, {}
    for variant in args.variants:
        for seed in args.seeds:
            state, seconds = _train_one(variant, seed, splits, settings)
            enc = encode_split(state.params, state.model_cfg, splits["test"])
            ev = evaluate(state.params, state.model_cfg, splits["test"], enc=enc)
            runs.setdefault(variant, []).append({"seed": seed, "train_seconds": seconds, "eval": ev,
                                                 "history": state.history, "enc": enc,
                                                 "cfg": state.model_cfg})
            rows.setdefault(variant, []).append(report.table_row(ev))
    return runs, rows


def demo(args):
    """Train the variants, evaluate on test, print the table, write the report."""
    t_start = time.perf_counter()
    settings = QUICK if args.quick else DEMO
    if args.epochs is not None:
        settings = {**settings, "train": {**settings["train"], "epochs": args.epochs}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    d = settings["data"]
    splits = {s: load_split(("image", "speech"), s, d[f"n_{s}"]) for s in ("train", "val", "test")}
    if args.eval_split == "val":  # for tuning: score on validation, never look at test
        splits["test"] = splits["val"]
    runs, rows = _run_variants(args, splits, settings)
    table = report.ablation_table(rows)
    shown = _demo_figures(out, runs, splits["test"])
    shown_run = _shown_run(runs)
    meta = {"command": " ".join(["minivq"] + args.argv), "seeds": list(args.seeds),
            "wall_seconds": time.perf_counter() - t_start, "eval_split": args.eval_split,
            "data": d, "train": settings["train"], "model": shown_run["cfg"].to_dict(),
            "chance": {k: round(v["chance"], 3) for k, v in shown_run["eval"].get("localization", {}).items()},
            "set_ceiling_r1": metrics.set_ceiling_r1(splits["test"]["digits"])}
    payload = {"meta": meta, "table": rows,
               "runs": {v: [{k: r[k] for k in ("seed", "train_seconds", "eval", "history")} for r in rs]
                        for v, rs in runs.items()}}
    report.write_metrics(out / "metrics.json", payload)
    report.write_report(out / "report.md", table, meta, shown)
    print(table)
    print(f"LOC chance: {report.format_chance(meta['chance'])}; "
          f"R@1 of a perfect digit-set retriever: {meta['set_ceiling_r1']:.3f}")
    print(f"wrote {out / 'metrics.json'}, {out / 'report.md'} and {len(shown)} figures; "
          f"wall time {meta['wall_seconds']:.1f} s")
    return payload


def train(args):
    """Train one variant on one modality pair, with a checkpoint per epoch."""
    settings = QUICK if args.quick else DEMO
    d = settings["data"]
    if args.resume:
        state = load_checkpoint(args.checkpoint, epochs=args.epochs)
        modalities = state.model_cfg.modalities
    else:
        modalities = tuple(args.modalities)
    overrides = {**settings["model"], **json.loads(args.model)}
    patch = state.model_cfg.patch if args.resume else overrides.get("patch", 8)
    n = {"train": args.n_train or d["n_train"], "val": d["n_val"]}
    splits = {s: load_split(modalities, s, n[s], patch) for s in ("train", "val")}
    if not args.resume:
        cfg = config_from_data(splits["train"], modalities, variant=args.variant, **overrides)
        tc = TrainConfig(**{**settings["train"], "seed": args.seed,
                            **({"epochs": args.epochs} if args.epochs is not None else {})})
        state = init_state(cfg, tc, splits["train"])
    fit(state, splits["train"], splits["val"], checkpoint=args.checkpoint)
    print(f"saved {args.checkpoint} (epoch {state.epoch}, step {state.step})")
    return state


def evaluate_cmd(args):
    """Evaluate a checkpoint on a split and print (or save) the numbers."""
    state = load_checkpoint(args.checkpoint)
    cfg = state.model_cfg
    data = load_split(cfg.modalities, args.split, args.n, cfg.patch)
    ev = evaluate(state.params, cfg, data, lambda_r=args.lambda_r)
    print(report.ablation_table({cfg.variant: [report.table_row(ev)]}))
    if args.json:
        report.write_metrics(args.json, ev)
        print(f"wrote {args.json}")
    return ev


def build_parser():
    """The argparse parser of the three subcommands."""
    parser = argparse.ArgumentParser(prog="minivq", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="train the 3 variants, evaluate on test, write the report")
    p.add_argument("--out", default="results", help="output folder (default: results/)")
    p.add_argument("--quick", action="store_true", help="a tiny run, for tests")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (default: 0)")
    p.add_argument("--epochs", type=int, default=None, help="override the number of epochs")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--eval-split", default="test", choices=["test", "val"],
                   help="split to score (val: for tuning settings; default test)")
    p.set_defaults(func=demo)
    p = sub.add_parser("train", help="train one variant, checkpoint every epoch")
    p.add_argument("--modalities", nargs=2, default=["image", "speech"],
                   choices=["image", "speech", "text", "a", "b"])
    p.add_argument("--variant", default="full", choices=VARIANTS)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--n-train", type=int, default=None, help="training pairs (default: as the demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", default="{}", help='ModelConfig overrides as JSON, e.g. \'{"K": 64}\'')
    p.add_argument("--checkpoint", default="minivq_checkpoint.npz")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint up to --epochs")
    p.add_argument("--quick", action="store_true")
    p.set_defaults(func=train)
    p = sub.add_parser("evaluate", help="evaluate a checkpoint on a split")
    p.add_argument("checkpoint")
    p.add_argument("--split", default="test", choices=["train", "val", "test"])
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--lambda-r", type=float, default=1.0, help="weight of S^code in the combined ranking")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    p.set_defaults(func=evaluate_cmd)
    return parser


def main(argv=None):
    """Entry point of the ``minivq`` console script and of ``python -m minivq``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    args.func(args)
    return 0
