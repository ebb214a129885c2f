"""What ``minivq study`` writes: paired statistics, the pre-stated protocol, study.md, the figures.

:func:`paired` is the study's one statistic and :func:`verdict` the rule :func:`protocol` states before any
result. Nothing here trains, and nothing imports :mod:`minivq.study.analysis` (which imports this module).
"""
import json
import math

import numpy as np
from scipy import stats

from ..report.figures import finish, new_figure

__all__ = ["paired", "verdict", "lr_grid", "protocol", "markdown", "plot_differences", "plot_curves"]

CLAIMS = {
    "claim1_retrieval": ("Claim 1, retrieval: the discrete path with CMCM complements the summary",
                         "set-level mean R@1 (by S), full", "summary"),
    "claim2_shared_codes": ("Claim 2, shared concept codes: a codeword means one digit in both modalities",
                            "one-to-one agreement (of 10 digits), full",
                            "k-means codebook of the summary model's units"),
    "claim3_localization": ("Claim 3, localization: a spoken digit's codes point at the digit in the image",
                            "code-based localization accuracy, full", "dense units ranked by cosine"),
}


def paired(method, baseline):
    """Paired differences ``method - baseline`` (one value per seed each) with a t-based 95% CI, sign counts.

    ``ci95`` = mean +- t_{0.975, n-1} sd / sqrt(n) (sd with ddof 1), ``p_value`` of the two-sided paired t-test.
    """
    a, b = np.asarray(method, dtype=float), np.asarray(baseline, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"method and baseline must be two equal-length 1-D sequences, got {a.shape} and {b.shape}")
    d, n = a - b, len(a)
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    if n > 1:
        half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
        t = mean / (sd / math.sqrt(n)) if sd > 0 else (math.inf if mean else 0.0)
        p = float(2 * stats.t.sf(abs(t), n - 1)) if math.isfinite(t) else 0.0
    else:
        half = p = math.nan
    return {"n": n, "mean_method": float(a.mean()), "mean_baseline": float(b.mean()), "differences": d.tolist(),
            "mean_difference": mean, "sd": sd, "ci95": [mean - half, mean + half], "p_value": p,
            "n_positive": int((d > 0).sum()), "n_negative": int((d < 0).sum()), "n_zero": int((d == 0).sum())}


def verdict(stat):
    """The pre-stated rule: "holds" if the 95% CI lies above 0, "reversed" if below, else "not shown"."""
    low, high = stat["ci95"]
    if not (math.isfinite(low) and math.isfinite(high)):
        return "not shown"
    return "holds" if low > 0 else "reversed" if high < 0 else "not shown"


def lr_grid(s, arm):
    """The learning rates tried for an arm: its own ``lr_grid`` or the study's."""
    return s["arms"][arm].get("lr_grid", s["lr_grid"])


def protocol(s, n_seeds):
    """The protocol and the primary endpoints, in words, from the settings (written before any result)."""
    grid = ", ".join(f"{lr:g}" for lr in s["lr_grid"])
    lams = ", ".join(f"{lam:g}" for lam in s["lambdas"])
    return f"""## Protocol (stated before any result)

- **World**: `minivq.data.world.world_scenes(world="{s['world']}")`: digits on the 8-pixel patch
  grid (off the grid, the per-patch image encoder of every variant stays at chance: see Left
  out), 1-2 unnamed distractor digits per image, 2-5 named digits, 25% of the digit sets of each size never named in
  training and named by half of the val and test scenes, flite voices split by take so every
  voice type is heard in training, every voice equally frequent in each split. The
  handwritten digits' 13 writers are shared by all splits.
- **Runs**: variants `summary` (SUM-1 only), `vq` (+ shared codebook, no CMCM: the
  codebook-only arm) and `full` (+ CMCM), batch {s['batch_size']}, {s['n_train']} training
  scenes, each trained the number of epochs chosen on val, at most {s['epochs']} (the same
  budget for every variant). Seed s (0..{n_seeds - 1}) fixes the weights, the shuffling, the
  training set and a test gallery of {s['n_test']} scenes; the variants of one seed share both,
  so differences are paired by seed.
- **Tuning, the same for every variant**: one run per tuning seed {s['tune_seeds']} and Adam lr
  in {{{grid}}}, trained to the budget and scored on the fixed val set ({s['n_val']} scenes)
  after {', '.join(map(str, s['epoch_grid']))} epochs; the (lr, epochs) with the best mean val
  set-level R@1 (ranking by S) is chosen per variant (ties: the smaller lr, then fewer epochs).
  At that point: lambda of S + lambda S^code from {{{lams}}} for `vq` and `full`, and the
  claim-3 dense baseline (the full model's own units, or the summary model's units: the
  stronger on val). Test is touched only by the seed runs.
- **Primary endpoints** (test, image-speech, N = {n_seeds} seeds, paired difference with a
  t-based 95% CI and sign counts):
  1. Claim 1: set-level mean R@1 (both directions, a candidate naming the same digit set
     counts) of `full` minus `summary`, both ranking by S (SUM-3).
  2. Claim 2: one-to-one agreement (digits whose top code is the same in both modalities and
     no other digit's) of `full` minus that of a k-means codebook of K codes fitted post hoc
     on the `summary` model's training-set units.
  3. Claim 3: accuracy of code-based localization (spoken digit -> image patch, LOC) of
     `full` minus the dense baseline (cosine between the span's mean unit and each patch).
- **Verdict rule**: holds if the CI lies above 0; reversed if it lies below 0; otherwise not
  shown (the study cannot tell the method from the baseline).
- **Secondary** (reported, no verdict): `vq` against `summary` and `full`; S + lambda S^code;
  held-out vs seen digit sets; voice types; the reverse localization and the pointing game;
  transfer accuracy; image-text (same protocol, its own tuning); other codebook sizes and
  training-set sizes when run.{_own_tuning(s)}
"""


