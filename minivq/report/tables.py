"""The ablation table, ``metrics.json`` and ``report.md`` of ``minivq demo``.

One row per variant of :data:`minivq.model.VARIANTS`, the paper's ablation columns (RET, LOC, CC, VQ-7),
mean ± std over seeds. Rows are keyed in snake_case, the keys of ``metrics.json``, which is strict JSON
(NaN as ``null``) written atomically.
"""
import json
import math
import re

import numpy as np

from ..io.atomic import atomic_write_text

__all__ = ["table_row", "column_title", "ablation_table", "format_chance", "snake_key", "jsonable",
           "write_metrics", "write_report"]

VARIANT_NAMES = {"summary": "summary only (SUM-1)", "vq": "+ shared VQ (SUM-2,3)",
                 "full": "+ CMCM (full method)"}
_TITLES = {"mean_r1": "mean R@1", "set_mean_r1": "set R@1", "agree": "agree", "distinct_top_codes": "distinct codes",
           "purity": "purity", "ppl": "ppl"}
_COUNTS = ("agree", "distinct_top_codes", "ppl")  # shown with one decimal (or none)


def table_row(ev):
    """The table's numbers of one :func:`minivq.metrics.evaluate.evaluate`, NaN where a variant has no codes.

    ``i2s_r1`` .. ``s2i_r10`` (RET, by the modalities' initials), ``mean_r1``, ``set_mean_r1`` (a candidate
    naming the same set of concepts counts), ``loc_s2i``, ``loc_i2s`` (LOC), ``agree`` (one-to-one),
    ``distinct_top_codes`` (the fewer of the two modalities; it bounds ``agree``), ``purity`` (CC), ``ppl``.
    """
    ret = ev["retrieval"]["summary"]
    name_a, name_b = ev["modalities"]
    a, b = name_a[0].lower(), name_b[0].lower()  # image -> i, speech -> s, text -> t
    row = {f"{a}2{b}_r{k}": ret["a2b"][f"R@{k}"] for k in (1, 5, 10)}
    row.update({f"{b}2{a}_r{k}": ret["b2a"][f"R@{k}"] for k in (1, 5, 10)})
    row["mean_r1"] = ret["mean_R@1"]
    nan = float("nan")
    row["set_mean_r1"] = ev["retrieval"].get("set", {}).get("mean_R@1", nan)
    loc, cc = ev.get("localization", {}), ev.get("code_concept", {})
    row[f"loc_{b}2{a}"] = loc.get(f"{name_b}->{name_a}", {}).get("accuracy", nan)
    row[f"loc_{a}2{b}"] = loc.get(f"{name_a}->{name_b}", {}).get("accuracy", nan)
    row["agree"] = cc.get("agreement", nan)
    distinct = cc.get("distinct_top_codes")
    row["distinct_top_codes"] = min(distinct.values()) if distinct else nan
    row["purity"] = cc.get("purity", nan)
    row["ppl"] = cc.get("usage", {}).get("all", {}).get("perplexity", nan)
    return row


def column_title(key, n_concepts=None):
    """The table heading of a :func:`table_row` key (``"i2s_r1"`` -> ``"I→S R@1"``)."""
    m = re.fullmatch(r"([a-z])2([a-z])_r(\d+)", key)
    if m:
        return f"{m[1].upper()}→{m[2].upper()} R@{m[3]}"
    m = re.fullmatch(r"loc_([a-z])2([a-z])", key)
    if m:
        return f"LOC {m[1].upper()}→{m[2].upper()}"
    if key == "agree" and n_concepts:
        return f"agree /{n_concepts}"
    return _TITLES.get(key, key)


def _cell(values, is_count):
    values = np.asarray(values, dtype=float)
    if np.all(np.isnan(values)):
        return "-"
    fmt = "{:.1f}" if is_count else "{:.3f}"
    if is_count and len(values) == 1 and values[0] == int(values[0]):
        fmt = "{:.0f}"
    text = fmt.format(np.mean(values))
    if len(values) > 1:
        text += " ± " + fmt.format(np.std(values))
    return text


