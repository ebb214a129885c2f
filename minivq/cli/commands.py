"""``minivq train``, ``minivq evaluate`` and ``minivq demo``: each checks its arguments (sizes, files,
folders, memory) before it loads data or trains, so a mistake costs seconds, not an epoch."""
import json
import time
import zipfile

import numpy as np

from .. import report
from ..io.checkpoint import CheckpointError, data_record
from ..io.lock import file_lock
from ..metrics.evaluate import evaluate
from ..train import TrainConfig, config_from_data, fit, init_state, load_checkpoint
from .checks import (UsageError, check_input_file, check_json_file, check_memory, check_modalities,
                         check_model_overrides, check_output_file, check_output_folder)
from .demo import QUICK, demo_settings, load_split, run_demo
from .progress import say

__all__ = ["train_cmd", "evaluate_cmd", "demo_cmd"]

DEFAULT_MODALITIES = ("image", "speech")


def _fresh(args):
    """A new run's data record, model overrides and TrainConfig, all checked."""
    settings = demo_settings(args.quick, args.epochs)
    modalities = check_modalities(args.modalities or DEFAULT_MODALITIES)
    variant = args.variant or "full"
    overrides = check_model_overrides({**settings["model"], **(args.model or {})}, modalities, variant)
    d = settings["data"]
    record = data_record(modalities, args.n_train or d["n_train"], d["n_val"], seed=0,
                         patch=overrides.get("patch", 8), world=args.world or d["world"])
    given = {k: getattr(args, k) for k in ("lr", "batch_size") if getattr(args, k) is not None}
    tc = TrainConfig(**{**settings["train"], "seed": args.seed or 0, **given})
    return record, {"variant": variant, **overrides}, tc


def _typed(value):
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else value


def _conflicts(args, state, record):
    """UsageError for a flag that contradicts what the checkpoint was trained with."""
    cfg, tc = state.model_cfg, state.train_cfg
    saved = {"modalities": list(record["modalities"]), "n_train": record["n_train"],
             "world": record.get("world", "easy"), "variant": cfg.variant,
             "seed": tc.seed, "lr": tc.lr, "batch_size": tc.batch_size}
    checks = [(f"--{name.replace('_', '-')} {_typed(getattr(args, name))}", getattr(args, name), name, value)
              for name, value in saved.items() if getattr(args, name) is not None]  # (flag, value, name, recorded)
    for key, value in (args.model or {}).items():
        check_model_overrides({key: value}, cfg.modalities, cfg.variant)
        checks.append((f"--model {json.dumps({key: value})}", value, key, getattr(cfg, key)))
    if args.quick:
        checks.append((f"--quick (n_val {QUICK['data']['n_val']})", QUICK["data"]["n_val"], "n_val", record["n_val"]))
    for flag, given, name, recorded in checks:
        if given != recorded:
            raise UsageError(f"{flag} conflicts with the checkpoint's {name} {_typed(recorded)} "
                             "(--resume continues on the checkpoint's data and settings; drop the flag)")


def _load_checkpoint(path, arg):
    """:func:`load_checkpoint`; a file that is not a checkpoint is a wrong argument (UsageError naming ``arg``)."""
    try:
        return load_checkpoint(path)
    except CheckpointError as e:
        raise UsageError(f"{arg} {e.path}: {e.reason}") from e


def _meta(path):
    """The checkpoint's meta alone (no arrays), or None if ``path`` is no checkpoint."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return json.loads(str(z["meta"]))
    except (OSError, EOFError, ValueError, KeyError, TypeError, zipfile.BadZipFile):
        return None


def _summary(path):
    """'image+speech full, epoch 40' from the checkpoint's meta, or None if it is no checkpoint."""
    meta = _meta(path)
    try:
        cfg = meta["model_cfg"]
        return f"{'+'.join(cfg['modalities'][:2])} {cfg['variant']}, epoch {meta['epoch']}"
    except (KeyError, TypeError):
        return None


def _check_not_overwriting(path):
    """UsageError when the --checkpoint file of a new run exists (--resume continues it, --overwrite replaces it)."""
    if not path.exists():
        return
    summary = _summary(path)
    if summary is None:
        raise UsageError(f"--checkpoint {path} exists and is not a minivq checkpoint: choose another file name, "
                         "or add --overwrite to replace it")
    raise UsageError(f"--checkpoint {path} exists ({summary}): add --resume to continue it, "
                     "or --overwrite to start over")


def _resume(args, path):
    """The checkpoint's state and data record, with --epochs applied; UsageError for conflicts."""
    state = _load_checkpoint(path, "--checkpoint")
    record = state.data
    if record is None:  # written by minivq 0.1: no data record, fall back to the flags
        d = demo_settings(args.quick)["data"]
        record = data_record(state.model_cfg.modalities, args.n_train or d["n_train"], d["n_val"], 0,
                             state.model_cfg.patch)
        say(f"note: {path} does not record its data (minivq 0.1); using {record['n_train']} train pairs")
        state.data = record
    _conflicts(args, state, record)
    if args.epochs is not None and args.epochs <= state.epoch:
        raise UsageError(f"--epochs {args.epochs}: the checkpoint {path} is at epoch {state.epoch} already; "
                         f"expected --epochs > {state.epoch} to train further")
    if args.epochs is None and state.train_cfg.epochs <= state.epoch:
        raise UsageError(f"--resume: the checkpoint {path} has finished its {state.epoch} epochs; "
                         f"pass --epochs N with N > {state.epoch} to train further")
    if args.epochs is not None:
        state.train_cfg.epochs = args.epochs
    return state, record