def _own_tuning(s):
    """The protocol's line on secondary arms tuned on their own (none in the default study)."""
    lines = []
    for arm, a in s["arms"].items():
        if a.get("extra") and a.get("own_tuning"):
            grid = ", ".join(f"{lr:g}" for lr in lr_grid(s, arm))
            lines.append(f"\n- **{arm}** (secondary, the first {s['extra_seeds']} seeds): world "
                         f"`{a.get('world', s['world'])}`, model settings {a['model']}, {a['n_train']} training "
                         f"scenes, tuned on its own val "
                         f"set by the same procedure with lr in {{{grid}}}.")
    return "".join(lines)


def _f(x, digits=3):
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _stat_row(name, st, what=None):
    lo, hi = st["ci95"]
    return (f"| {name} | {_f(st['mean_method'])} | {_f(st['mean_baseline'])} | {_f(st['mean_difference'], 3)} "
            f"[{_f(lo)}, {_f(hi)}] | {st['n_positive']}/{st['n_negative']}/{st['n_zero']} | "
            f"{_f(st['p_value'], 3)} |" + (f" {what} |" if what is not None else ""))


def markdown(payload):
    """study.md from the payload of study.json (the protocol first, as written before the runs)."""
    r = payload["results"]
    lines = [f"# minivq study: the paper's claims, tested fairly\n",
             f"`{payload['command']}` (minivq {payload['minivq_version']}); {payload['n_seeds']} seeds, "
             f"{payload['jobs']} worker processes, wall time {payload['wall_seconds']:.0f} s.\n",
             payload["protocol"],
             "## Primary endpoints\n",
             "| claim | method | baseline | difference [95% CI] | seeds +/-/0 | p | verdict |",
             "|---|---|---|---|---|---|---|"]
    for key, (title, method, base) in CLAIMS.items():
        st = r["primary"][key]
        lines.append(_stat_row(f"{title} ({method} vs {st.get('baseline_name', base)})", st, f"**{st['verdict']}**"))
    lines += ["", "Per-seed values (method, baseline):", ""]
    for key in CLAIMS:
        st = r["primary"][key]
        pairs = ", ".join(f"{_f(m)}/{_f(b)}" for m, b in zip(st["method_values"], st["baseline_values"]))
        lines.append(f"- {key}: {pairs}")
    lines += ["", "## Chance levels and ceilings (test, mean over seeds)", ""]
    lines += [f"- {k}: {_f(v)}" for k, v in r["chance"].items()]
    lines += ["", "## Secondary results (no verdict)", "",
              "| comparison | method | baseline | difference [95% CI] | seeds +/-/0 | p |", "|---|---|---|---|---|---|"]
    lines += [_stat_row(name, st) for name, st in r["secondary"].items()]
    lines += ["", "## Means over seeds (test)", ""] + _means_table(r["means"])
    lines += ["", "## Tuning on val", ""] + [f"- {line}" for line in payload["tuning"]["summary"]]
    lines += ["", "## Learning curves", "", "![learning curves](learning_curves.png)", "",
              f"Set-level mean R@1 (ranking by S) on the first {payload['settings']['n_curve']} val scenes after "
              "every epoch: the seed runs (each to its variant's chosen epochs; mean over seeds with the min-max "
              "band) and, dashed, the tuning run of each variant to the whole budget, with its chosen epoch "
              "marked. Gain over the last fifth of the seed runs' epochs (mean over seeds):", ""]
    lines += [f"- {k}: {_f(v)}" for k, v in r["late_gain"].items()]
    lines += ["", "## Per-seed paired differences", "", "![paired differences](paired_differences.png)", "",
              "## Data", "", f"- world: `{json.dumps(payload['world']['settings'])}`",
              f"- writers: {payload['world']['writers']}",
              f"- test voices: {payload['world']['test_voices']}", "",
              "## Left out", ""] + [f"- {x}" for x in payload["left_out"]]
    return "\n".join(lines) + "\n"


