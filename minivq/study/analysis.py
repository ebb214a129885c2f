"""From the runs of ``minivq study`` to its choices on val (:func:`tune_choices`) and its results
(:func:`analyse`: the primary endpoints with verdicts, secondary comparisons without, means, curves)."""
import numpy as np

from .report import lr_grid, paired, verdict

__all__ = ["VARIANTS", "analyse", "flatten", "tune_choices", "tuned_arms"]

PRIMARY_ARM = "image_speech"
VARIANTS = ("summary", "vq", "full")
CHANCE_KEYS = ("chance_unit_to_image", "chance_digit_unit_to_image", "chance_point_to_image",
               "chance_unit_from_image", "chance_digit_unit_from_image", "inst_ceiling_r1", "set_chance_r1",
               "set_ceiling_r1")


def flatten(metrics, prefix=""):
    """Nested metric dicts as one level, keys joined by ``_`` (``set_mean_r1_voice_flite_slt``)."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}_"))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _seeds(records, arm):
    return sorted({r["seed"] for r in records if r["arm"] == arm})


def _values(by, arm, variant, key, seeds):
    return [float(flatten(by[(arm, variant, s)])[key]) for s in seeds]


def _compare(by, seeds, method, baseline, name=None):
    """Paired statistics of two (arm, variant, key) series over the seeds."""
    m, b = _values(by, *method, seeds), _values(by, *baseline, seeds)
    st = paired(m, b)
    st.update(method_values=m, baseline_values=b, method_series=list(method), baseline_series=list(baseline))
    if name:
        st["baseline_name"] = name
    return st


def _endpoints(by, seeds, arm, base3):
    """The three pre-stated endpoints of one arm (claim-3 baseline: ``base3`` from val)."""
    dense = (arm, "full" if base3 == "full_units" else "summary", "loc_dense_to_image")
    return {
        "claim1_retrieval": _compare(by, seeds, (arm, "full", "set_mean_r1"), (arm, "summary", "set_mean_r1"),
                                     "summary"),
        "claim2_shared_codes": _compare(by, seeds, (arm, "full", "agreement"), (arm, "summary", "kmeans_agreement"),
                                        "k-means on the summary model's units"),
        "claim3_localization": _compare(by, seeds, (arm, "full", "loc_code_to_image"), dense,
                                        "the full model's own units" if base3 == "full_units"
                                        else "the summary model's units"),
    }


def _secondary(by, seeds, choices, records):
    """The secondary comparisons of the primary arm, then those of the other arms."""
    A, c = PRIMARY_ARM, choices[PRIMARY_ARM]
    lam = repr(float(c["lambda"]["full"]))
    other = "summary" if c["claim3_baseline"] == "full_units" else "full"
    base = (A, "full" if other == "summary" else "summary", "loc_dense_to_image")
    rows = {
        "claim 1: vq - summary (set mean R@1)": ((A, "vq", "set_mean_r1"), (A, "summary", "set_mean_r1")),
        "claim 1: full - vq, the part of CMCM (set mean R@1)": ((A, "full", "set_mean_r1"), (A, "vq", "set_mean_r1")),
        f"claim 1: full ranked by S + {c['lambda']['full']:g} S^code - full by S":
            ((A, "full", f"combined_set_mean_r1_{lam}"), (A, "full", "set_mean_r1")),
        "claim 1: full - summary, instance mean R@1": ((A, "full", "inst_mean_r1"), (A, "summary", "inst_mean_r1")),
        "claim 1: full - summary, scenes naming held-out digit sets":
            ((A, "full", "set_mean_r1_heldout"), (A, "summary", "set_mean_r1_heldout")),
        "claim 1: full - summary, scenes naming seen digit sets":
            ((A, "full", "set_mean_r1_seen"), (A, "summary", "set_mean_r1_seen")),
        "claim 2: vq - k-means (agreement)": ((A, "vq", "agreement"), (A, "summary", "kmeans_agreement")),
        "claim 2: full - vq (agreement)": ((A, "full", "agreement"), (A, "vq", "agreement")),
        "claim 2: full - k-means (transfer accuracy)": ((A, "full", "transfer"), (A, "summary", "kmeans_transfer")),
        f"claim 3: full codes - dense {other} units":
            ((A, "full", "loc_code_to_image"), (A, other, "loc_dense_to_image")),
        "claim 3: vq codes - dense baseline": ((A, "vq", "loc_code_to_image"), base),
        "claim 3: pointing game, full codes - dense baseline":
            ((A, "full", "point_code_to_image"), base[:2] + ("point_dense_to_image",)),
        "claim 3: image -> speech, full codes - dense baseline":
            ((A, "full", "loc_code_from_image"), base[:2] + ("loc_dense_from_image",)),
    }
    voices = sorted(k[len("set_mean_r1_voice_"):] for k in flatten(by[(A, "full", seeds[0])])
                    if k.startswith("set_mean_r1_voice_"))
    for v in voices:
        rows[f"claim 1: full - summary, voice {v}"] = ((A, "full", f"set_mean_r1_voice_{v}"),
                                                       (A, "summary", f"set_mean_r1_voice_{v}"))
    out = {name: _compare(by, seeds, m, b) for name, (m, b) in rows.items()}
    for arm in sorted({r["arm"] for r in records} - {A}):
        base3 = choices.get(arm, c)["claim3_baseline"]
        for key, st in _endpoints(by, _seeds(records, arm), arm, base3).items():
            out[f"{arm}: {key.replace('_', ' ', 1)}"] = st
    return out


def _late_gain(histories):
    """Mean over runs of the val set-level R@1 gain over the last fifth of each run's epochs."""
    return float(np.mean([h[-1]["val_set_r1"] - h[max(int(0.8 * len(h)) - 1, 0)]["val_set_r1"]
                          for h in histories]))


