"""What ``minivq demo`` writes (metrics.json, report.md, the figures), and whose results a folder holds:
:func:`check_folder` refuses, before any training, an ``--out`` holding a demo of other settings.
"""
import json
from dataclasses import asdict

from .. import metrics, report
from ..report import figures
from .checks import UsageError

__all__ = ["MODALITIES", "FIGURES", "FILES", "draw_figures", "payload", "table", "write", "fingerprint",
           "check_folder", "finished"]

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


#: Every file the demo writes in --out (nothing else there is touched).
FILES = ("metrics.json", "report.md", *FIGURES)


def shown_run(runs):
    """The run the figures and the report's settings describe: the full method's first seed."""
    return runs["full"][0] if "full" in runs else next(iter(runs.values()))[0]


def draw_figures(folder, runs, test):
    """Write the figures; returns {file: (caption, sentence)} of those written."""
    shown = shown_run(runs)
    written = ["training_curves.png"]
    figures.plot_training_curves({v: r[0]["history"] for v, r in runs.items()}, folder.path(written[0]))
    cc = shown["eval"].get("code_concept")
    if cc is not None:
        baseline = runs["vq"][0]["eval"]["code_concept"] if "vq" in runs and shown is not runs["vq"][0] else None
        figures.plot_code_usage(cc, folder.path("code_usage.png"))
        figures.plot_code_digit(cc, folder.path("code_digit.png"), baseline=baseline)
        figures.plot_localization(test, shown["enc"], shown["cfg"], folder.path("localization.png"))
        written += ["code_usage.png", "code_digit.png", "localization.png"]
    figures.plot_retrieval(test, shown["enc"], folder.path("retrieval.png"))
    written.append("retrieval.png")
    return {name: FIGURES[name] for name in written}


def payload(args, settings, runs, splits, wall_seconds):
    """Everything metrics.json holds (the writer makes it strict JSON)."""
    from .. import __version__
    shown = shown_run(runs)
    train = {k: v for k, v in asdict(shown["train_cfg"]).items() if k != "seed"}
    loc = shown["eval"].get("localization", {})
    return {"minivq_version": __version__, "command": " ".join(["minivq"] + args.argv),
            "variants": list(args.variants), "seeds": list(args.seeds), "eval_split": args.eval_split,
            "runs_done": sum(map(len, runs.values())), "runs_total": len(args.variants) * len(args.seeds),
            "wall_seconds": wall_seconds,
            "config": {"data": {**settings["data"], "modalities": list(MODALITIES), "seed": 0, "patch": 8},
                       "train": train, "model": shown["cfg"].to_dict()},
            "chance": {k: round(v.get("chance_digit_unit", v["chance"]), 3) for k, v in loc.items()},
            "set_ceiling_r1": metrics.set_ceiling_r1(splits["test"]["digits"]),
            "table": rows(runs),
            "runs": {v: [{k: r[k] for k in ("seed", "train_seconds", "eval", "history")} for r in rs]
                     for v, rs in runs.items()}}


def rows(runs):
    """Table rows of the finished runs: variant -> one row per seed."""
    return {v: [report.table_row(r["eval"]) for r in rs] for v, rs in runs.items()}


def table(runs):
    n_concepts = next(iter(runs.values()))[0]["eval"].get("n_concepts")
    return report.ablation_table(rows(runs), n_concepts)


def write(folder, content, runs, shown):
    """metrics.json and report.md of the finished runs (atomically, in ``folder``'s temporary folder)."""
    report.write_metrics(folder.path("metrics.json"), content)
    report.write_report(folder.path("report.md"), table(runs), content, shown)


def fingerprint(content):
    """The settings that decide a demo's numbers, from its metrics.json (``--jobs`` and ``--out`` do not)."""
    config = content.get("config", {})
    return {"variants": content.get("variants"), "seeds": content.get("seeds"),
            "eval_split": content.get("eval_split"),
            "data": {k: config.get("data", {}).get(k) for k in ("n_train", "n_val", "n_test", "world")},
            "train": {k: config.get("train", {}).get(k) for k in ("epochs", "batch_size", "lr")}}


def _read(out):
    """The metrics.json in ``out`` (None if there is none); UsageError if it is not a demo's."""
    path = out / "metrics.json"
    if not path.exists():
        return None
    try:
        content = json.loads(path.read_text())
        content["runs_done"], content["config"]["train"]["epochs"]  # noqa: B018 - a demo's keys
        return content
    except (OSError, ValueError, KeyError, TypeError):
        raise UsageError(f"--out {out}: {path} exists and is not a minivq demo's; give another --out, "
                         "or add --overwrite to replace it") from None


def check_folder(out, settings, variants, seeds, eval_split, overwrite=False):
    """UsageError when ``out`` holds results of a demo of other settings, unless ``overwrite``."""
    old = None if overwrite else _read(out)
    new = {"variants": list(variants), "seeds": list(seeds), "eval_split": eval_split, "config": settings}
    if old is None or fingerprint(old) == fingerprint(new):
        return
    f = fingerprint(old)
    what = (f"variants {' '.join(map(str, f['variants'] or []))}, seeds {' '.join(map(str, f['seeds'] or []))}, "
            f"{f['train']['epochs']} epochs, {f['data']['n_train']} train pairs, world {f['data']['world']}, "
            f"scored on {f['eval_split']}")
    raise UsageError(f"--out {out} holds the results of a demo of other settings ({what}); give another --out, "
                     "or add --overwrite to replace them")


def finished(out):
    """True when ``out`` holds the results of a demo that finished all its runs."""
    try:
        content = _read(out)
    except UsageError:
        return True  # not a demo's file: never replaced by unfinished results
    return content is not None and content.get("runs_done") == content.get("runs_total")