def _means_table(means):
    arms = list(means)
    keys = sorted({k for arm in arms for v in means[arm].values() for k in v})
    out = []
    for arm in arms:
        variants = list(means[arm])
        out += [f"**{arm}**", "", "| metric | " + " | ".join(variants) + " |", "|---" * (len(variants) + 1) + "|"]
        for k in keys:
            if any(k in means[arm][v] for v in variants):
                out.append(f"| {k} | " + " | ".join(_f(means[arm][v].get(k)) for v in variants) + " |")
        out.append("")
    return out


def _figure(n_panels, width=3.2, height=3.0, max_columns=3):
    """A figure of n_panels axes, at most max_columns to a row (unused axes of the last row hidden)."""
    cols = min(n_panels, max_columns)
    rows = -(-n_panels // cols)
    fig = new_figure((width * cols, height * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def plot_differences(primary, path):
    """One panel per claim: each seed's paired difference, the mean and its 95% CI, the zero line."""
    fig, axes = _figure(len(primary))
    for ax, (key, st) in zip(axes, primary.items()):
        d = np.asarray(st["differences"], dtype=float)
        ax.axhline(0.0, color="grey", lw=1)
        ax.scatter(np.linspace(-0.15, 0.15, len(d)), d, s=18, color="tab:blue", zorder=3, label="one seed")
        lo, hi = st["ci95"]
        if math.isfinite(lo):
            mean = st["mean_difference"]
            ax.errorbar([0.4], [mean], yerr=[[mean - lo], [hi - mean]], fmt="D", color="black", capsize=4,
                        label="mean, 95% CI")
        ax.set(xlim=(-0.5, 0.8), xticks=[])
        ax.set_title(f"{key}\n({st['verdict']})", fontsize=9)
        ax.set_ylabel(f"method - {st.get('baseline_name', 'baseline')}", fontsize=8)
    axes[0].legend(fontsize=7, loc="best")
    finish(fig, path)


def plot_curves(curves, path, tuning=None):
    """Val set-level R@1 per epoch, one panel per arm: seed runs (mean line, min-max band) per variant,
    and the tuning curve to the whole budget (dashed, ``tuning[arm]["val"][variant]["curve"]``) with
    the chosen epoch (``tuning[arm]["epochs"][variant]``) marked."""
    fig, axes = _figure(len(curves), width=4.0)
    for ax, (arm, by_variant) in zip(axes, curves.items()):
        for color, (variant, runs) in zip(("tab:blue", "tab:orange", "tab:green"), sorted(by_variant.items())):
            y = np.asarray(runs, dtype=float)  # (seeds, epochs)
            x = np.arange(1, y.shape[1] + 1)
            ax.plot(x, y.mean(axis=0), color=color, label=variant)
            ax.fill_between(x, y.min(axis=0), y.max(axis=0), color=color, alpha=0.2)
            if tuning and arm in tuning:
                t = np.asarray(tuning[arm]["val"][variant]["curve"], dtype=float)
                ax.plot(np.arange(1, len(t) + 1), t, color=color, ls="--", lw=0.8)
                e = tuning[arm]["epochs"][variant]
                ax.plot([e], [t[e - 1]], marker="v", color=color, ms=7)
        note = "(dashed: tuning run; triangle: chosen epochs)" if tuning and arm in tuning else \
            "(epochs chosen for image_speech)"
        ax.set_title(f"{arm} {note}" if len(arm) + len(note) < 60 else f"{arm}\n{note}", fontsize=8)  # fits a panel
        ax.set(xlabel="epoch", ylabel="val set-level mean R@1")
        ax.legend(fontsize=7)
    finish(fig, path)