def _mean_at(recs, epoch, key):
    """Mean over tuning runs of one val metric after ``epoch`` epochs (-inf if a run diverged)."""
    if any(r["diverged"] for r in recs):
        return -np.inf
    return float(np.mean([flatten(r["metrics_by_epoch"][str(epoch)])[key] for r in recs]))


def tuned_arms(s):
    """The arms tuned on val: the primary ones and the secondary arms marked ``own_tuning``."""
    return [arm for arm, a in s["arms"].items() if not a.get("extra") or a.get("own_tuning")]


def tune_choices(s, records):
    """Per arm and variant, from the tuning runs on val: (lr, epochs), lambda; and the claim-3 baseline.

    (lr, epochs) maximizes the mean val set-level R@1 (by S) over the tuning seeds (ties: the smaller lr, then
    fewer epochs); lambda of S + lambda S^code and the dense baseline of claim 3 are chosen at that point.
    """
    choices = {}
    for arm in tuned_arms(s):
        c = choices[arm] = {"lr": {}, "epochs": {}, "lambda": {}, "val": {}}
        for v in VARIANTS:
            by_lr = {lr: [r for r in records if (r["arm"], r["variant"], r["lr"]) == (arm, v, lr)]
                     for lr in lr_grid(s, arm)}
            grid = {(lr, e): _mean_at(by_lr[lr], e, "set_mean_r1") for lr in sorted(by_lr) for e in s["epoch_grid"]}
            lr, epochs = max(grid, key=lambda point: grid[point])  # the first maximum: ties as documented
            c["lr"][v], c["epochs"][v] = lr, epochs
            best = by_lr[lr]
            c["val"][v] = {"set_mean_r1": {f"lr {x:g}, {e} epochs": y for (x, e), y in grid.items()},
                           "curve": np.mean([[h["val_set_r1"] for h in r["history"]] for r in best], axis=0).tolist(),
                           "loc_dense_to_image": _mean_at(best, epochs, "loc_dense_to_image")}
            if v != "summary":
                lam = {x: _mean_at(best, epochs, f"combined_set_mean_r1_{float(x)!r}") for x in s["lambdas"]}
                c["lambda"][v] = float(max(s["lambdas"], key=lambda x: lam[x]))
                c["val"][v]["combined_set_mean_r1"] = {f"{x:g}": y for x, y in lam.items()}
        own, summary = c["val"]["full"]["loc_dense_to_image"], c["val"]["summary"]["loc_dense_to_image"]
        c["claim3_baseline"] = "full_units" if own > summary else "summary_units"
    return choices


def analyse(s, choices, records):
    """Primary endpoints with verdicts, secondary comparisons, chance levels, means, learning curves."""
    by = {(r["arm"], r["variant"], r["seed"]): r["metrics"] for r in records}
    seeds = _seeds(records, PRIMARY_ARM)
    primary = _endpoints(by, seeds, PRIMARY_ARM, choices[PRIMARY_ARM]["claim3_baseline"])
    for st in primary.values():
        st["verdict"] = verdict(st)
    means, curves, late = {}, {}, {}
    for (arm, variant) in sorted({(r["arm"], r["variant"]) for r in records}):
        runs = [r for r in records if (r["arm"], r["variant"]) == (arm, variant)]
        flat = [flatten(r["metrics"]) for r in runs]
        means.setdefault(arm, {})[variant] = {k: float(np.nanmean([f[k] for f in flat]))
                                              for k in flat[0] if all(k in f for f in flat)}
        curves.setdefault(arm, {})[variant] = [[h["val_set_r1"] for h in r["history"]] for r in runs]
        late[f"{arm} {variant}"] = _late_gain([r["history"] for r in runs])
    chance = {k: means[PRIMARY_ARM]["summary"][k] for k in CHANCE_KEYS if k in means[PRIMARY_ARM]["summary"]}
    return {"primary": primary, "secondary": _secondary(by, seeds, choices, records), "chance": chance,
            "means": means, "curves": curves, "late_gain": late}
