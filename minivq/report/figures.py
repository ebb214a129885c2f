"""Figures of minivq: training curves, code usage, code x concept maps, localization, retrieval.

Each function draws one figure from numbers the evaluation computed (:mod:`minivq.metrics.evaluate`) and
returns it, detached from pyplot (nothing piles up in a long run; Jupyter displays a returned figure); with a
``path`` it also writes it there, atomically. minivq never selects a matplotlib backend.
"""
from pathlib import Path

import numpy as np

from .. import metrics
from ..data import DIGIT_WORDS
from ..io.atomic import atomic_write

__all__ = ["plot_training_curves", "plot_code_usage", "plot_code_digit", "plot_localization",
           "plot_retrieval"]


def new_figure(figsize):
    """An empty figure with a constrained layout, detached from pyplot."""
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=figsize, layout="constrained")
    plt.close(fig)
    return fig


def _figure(*args, figsize, **kwargs):
    """:func:`new_figure` and its ``subplots(*args, **kwargs)``: (fig, axes)."""
    fig = new_figure(figsize)
    return fig, fig.subplots(*args, **kwargs)


def finish(fig, path):
    """Write fig to path (format from the suffix, PNG by default) if path is given; return fig."""
    if path is not None:
        fmt = Path(path).suffix.lstrip(".").lower() or "png"
        atomic_write(path, lambda f: fig.savefig(f, format=fmt, dpi=90))
    return fig