def _load(record):
    what = "toy pairs" if set(record["modalities"]) <= {"a", "b"} else "spoken-digit scenes"
    say(f"loading the {what} ({record['n_train']} train, {record['n_val']} val pairs) ...")
    t0 = time.perf_counter()
    splits = {s: load_split(record["modalities"], s, record[f"n_{s}"], record["patch"], record["seed"],
                            record.get("world", "easy"))
              for s in ("train", "val")}
    say(f"loaded in {time.perf_counter() - t0:.1f}s")
    return splits


def _signature(path):
    """(inode, size, mtime) of ``path``, or None: tells whether a run replaced the file."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _on_disk(path, before, resumed_epoch):
    """What ``path`` holds after Ctrl-C, read from the file itself (a save may have been cut short)."""
    if _signature(path) not in (None, before):
        epoch = (_meta(path) or {}).get("epoch", "?")
        return f"{path} holds epoch {epoch}; continue with --resume"
    if resumed_epoch is not None:
        return f"{path} still holds epoch {resumed_epoch} (no epoch finished since); continue with --resume"
    if path.exists():
        return f"no checkpoint was written; {path} still holds the earlier run (--overwrite replaces it after epoch 1)"
    return "no checkpoint was written (the first is saved after epoch 1)"


def train_cmd(args):
    """Train one variant on one modality pair, with an atomic checkpoint after every epoch, locked for the
    whole run (a second run on the same file is refused at once)."""
    path = check_output_file(args.checkpoint, "--checkpoint")
    with file_lock(path, "--checkpoint"):
        return _train(args, path)


def _train(args, path):
    if args.resume:
        check_input_file(path, "--checkpoint (with --resume)")
        state, record = _resume(args, path)
        model_kw, tc = {"variant": state.model_cfg.variant}, state.train_cfg
    else:
        if not args.overwrite:
            _check_not_overwriting(path)
        state, (record, model_kw, tc) = None, _fresh(args)
    check_memory(f"--n-train {record['n_train']}", record["n_train"] + record["n_val"])
    say(f"minivq train: {model_kw['variant']} on {' + '.join(record['modalities'])}, {record['n_train']} train "
        f"pairs, epochs {state.epoch + 1 if state else 1}..{tc.epochs}, seed {tc.seed}, checkpoint {path}"
        + (" (resumed)" if state else ""))
    before, resumed_epoch = _signature(path), state.epoch if state else None
    try:
        splits = _load(record)
        if state is None:
            state = init_state(config_from_data(splits["train"], record["modalities"], **model_kw), tc,
                               splits["train"])
            state.data = record
        fit(state, splits["train"], splits["val"], log=say, checkpoint=path)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_on_disk(path, before, resumed_epoch)) from None
    say(f"saved {path} (epoch {state.epoch}, step {state.step})")
    return state


#: Keys every JSON file of ``minivq evaluate --json`` holds: how it knows the files it may replace.
EVALUATE_KEYS = {"minivq_version", "checkpoint", "epoch", "split", "n", "lambda_r"}


def _written_by_evaluate(path):
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):  # not text, not JSON: not ours
        return False
    return isinstance(content, dict) and EVALUATE_KEYS <= set(content)


def evaluate_cmd(args):
    """Evaluate a checkpoint on a split and print (and optionally save) the numbers."""
    from .. import __version__
    path = check_input_file(args.checkpoint, "checkpoint")
    if args.json:
        check_json_file(args.json, "--json", inputs=[("the checkpoint", path)],
                        own=(_written_by_evaluate, "minivq evaluate"), overwrite=args.overwrite)
    check_memory(f"--n {args.n}", args.n, square=True)
    state = _load_checkpoint(path, "checkpoint")
    cfg, record = state.model_cfg, state.data or {}
    say(f"loading {args.n} {args.split} pairs ...")
    data = load_split(cfg.modalities, args.split, args.n, cfg.patch, record.get("seed", 0),
                      record.get("world", "easy"))
    say(f"evaluating {path} ({cfg.variant}, {' + '.join(cfg.modalities[:2])}, epoch {state.epoch}) "
        f"on {args.n} {args.split} pairs ...")
    t0 = time.perf_counter()
    ev = evaluate(state.params, cfg, data, lambda_r=args.lambda_r)
    say(f"evaluated in {time.perf_counter() - t0:.1f}s")
    say(report.ablation_table({cfg.variant: [report.table_row(ev)]}, ev.get("n_concepts")))
    if args.json:
        report.write_metrics(args.json, {"minivq_version": __version__, "checkpoint": str(path),
                                         "epoch": state.epoch, "split": args.split, "n": args.n,
                                         "lambda_r": args.lambda_r, "config": {"data": record,
                                         "model": cfg.to_dict()}, **ev})
        say(f"wrote {args.json}")
    return ev


def demo_cmd(args):
    """Train the variants, evaluate on test, print the table as rows come, write the report."""
    for name, values in (("--variants", args.variants), ("--seeds", args.seeds)):
        if len(set(values)) != len(values):
            raise UsageError(f"{name}: expected distinct values, got {' '.join(map(str, values))}")
    out = check_output_folder(args.out, "--out")
    return run_demo(args, out)
