"""``minivq study --rerun SEED``: retrain the runs of a seed and check every number of a study.json;
and the check that a study never replaces one of other settings.
"""
import json

from ..cli.progress import say
from ..report import jsonable
from .jobs import run_jobs, seed_jobs

__all__ = ["rerun", "check_not_another_study", "finished_study"]


def check_not_another_study(out, s, overwrite=False):
    """ValueError when ``out/study.json`` holds a study of other settings (e.g. the committed one), unless
    ``overwrite``; a study of the same settings is replaced when the new one is finished."""
    path = out / "study.json"
    if overwrite or not path.exists():
        return
    try:
        old = json.loads(path.read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"--out {out}: {path} exists and is not a study's; give another --out, "
                         "or add --overwrite to replace it") from None
    if old != _normal(s):
        what = f"{old.get('n_seeds')} seeds, {old.get('epochs')} epochs, arms {', '.join(old.get('arms', {}))}"
        raise ValueError(f"--out {out} holds a study of other settings ({what}); give another --out "
                         f"(e.g. --out /tmp/s), or add --overwrite to replace it")


def finished_study(out):
    """True when ``out/study.json`` holds a finished study (its seed runs), or is not a study's at all."""
    path = out / "study.json"
    if not path.exists():
        return False
    try:
        return "runs" in json.loads(path.read_text())
    except (OSError, ValueError, TypeError):
        return True  # someone's file: never replaced by an unfinished study


_RERUN_FIXED = {"quick": False, "epochs": None, "seeds": 10, "no_image_text": False, "codebook_sizes": [],
                "train_sizes": [], "off_grid": False, "off_grid_window": False, "window_train_size": None,
                "extra_seeds": 3, "overwrite": False}


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
