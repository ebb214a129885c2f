"""The ablation table, ``metrics.json`` and ``report.md`` of ``minivq demo``.

Rows are the variants of :data:`minivq.model.VARIANTS` (summary only;
summary + shared VQ; the full method with CMCM); columns follow the paper's
ablation: retrieval R@1/5/10 in both directions (RET), localization both
ways (LOC), cross-modal agreement and code purity (CC), codebook perplexity
(VQ-7). With several seeds each cell is the mean, with the standard
deviation beside it.
"""
import json
from pathlib import Path

import numpy as np

__all__ = ["table_row", "ablation_table", "format_chance", "write_metrics", "write_report"]

VARIANT_NAMES = {"summary": "summary only (SUM-1)", "vq": "+ shared VQ (SUM-2,3)",
                 "full": "+ CMCM (full method)"}


def table_row(ev):
    """The table's numbers for one evaluation (:func:`minivq.evaluate.evaluate`).

    Returns
    -------
    dict
        Column name -> float (NaN where the variant has no codes).
    """
    ret = ev["retrieval"]["summary"]
    name_a, name_b = ev["modalities"]
    a, b = name_a[0].upper(), name_b[0].upper()  # image -> I, speech -> S, text -> T
    row = {f"{a}→{b} R@{k}": ret["a2b"][f"R@{k}"] for k in (1, 5, 10)}
    row.update({f"{b}→{a} R@{k}": ret["b2a"][f"R@{k}"] for k in (1, 5, 10)})
    row["mean R@1"] = ret["mean_R@1"]
    nan = float("nan")
    loc, cc = ev.get("localization", {}), ev.get("code_concept", {})
    row[f"LOC {b}→{a}"] = loc.get(f"{name_b}->{name_a}", {}).get("accuracy", nan)
    row[f"LOC {a}→{b}"] = loc.get(f"{name_a}->{name_b}", {}).get("accuracy", nan)
    row[f"agree /{ev.get('n_concepts', '?')}"] = cc.get("agreement", nan)
    row["purity"] = cc.get("purity", nan)
    row["ppl"] = cc.get("usage", {}).get("all", {}).get("perplexity", nan)
    return row


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


def ablation_table(rows_by_variant):
    """Markdown table, one row per variant.

    Parameters
    ----------
    rows_by_variant : dict of str -> list of dict
        Variant -> one :func:`table_row` per seed.

    Returns
    -------
    str
    """
    columns = list(next(iter(rows_by_variant.values()))[0])
    lines = ["| variant | " + " | ".join(columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for variant, rows in rows_by_variant.items():
        cells = [_cell([r[c] for r in rows], c.startswith("agree") or c == "ppl") for c in columns]
        lines.append(f"| {VARIANT_NAMES.get(variant, variant)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_chance(chance):
    """``{"speech->image": 0.083, ...}`` as ``"speech->image 0.083, ..."`` (or ``"-"``)."""
    return ", ".join(f"{k} {v:.3f}" for k, v in chance.items()) or "-"


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return x


def write_metrics(path, payload):
    """Write a nested dict of numbers and arrays as indented JSON."""
    Path(path).write_text(json.dumps(_jsonable(payload), indent=1))


def write_report(path, table, meta, figures):
    """Write report.md: the command, the settings, the table, the figures.

    Parameters
    ----------
    path : str or Path
    table : str
        From :func:`ablation_table`.
    meta : dict
        ``command``, ``seeds``, ``wall_seconds``, ``data`` and ``train``
        (settings), ``model`` (the full method's ModelConfig as a dict), and
        optionally ``eval_split`` (default ``"test"``), ``chance`` (LOC
        chance per direction) and ``set_ceiling_r1``.
    figures : dict of str -> str
        Caption -> file name (relative to the report).
    """
    split = meta.get("eval_split", "test")
    scored_on = ("the held-out test split (unseen images and speakers)" if split == "test"
                 else f"the {split} split (a tuning run: test not used)")
    lines = [
        "# minivq demo: cross-modal discrete representation learning in miniature", "",
        f"Command: `{meta['command']}` (seeds {meta['seeds']}, wall time {meta['wall_seconds']:.0f} s).", "",
        "Image-speech pairs of the spoken-digit scenes: trained on the train split, "
        f"numbers measured on {scored_on}. "
        f"Retrieval ranks by S (SUM-3) among all {split} pairs; LOC is the fraction of spoken "
        "words whose most relevant image cell lies on the named digit (and the reverse); "
        "agreement counts the digits whose most frequent image code is also their most "
        "frequent speech code, and purity the fraction of digit units (both modalities) whose "
        "code's majority concept is their digit (CC).", "",
        table, "",
        f"Chance for LOC: {format_chance(meta.get('chance', {}))}. Retrieval is bounded: scenes that name "
        "the same set of digits are indistinguishable to a mean-pooled model, so a perfect "
        f"digit-set retriever would reach R@1 = {meta.get('set_ceiling_r1', float('nan')):.3f} "
        "here (`minivq.metrics.set_ceiling_r1`).", "",
        f"Data: `{json.dumps(meta['data'])}`  ", f"Training: `{json.dumps(meta['train'])}`  ",
        f"Model: `{json.dumps(meta['model'])}`", "",
    ]
    for caption, name in figures.items():
        lines += [f"## {caption}", "", f"![{caption}]({name})", ""]
    Path(path).write_text("\n".join(lines))
