"""The ablation table, ``metrics.json`` and ``report.md`` of ``minivq demo``.

Rows are the variants of :data:`minivq.model.VARIANTS` (summary only;
summary + shared VQ; the full method with CMCM); columns follow the paper's
ablation: retrieval R@1/5/10 in both directions (RET), localization both
ways (LOC), cross-modal agreement, distinct top codes and code purity (CC),
codebook perplexity (VQ-7). With several seeds each cell is the mean, with
the standard deviation beside it.

Rows are keyed in snake_case (``i2s_r1``, ``loc_s2i``, ``agree``, ...), the
keys ``metrics.json`` uses; :func:`column_title` gives the table's headings.
``metrics.json`` is strict JSON: NaN is written as ``null``, every key is
snake_case, and the file is written atomically.
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
    """The table's numbers for one evaluation (:func:`minivq.metrics.evaluate.evaluate`).

    Returns
    -------
    dict
        snake_case column -> float (NaN where the variant has no codes):
        ``i2s_r1`` .. ``s2i_r10`` (RET, the modalities' initials),
        ``mean_r1``, ``set_mean_r1`` (per content: a candidate naming the same
        set of concepts counts), ``loc_s2i`` and ``loc_i2s`` (LOC), ``agree`` (one-to-one
        agreement), ``distinct_top_codes`` (distinct top codes among the
        concepts, the fewer of the two modalities; it bounds ``agree``),
        ``purity`` (CC) and ``ppl`` (VQ-7).
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
    """Markdown table, one row per variant.

    Parameters
    ----------
    rows_by_variant : dict of str -> list of dict
        Variant (or any row label) -> one :func:`table_row` per seed.
    n_concepts : int or None
        Shown in the agreement heading (``agree /10``).

    Returns
    -------
    str
    """
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
    """A key of the evaluation dicts in snake_case: ``"mean_R@1"`` -> ``"mean_r1"``, ``"a->b"`` -> ``"a_to_b"``.

    Keys that are already identifiers are kept as they are (``"D"``, ``"K"``
    of ModelConfig stay the paper's symbols).
    """
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
    """Write a nested dict of numbers and arrays as strict, indented JSON (atomically).

    NaN and inf become ``null``; keys become snake_case (:func:`snake_key`).
    """
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
    """Write report.md (atomically): the command, the settings, the table, the figures.

    Parameters
    ----------
    path : str or Path
    table : str
        From :func:`ablation_table`.
    meta : dict
        ``command``, ``seeds``, ``wall_seconds``, ``config`` (``data``,
        ``train``, ``model``), and optionally ``eval_split`` (default
        ``"test"``), ``chance`` (LOC chance per direction),
        ``set_ceiling_r1``, ``runs_done`` and ``runs_total`` (an unfinished
        run says so).
    figures : dict of str -> (str, str)
        File name (relative to the report) -> (caption, one sentence saying
        what the figure shows).
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