def ablation_table(rows_by_variant, n_concepts=None):
    """Markdown table: variant (or any row label) -> one :func:`table_row` per seed; ``n_concepts`` goes in
    the agreement heading (``agree /10``)."""
    columns = list(next(iter(rows_by_variant.values()))[0])
    lines = ["| variant | " + " | ".join(column_title(c, n_concepts) for c in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for variant, rows in rows_by_variant.items():
        cells = [_cell([r[c] for r in rows], c in _COUNTS) for c in columns]
        lines.append(f"| {VARIANT_NAMES.get(variant, variant)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_chance(chance):
    """``{"speech->image": 0.083, ...}`` as ``"speech->image 0.083, ..."`` (or ``"-"``)."""
    return ", ".join(f"{k} {v:.3f}" for k, v in chance.items()) or "-"


def snake_key(key):
    """A key in snake_case: ``"mean_R@1"`` -> ``"mean_r1"``, ``"a->b"`` -> ``"a_to_b"``; identifiers stay
    (``"D"``, ``"K"``: the paper's symbols)."""
    key = str(key)
    if key.isidentifier():
        return key
    key = re.sub(r"R@(\d+)", r"r\1", key).replace("->", "_to_").replace("→", "2")
    return re.sub(r"_+", "_", re.sub(r"\W", "_", key)).strip("_").lower()


def jsonable(x):
    """Plain JSON values: snake_case keys, lists for arrays, None for NaN and inf."""
    if isinstance(x, dict):
        return {snake_key(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in (x.tolist() if isinstance(x, np.ndarray) else x)]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def write_metrics(path, payload):
    """Write a nested dict of numbers and arrays as strict, indented JSON (atomically): :func:`jsonable`."""
    atomic_write_text(path, json.dumps(jsonable(payload), indent=1, allow_nan=False) + "\n")


#: What a world's held-out split holds that training did not (minivq.data.world).
_HELD_OUT = {
    "easy": "digit images and speakers not in training",
    "hard_on_grid": "digit images, spoken takes and digit sets not in training; every voice type is heard in "
                    "training and each appears equally often",
    "hard": "digit images off the patch grid, spoken takes and digit sets not in training; every voice type "
            "is heard in training and each appears equally often",
}


def _intro(meta):
    split = meta.get("eval_split", "test")
    world = meta.get("config", {}).get("data", {}).get("world", "easy")
    held_out = _HELD_OUT.get(world, "held-out scenes")
    scored_on = (f"the held-out test split ({held_out}; the handwriting's 13 writers are shared by all splits)"
                 if split == "test" else f"the {split} split (a tuning run: test not used)")
    return (f"Image-speech pairs of the spoken-digit scenes of the {world} world "
            "(`minivq.data.world`): trained on the train split, "
            f"numbers measured on {scored_on}. "
            f"Retrieval ranks by S (SUM-3) among all {split} pairs (set R@1: a candidate naming the same set "
            "of digits counts); LOC is the fraction of spoken "
            "words whose most relevant image cell lies on the named digit (and the reverse); "
            "agreement counts the digits whose most frequent image code is also their most "
            "frequent speech code and the top code of no other digit (one-to-one); distinct codes "
            "is the number of different top codes among the digits (the fewer of the two "
            "modalities), an upper bound of agreement; purity is the fraction of digit units (both "
            "modalities) whose code's majority concept is their digit (CC).")


def write_report(path, table, meta, figures):
    """Write report.md (atomically): the command, the settings, ``table`` (:func:`ablation_table`), the figures.

    ``meta``: the payload of metrics.json (``command``, ``seeds``, ``wall_seconds``, ``config``; optionally
    ``eval_split``, ``chance``, ``set_ceiling_r1``, ``runs_done``, ``runs_total``); ``figures``: file name ->
    (caption, one sentence saying what it shows).
    """
    done, total = meta.get("runs_done"), meta.get("runs_total")
    status = []
    if done is not None and total is not None and done < total:
        status = [f"**Unfinished: {done} of {total} runs** so far (the table grows as runs finish; "
                  "the figures are drawn when all have finished).", ""]
    config = meta["config"]
    lines = [
        "# minivq demo: cross-modal discrete representation learning in miniature", "",
        f"Command: `{meta['command']}` (minivq {meta.get('minivq_version', '?')}, seeds {meta['seeds']}, "
        f"wall time {meta['wall_seconds']:.0f} s).", "", *status,
        _intro(meta), "", table, "",
        f"Chance for LOC: {format_chance(meta.get('chance', {}))}. Retrieval is bounded: scenes that name "
        "the same set of digits are indistinguishable to a mean-pooled model, so a perfect "
        f"digit-set retriever would reach an instance R@1 (the R@1 columns) of "
        f"{meta.get('set_ceiling_r1', float('nan')):.3f} here (`minivq.metrics.set_ceiling_r1`).", "",
        f"Data: `{json.dumps(config['data'])}`  ", f"Training: `{json.dumps(config['train'])}`  ",
        f"Model: `{json.dumps(config['model'])}`", "",
    ]
    for name, (caption, sentence) in figures.items():
        lines += [f"## {caption}", "", sentence, "", f"![{caption}]({name})", ""]
    atomic_write_text(path, "\n".join(lines))
