"""Figures of ``minivq demo``: curves, code usage, code x digit maps, localization, retrieval.

Each function draws one figure (a PNG at ``path``, or returned when path is
None, for notebooks) from numbers the evaluation already computed
(:func:`minivq.evaluate.encode_split`, :func:`minivq.evaluate.evaluate`);
nothing here is needed to train or to score. matplotlib is imported lazily
with the non-interactive Agg backend.
"""
import numpy as np

from . import metrics
from .data import DIGIT_WORDS

__all__ = ["plot_training_curves", "plot_code_usage", "plot_code_digit", "plot_localization",
           "plot_retrieval"]


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    """Save to path and close, or (path None) return the figure for a notebook."""
    fig.tight_layout()
    if path is None:
        return fig
    fig.savefig(path, dpi=90)
    _plt().close(fig)
    return None


def plot_training_curves(histories, path):
    """Loss and quick validation R@1 per epoch, one line per variant."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for i, (variant, hist) in enumerate(histories.items()):
        epochs, style = [h["epoch"] for h in hist], {"label": variant, "color": f"C{i}"}
        axes[0].plot(epochs, [h["mms"] for h in hist], **style)
        if any(h.get("cmcm", 0) for h in hist):
            axes[1].plot(epochs, [h["cmcm"] for h in hist], **style)
        axes[2].plot(epochs, [h.get("val_r1", np.nan) for h in hist], **style)
    for ax, title in zip(axes, ("L_MMS (train)", "L_CMCM (train)", "mean R@1 (quick validation)")):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if ax.get_lines():
            ax.legend(fontsize=8)
    return _save(fig, path)


def plot_code_usage(cc, path):
    """Units per code in each modality (VQ-7): the codes both modalities use."""
    plt = _plt()
    counts = {m: np.asarray(c).sum(axis=0) for m, c in cc["counts"].items()}
    K = len(next(iter(counts.values())))
    fig, ax = plt.subplots(figsize=(10, 3))
    width = 0.8 / len(counts)
    for i, (m, c) in enumerate(counts.items()):
        ax.bar(np.arange(K) + i * width, c / c.sum(), width=width, label=m)
    ax.set_xlabel("code k")
    ax.set_yscale("log")  # background cells and silences take one or two codes
    ax.set_ylabel("fraction of units (log)")
    ax.set_title(f"codebook usage per modality (shared codes: {cc['shared_codes']:.2f} of the used ones)")
    ax.legend()
    return _save(fig, path)


def plot_code_digit(cc, path, concept_names=DIGIT_WORDS):
    """Code x concept heat map per modality; codes ordered by the first modality's top codes (CC)."""
    plt = _plt()
    names = list(cc["counts"])
    first = np.asarray(cc["counts"][names[0]])
    K = first.shape[1]
    order = list(dict.fromkeys([k for k in cc["top_codes"][names[0]] if k >= 0] + list(range(K))))
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 3.6))
    for ax, m in zip(np.atleast_1d(axes), names):
        c = np.asarray(cc["counts"][m])[:-1][:, order].astype(float)  # digits x codes
        c /= np.maximum(c.sum(axis=1, keepdims=True), 1)
        ax.imshow(c, aspect="auto", cmap="viridis", vmin=0, vmax=1)
        ax.set_yticks(range(c.shape[0]))
        ax.set_yticklabels(list(concept_names)[:c.shape[0]])
        ax.set_xticks(range(K))
        ax.set_xticklabels(order, fontsize=6)
        ax.set_xlabel("code")
        ax.set_title(f"{m}: fraction of a concept's units on each code")
    n = len(cc["agree_per_concept"])
    fig.suptitle(f"cross-modal agreement {cc['agreement']}/{n}, purity {cc['purity']:.2f}")
    return _save(fig, path)


def _speech_panel(ax, data, i, rel, frames, title):
    T = int(data["speech_mask"][i].sum())
    ax.imshow(data["speech"][i, :T].T, origin="lower", aspect="auto", cmap="gray_r")
    keep = frames < T
    ax2 = ax.twinx()
    ax2.plot(frames[keep], np.where(np.isfinite(rel[keep]), rel[keep], np.nan), color="tab:red")
    ax2.set_yticks([])
    for (s, e), d in zip(data["word_spans"][i], data["digits"][i]):
        if d >= 0:
            ax.axvspan(s, e, color="tab:blue", alpha=0.12)
    ax.set_title(title, fontsize=9)
    ax.set_yticks([])


def plot_localization(data, enc, cfg, path, samples=(0, 1, 2)):
    """Spoken word -> image cells, and image digit -> speech frames, as heat maps (LOC)."""
    plt = _plt()
    digits = data["digits"]
    P_sp, _ = metrics.concept_distributions(enc["speech"]["p"], enc["speech"]["labels"], enc["speech"]["M"], digits)
    P_im, _ = metrics.concept_distributions(enc["image"]["p"], enc["image"]["labels"], enc["image"]["M"], digits)
    rel_im = metrics.relevance(P_sp, enc["image"]["p"], enc["image"]["M"])  # (B, L, T_img)
    rel_sp = metrics.relevance(P_im, enc["speech"]["p"], enc["speech"]["M"])  # (B, L, T_sp)
    H, W = data["images"].shape[1:]
    frames = np.arange(rel_sp.shape[2]) * cfg.speech_stride ** 2  # centre frame of each unit
    fig, axes = plt.subplots(2 * len(samples), 3, figsize=(12, 3.2 * len(samples)))
    for row, i in enumerate(samples):
        for j in range(3):
            ax_im, ax_sp = axes[2 * row, j], axes[2 * row + 1, j]
            d = digits[i, j]
            if d < 0:
                ax_im.axis("off"), ax_sp.axis("off")
                continue
            heat = rel_im[i, j].reshape(H // cfg.patch, W // cfg.patch)
            ax_im.imshow(data["images"][i], cmap="gray")
            ax_im.imshow(np.kron(heat, np.ones((cfg.patch, cfg.patch))), cmap="magma", alpha=0.55)
            ax_im.set_title(f"spoken '{DIGIT_WORDS[d]}' -> image", fontsize=9)
            ax_im.axis("off")
            _speech_panel(ax_sp, data, i, rel_sp[i, j], frames, f"image digit {d} -> speech frames")
    return _save(fig, path)


def plot_retrieval(data, enc, path, queries=(0, 1, 2, 3), top=4):
    """Speech queries and the images ranked first by S (RET)."""
    plt = _plt()
    S = enc["speech"]["r"] @ enc["image"]["r"].T  # (N, N): speech query x image candidate
    fig, axes = plt.subplots(len(queries), top, figsize=(2.6 * top, 1.3 * len(queries)))
    for row, q in enumerate(queries):
        said = " ".join(DIGIT_WORDS[d] for d in data["digits"][q] if d >= 0)
        for col, j in enumerate(np.argsort(-S[q])[:top]):
            ax = axes[row, col]
            ax.imshow(data["images"][j], cmap="gray")
            ax.set_xticks([]), ax.set_yticks([])
            color = "green" if j == q else "black"
            ax.set_title(f"#{col + 1}" + (" (true)" if j == q else ""), fontsize=8, color=color)
            if col == 0:
                ax.set_ylabel(f"'{said}'", fontsize=8, rotation=0, ha="right")
    fig.suptitle("speech -> image retrieval (top images by S)")
    return _save(fig, path)
