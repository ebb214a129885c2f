"""Evaluate a trained model on a split: RET, LOC and CC of METHOD.md section 7.

:func:`encode_split` encodes a data dict in chunks; :func:`evaluate` turns
the encodings into the numbers of the ablation table.
"""
import numpy as np

from .. import metrics
from ..data.batches import batch_inputs
from ..encoders import modality_arrays, unit_labels
from ..matching import code_distribution_forward, code_similarity_forward
from ..model import represent
from .localization import localize
from .retrieval import set_retrieval_metrics

__all__ = ["encode_split", "unit_assignments", "evaluate"]


def unit_assignments(H, M, E, tau=1.0, squared=False):
    """Soft code assignment p(k | h) (CM-1) of every valid unit of H (B, T, D): (B, T, K), zero on padding.

    Each unit goes to :func:`minivq.matching.code_distribution_forward` as a
    sample of one unit, whose (CM-2) mean is its own p(k | h).
    """
    if np.ndim(H) != 3 or np.shape(M) != np.shape(H)[:2]:
        raise ValueError(f"H must have shape (B, T, D) and M (B, T), got {np.shape(H)} and {np.shape(M)}")
    B, T, D = H.shape
    M = np.asarray(M, dtype=bool)
    p = np.zeros((B, T, E.shape[0]), dtype=H.dtype)
    if M.any():
        X = H[M][:, None, :]  # (N, 1, D)
        p[M], _ = code_distribution_forward(X, np.ones(X.shape[:2], bool), E, tau, squared)
    return p


def _pad_cat(arrays, fill):
    """Concatenate (b, T_i, ...) chunks along axis 0, padding T to the longest."""
    T = max(a.shape[1] for a in arrays)
    out = []
    for a in arrays:
        widths = [(0, 0), (0, T - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
        out.append(np.pad(a, widths, constant_values=fill))
    return np.concatenate(out)


def encode_split(params, cfg, data, modalities=None, chunk=256):
    """Encode every sample of a data dict, ``chunk`` samples per forward pass.

    Returns, per modality (default ``cfg.modalities``): ``r`` (N, embed_dim)
    (SUM-3), ``H`` (N, T, D), ``M`` (N, T), ``labels`` (N, T) unit concepts;
    with the discrete path also ``idx`` (N, T) (VQ-1), ``p`` (N, T, K) (CM-1)
    and ``P`` (N, K) (CM-2).
    """
    modalities = tuple(cfg.modalities if modalities is None else modalities)
    n = len(modality_arrays(data, modalities[0])[0])
    parts = [represent(params, batch_inputs(data, modalities, np.arange(s, min(s + chunk, n))), cfg)
             for s in range(0, n, chunk)]
    out = {}
    for m in modalities:
        rep = {"r": np.concatenate([p[m]["r"] for p in parts]),
               "H": _pad_cat([p[m]["H"] for p in parts], 0.0),
               "M": _pad_cat([p[m]["M"] for p in parts], False)}
        labels = unit_labels(m, modality_arrays(data, m)[2], cfg)  # (N, T_all) >= the widest chunk
        rep["labels"] = labels[:, :rep["M"].shape[1]]
        if cfg.use_vq:
            rep["idx"] = _pad_cat([p[m]["idx"] for p in parts], 0)
            rep["p"] = unit_assignments(rep["H"], rep["M"], params["E"], cfg.tau_code, cfg.squared)
            rep["P"], _ = code_distribution_forward(rep["H"], rep["M"], params["E"], cfg.tau_code, cfg.squared)
        out[m] = rep
    return out


def _localization(enc, a, b, concepts):
    """LOC from the spans of a to the units of b; ``chance_digit_unit`` is the chance of the task as posed."""
    P_w, found = metrics.concept_distributions(enc[a]["p"], enc[a]["labels"], enc[a]["M"], concepts)
    rel = metrics.relevance(P_w, enc[b]["p"], enc[b]["M"])  # (B, L, T), LOC
    loc = localize(rel, concepts, found, enc[b]["labels"], enc[b]["M"])  # one argmax, both chances
    return {"accuracy": loc["accuracy"], "chance": loc["chance_unit"],
            "chance_digit_unit": loc["chance_concept_unit"], "n": loc["n"], "best_unit": loc["best_unit"]}


def _code_concept(enc, a, b, K, n_concepts):
    """CC: purity, shared codes, agreement and distinct top codes, usage per modality (VQ-7)."""
    counts = {m: metrics.code_concept_counts(enc[m]["idx"], enc[m]["labels"], enc[m]["M"], K, n_concepts)
              for m in (a, b)}
    agreement = metrics.cross_modal_agreement(counts[a], counts[b])
    usage = metrics.usage_per_modality({m: enc[m]["idx"] for m in (a, b)}, {m: enc[m]["M"] for m in (a, b)}, K)
    return {
        "purity": metrics.code_purity(counts[a] + counts[b]),
        "purity_per_modality": {m: metrics.code_purity(counts[m]) for m in (a, b)},
        "shared_codes": metrics.shared_code_fraction(counts[a], counts[b]),
        "agreement": agreement["n_agree"],  # one-to-one: a shared top code no other concept has
        "distinct_top_codes": {a: agreement["n_distinct_a"], b: agreement["n_distinct_b"]},
        "agree_per_concept": agreement["agree"].tolist(),
        "top_codes": {a: agreement["top_a"].tolist(), b: agreement["top_b"].tolist()},
        "counts": {m: counts[m].tolist() for m in (a, b)},
        "usage": {m: {"perplexity": u["perplexity"], "fraction_used": u["fraction_used"]}
                  for m, u in usage.items()},
    }


def evaluate(params, cfg, data, lambda_r=1.0, enc=None):
    """All the numbers of the ablation table for the first modality pair of cfg.

    ``data`` is the evaluation split (its ``digits`` or ``concepts`` name each
    sample's concepts); ``lambda_r`` weighs S^code in the combined ranking;
    ``enc`` is a precomputed :func:`encode_split`. Returns ``retrieval``
    (RET per instance: "summary", "code", "combined"; with concepts "set", per
    content, by S) and, with the discrete path, ``localization`` ("a->b",
    "b->a", LOC) and ``code_concept`` (CC, VQ-7): plain JSON-able values.
    """
    a, b = cfg.modalities[:2]
    enc = encode_split(params, cfg, data, (a, b)) if enc is None else enc
    S = (enc[a]["r"] @ enc[b]["r"].T) / cfg.tau  # (N, N), SUM-3
    S_code = None
    if cfg.use_vq:
        S_code, _ = code_similarity_forward(enc[a]["P"], enc[b]["P"])  # (N, N), CM-3
    out = {"modalities": [a, b], "retrieval": metrics.retrieval_report(S, S_code, lambda_r)}
    concepts = data.get("digits", data.get("concepts"))
    if concepts is not None:
        out["n_concepts"] = n_concepts = int(concepts.max()) + 1
        out["retrieval"]["set"] = set_retrieval_metrics(S, concepts)
    if cfg.use_vq and concepts is not None:
        out["localization"] = {}
        for src, dst in ((a, b), (b, a)):
            loc = _localization(enc, src, dst, concepts)
            out["localization"][f"{src}->{dst}"] = {k: v for k, v in loc.items() if k != "best_unit"}
        out["code_concept"] = _code_concept(enc, a, b, cfg.K, n_concepts)
    return out