def plot_training_curves(histories, path=None):
    """L_MMS, L_CMCM and the quick validation R@1 per epoch, one line per variant (``histories``: variant ->
    ``state.history`` of :func:`minivq.train.fit`)."""
    from matplotlib.ticker import MaxNLocator
    fig, axes = _figure(1, 3, figsize=(12, 3.4))
    val_pairs = set()
    for i, (variant, hist) in enumerate(histories.items()):
        epochs, style = [h["epoch"] for h in hist], {"label": variant, "color": f"C{i}"}
        axes[0].plot(epochs, [h["mms"] for h in hist], **style)
        if any(h.get("cmcm", 0) for h in hist):
            axes[1].plot(epochs, [h["cmcm"] for h in hist], **style)
        axes[2].plot(epochs, [h.get("val_r1", np.nan) for h in hist], **style)
        val_pairs |= {h["val_pairs"] for h in hist if "val_pairs" in h}
    size = f"\n(among {val_pairs.pop()} validation pairs)" if len(val_pairs) == 1 else ""
    titles = ("L_MMS on the training batches", "L_CMCM on the training batches", f"quick check: mean R@1{size}")
    for ax, title, ylabel in zip(axes, titles, ("L_MMS (MMS)", "L_CMCM (CM-4)", "mean R@1 (RET)")):
        ax.set(title=title, xlabel="epoch", ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.get_lines():
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no variant trains it", ha="center", va="center", transform=ax.transAxes)
    return finish(fig, path)


def plot_code_usage(cc, path=None):
    """Fraction of each modality's units on each code (VQ-7) of ``cc = evaluate(...)["code_concept"]``."""
    counts = {m: np.asarray(c).sum(axis=0) for m, c in cc["counts"].items()}  # (K,) per modality
    K = len(next(iter(counts.values())))
    fig, ax = _figure(figsize=(10, 3.2))
    width = 0.8 / len(counts)
    for i, (m, c) in enumerate(counts.items()):
        ax.bar(np.arange(K) + i * width, c / max(c.sum(), 1), width=width, label=f"{m} units")
    ax.set_xticks(np.arange(K) + 0.4 - width / 2, range(K), fontsize=7)
    ax.set_yscale("log")  # background cells and silences take one or two codes
    ax.set(xlabel="code k", ylabel="fraction of the modality's units (log)")
    ax.set_title(f"codebook usage per modality: {cc['shared_codes']:.2f} of the used codes are used by both")
    ax.legend()
    return finish(fig, path)


def _code_order(tops, K):
    """Columns: the first modality's top codes in concept order, then the second's, then the rest."""
    first = [k for top in tops for k in top if k >= 0]
    return list(dict.fromkeys(first + list(range(K))))


def _code_digit_row(subfig, counts, names, label):
    """One model's code x concept maps, a panel per modality, with one colour bar (CC)."""
    a, b = list(counts)
    agr = metrics.cross_modal_agreement(counts[a], counts[b])
    C, K = counts[a].shape[0] - 1, counts[a].shape[1]
    order = _code_order([agr["top_a"], agr["top_b"]], K)
    column = {k: j for j, k in enumerate(order)}
    axes = subfig.subplots(1, 2)
    for ax, m, top in zip(axes, (a, b), (agr["top_a"], agr["top_b"])):
        c = counts[m][:-1][:, order].astype(float)  # (C, K): concepts x codes, background dropped
        c /= np.maximum(c.sum(axis=1, keepdims=True), 1)
        im = ax.imshow(c, aspect="auto", cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
        rows = np.flatnonzero(top >= 0)
        ax.scatter([column[k] for k in top[rows]], rows, marker="s", s=70, facecolors="none",
                   edgecolors="red", linewidths=1.2)
        ax.set_yticks(range(C), names[:C], fontsize=8)
        for tick, ok in zip(ax.get_yticklabels(), agr["agree"]):
            tick.set_color("green" if ok else "black")
        ax.set_xticks(range(K), order, fontsize=6)
        ax.set(xlabel="code (ordered by the top codes)", title=f"{m}: each concept's units per code (red: top code)")
    subfig.colorbar(im, ax=list(axes), label="fraction of the concept's units", shrink=0.9)
    purity = metrics.code_purity(counts[a] + counts[b])
    subfig.suptitle(f"{label}agreement {agr['n_agree']}/{C} concepts (one-to-one, names in green); "
                    f"distinct top codes {a} {agr['n_distinct_a']}/{C}, {b} {agr['n_distinct_b']}/{C}; "
                    f"purity {purity:.2f}", fontsize=10)


def plot_code_digit(cc, path=None, *, baseline=None, concept_names=DIGIT_WORDS):
    """Per modality, the fraction of each concept's units on each code (CC), a red square on its top code.

    ``cc``: ``evaluate(...)["code_concept"]`` of the full method; ``baseline``: the same of the VQ-only
    variant, drawn above it (the claim is the contrast). The titles state the one-to-one agreement and the
    distinct top codes (METHOD.md section 7).
    """
    rows = [("VQ only (no CMCM): ", baseline), ("full method: ", cc)] if baseline is not None else [("", cc)]
    fig = new_figure((13, 3.9 * len(rows)))
    subfigs = np.atleast_1d(fig.subfigures(len(rows), 1))
    for subfig, (label, c) in zip(subfigs, rows):
        counts = {m: np.asarray(v) for m, v in c["counts"].items()}
        _code_digit_row(subfig, counts, list(concept_names), label)
    return finish(fig, path)


def _speech_panel(ax, data, i, rel, frames, spec_range, vmax, title):
    """A caption's spectrogram with the relevance of each speech unit (red) and the word spans."""
    T = int(data["speech_mask"][i].sum())
    im = ax.imshow(data["speech"][i, :T].T, origin="lower", aspect="auto", cmap="gray_r",
                   vmin=spec_range[0], vmax=spec_range[1])
    for (s, e), d in zip(data["word_spans"][i], data["digits"][i]):
        if d >= 0:
            ax.axvspan(s, e, color="tab:blue", alpha=0.2)
            ax.axvline(s, color="tab:blue"), ax.axvline(e, color="tab:blue", ls="--")
    keep = frames < T
    ax2 = ax.twinx()
    ax2.plot(frames[keep], rel[keep], color="tab:red", marker=".")
    ax2.set_ylim(0, 1.05 * vmax)
    ax2.tick_params(labelsize=7, colors="tab:red")
    ax.set_title(title, fontsize=9)
    ax.set(xlabel="frame (10 ms)", ylabel="mel band")
    return im


def plot_localization(data, enc, cfg, path=None, samples=(0, 1, 2)):
    """Spoken word -> image cells, and image digit -> speech units (LOC), two rows per scene of ``samples``.

    ``enc``: :func:`minivq.metrics.evaluate.encode_split` of ``data`` by a model with codes. Image rows: the
    relevance sum_k P_w(k) p(k | h_u) of every cell to the spoken word w; speech rows: that of every speech
    unit to the image digit (red) over the spectrogram, the words' true spans in blue.
    """
    digits = data["digits"]
    P_sp, _ = metrics.concept_distributions(enc["speech"]["p"], enc["speech"]["labels"], enc["speech"]["M"], digits)
    P_im, _ = metrics.concept_distributions(enc["image"]["p"], enc["image"]["labels"], enc["image"]["M"], digits)
    rel_im = metrics.relevance(P_sp, enc["image"]["p"], enc["image"]["M"])  # (B, L, T_img)
    rel_sp = metrics.relevance(P_im, enc["speech"]["p"], enc["speech"]["M"])  # (B, L, T_sp)
    samples = list(samples)
    H, W = data["images"].shape[1:]
    frames = np.arange(rel_sp.shape[2]) * cfg.speech_stride ** 2  # centre frame of each unit
    shown = np.concatenate([np.ravel(r[samples][np.isfinite(r[samples])]) for r in (rel_im, rel_sp)])
    vmax = float(shown.max()) if shown.size else 1.0
    spec = np.concatenate([data["speech"][i, :int(data["speech_mask"][i].sum())].ravel() for i in samples])
    spec_range = tuple(np.percentile(spec, [1, 99]))
    n_cols = int(max((digits[samples] >= 0).sum(axis=1)))  # the most digits in a drawn scene
    fig, axes = _figure(2 * len(samples), n_cols, figsize=(4.4 * n_cols + 1.5, 3.3 * len(samples)), squeeze=False)
    im_heat = im_spec = None
    for row, i in enumerate(samples):
        for j in range(n_cols):
            ax_im, ax_sp = axes[2 * row, j], axes[2 * row + 1, j]
            d = digits[i, j]
            if d < 0:
                ax_im.axis("off"), ax_sp.axis("off")
                continue
            heat = rel_im[i, j].reshape(H // cfg.patch, W // cfg.patch)
            ax_im.imshow(data["images"][i], cmap="gray")
            im_heat = ax_im.imshow(np.kron(heat, np.ones((cfg.patch, cfg.patch))), cmap="magma", alpha=0.6,
                                   vmin=0, vmax=vmax)
            ax_im.set_title(f"scene {i}: spoken '{DIGIT_WORDS[d]}' -> image cells", fontsize=9)
            ax_im.set_xticks([]), ax_im.set_yticks([])
            im_spec = _speech_panel(ax_sp, data, i, rel_sp[i, j], frames, spec_range, vmax,
                                    f"scene {i}: image digit {d} -> speech units (red)")
    if im_heat is not None:
        fig.colorbar(im_heat, ax=axes.ravel().tolist(), label="relevance (LOC): image cells, and speech units (red)",
                     shrink=0.6)
        fig.colorbar(im_spec, ax=axes.ravel().tolist(), location="bottom", shrink=0.4, aspect=40,
                     label="spectrogram: log-mel, normalized per band")
    return finish(fig, path)


def plot_retrieval(data, enc, path=None, queries=(0, 1, 2, 3), top=4):
    """Spoken captions of ``data`` as queries and the ``top`` images ranked first by S (RET); query i's true
    image is image i (``enc``: :func:`minivq.metrics.evaluate.encode_split` of ``data``)."""
    S = enc["speech"]["r"] @ enc["image"]["r"].T  # (N, N): speech query x image candidate
    fig, axes = _figure(len(queries), top, figsize=(2.7 * top + 1.2, 1.45 * len(queries)), squeeze=False)
    for row, q in enumerate(queries):
        said = " ".join(DIGIT_WORDS[d] for d in data["digits"][q] if d >= 0)
        for col, j in enumerate(np.argsort(-S[q])[:top]):
            ax = axes[row, col]
            ax.imshow(data["images"][j], cmap="gray")
            ax.set_xticks([]), ax.set_yticks([])
            true = j == q
            ax.set_title(f"#{col + 1}" + (" (the true image)" if true else ""), fontsize=8,
                         color="green" if true else "black")
            if true:
                for side in ax.spines.values():
                    side.set(color="green", linewidth=2.5)
            if col == 0:
                ax.set_ylabel(f"query {q}:\n'{said}'", fontsize=8, rotation=0, ha="right", va="center")
    fig.suptitle(f"speech -> image retrieval among {len(S)} images: the {top} images ranked first by S (SUM-3)")
    return finish(fig, path)
