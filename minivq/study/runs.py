"""One run of ``minivq study``: train one variant on one seed's data, score it with every claim metric.

:func:`run_job` maps a plain dict (picklable for worker processes) to a plain dict of numbers, a pure
function of the job: seeded data and weights and one BLAS thread make the numbers the same in any process.
A job is scored on ``"val"`` (tuning: the fixed val set of seed 0) or ``"test"`` (a gallery of its seed).
"""
import os
import time
import zipfile
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from .. import metrics
from ..data import speaker_names
from ..data.world import voice_type, world_scenes
from ..matching import code_similarity_forward
from ..metrics import claims
from ..metrics.evaluate import encode_split
from ..model import represent
from ..train import TrainConfig, TrainingDiverged, batch_inputs, config_from_data, fit, init_state

__all__ = ["VAL_SEED", "load", "run_job", "score"]

#: Seed of the one val set every tuning run and learning curve uses.
VAL_SEED = 0
_CACHE = {}


def load(split, n, seed, patch, world, cache_dir=None):
    """World scenes of one split, cached per process (the last four sets used: the val set stays).

    With ``cache_dir`` a set is made once for all workers: the first saves it as ``.npz`` (atomically), the
    others read it, bit for bit the same; a worker that cannot save it (a full disk) keeps its own copy.
    """
    key = (split, n, seed, patch, world)
    if key in _CACHE:
        _CACHE[key] = _CACHE.pop(key)  # most recently used last
        return _CACHE[key]
    if len(_CACHE) >= 4:
        _CACHE.pop(next(iter(_CACHE)))
    if cache_dir is None:
        _CACHE[key] = world_scenes(split, n, seed, patch=patch, world=world)
        return _CACHE[key]
    path = Path(cache_dir) / f"{split}-{n}-{seed}-{patch}-{world}.npz"
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):  # not there yet (or a write in progress elsewhere)
        data = world_scenes(split, n, seed, patch=patch, world=world)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        try:
            np.savez(tmp, **data)
            os.replace(tmp, path)  # atomic: a reader sees the whole file or none
        except OSError:  # e.g. a full disk: this worker keeps its copy, the others make their own
            tmp.unlink(missing_ok=True)
    _CACHE[key] = data
    return data


def _set_r1(ranks):
    """Set-level mean R@1 of both directions' ranks."""
    return 0.5 * float(np.mean(ranks[0] == 1) + np.mean(ranks[1] == 1))


def _retrieval(out, prefix, S, digits, ks=(1, 5, 10)):
    """Instance- and set-level R@k both ways; returns the set-level ranks."""
    inst = metrics.retrieval_metrics(S, ks)
    ranks = claims.set_retrieval_ranks(S, digits)
    for name, res in (("inst", inst), ("set", None)):
        for d, direction in enumerate(("a2b", "b2a")):
            rec = res[direction] if res else metrics.recall_at_k(ranks[d], ks)
            for k in ks:
                out[f"{prefix}{name}_r{k}_{direction}"] = rec[f"R@{k}"]
            out[f"{prefix}{name}_median_rank_{direction}"] = rec["median_rank"]
    out[f"{prefix}inst_mean_r1"] = inst["mean_R@1"]
    out[f"{prefix}set_mean_r1"] = _set_r1(ranks)
    return ranks


def _subsets(out, ranks, data):
    """Set-level mean R@1 of the scenes naming held-out vs seen sets, and per voice type."""
    hit = 0.5 * ((ranks[0] == 1).astype(float) + (ranks[1] == 1))  # (N,) both directions
    for name, rows in (("heldout", data["heldout"]), ("seen", ~data["heldout"])):
        out[f"set_mean_r1_{name}"] = float(hit[rows].mean()) if rows.any() else float("nan")
    if "speaker" in data:
        names = speaker_names()
        types = np.array([voice_type(names[s]) for s in data["speaker"]])
        out["set_mean_r1_voice"] = {t.replace(":", "_"): float(hit[types == t].mean()) for t in np.unique(types)}


def _localization(out, enc, data, query, image, cfg):
    """Code-based and dense localization, query spans -> image patches and back; pointing game."""
    digits = data["digits"]
    grid = (data["images"].shape[1] // cfg.patch, data["images"].shape[2] // cfg.patch)
    for src, dst, tag in ((query, image, "to_image"), (image, query, "from_image")):
        U, found = claims.span_means(enc[src]["H"], enc[src]["labels"], enc[src]["M"], digits)
        rels = {"dense": claims.cosine_relevance(U, enc[dst]["H"], enc[dst]["M"])}
        if cfg.use_vq:
            P, _ = metrics.concept_distributions(enc[src]["p"], enc[src]["labels"], enc[src]["M"], digits)
            rels["code"] = metrics.relevance(P, enc[dst]["p"], enc[dst]["M"])
        for kind, rel in rels.items():
            loc = claims.localize(rel, digits, found, enc[dst]["labels"], enc[dst]["M"])
            out[f"loc_{kind}_{tag}"] = loc["accuracy"]
            out[f"chance_unit_{tag}"], out[f"chance_digit_unit_{tag}"] = loc["chance_unit"], loc["chance_concept_unit"]
            if dst == image:
                point = claims.pointing_game(loc["best_unit"], data["boxes"], found, grid, cfg.patch)
                out[f"point_{kind}_{tag}"], out[f"chance_point_{tag}"] = point["accuracy"], point["chance"]


def _concepts(out, prefix, idx, enc, pair, K):
    """One-to-one agreement (CC), transfer accuracy and purity from the hard codes of both modalities."""
    a, b = pair
    counts = [metrics.code_concept_counts(idx[m], enc[m]["labels"], enc[m]["M"], K, 10) for m in pair]
    agree = metrics.cross_modal_agreement(*counts)
    out[f"{prefix}agreement"] = agree["n_agree"]
    out[f"{prefix}distinct_top_codes"] = {a: agree["n_distinct_a"], b: agree["n_distinct_b"]}
    out[f"{prefix}transfer"] = claims.transfer_accuracy(*counts)["mean"]
    out[f"{prefix}purity"] = metrics.code_purity(counts[0] + counts[1])


def score(params, cfg, data, lambdas, kmeans_units=None, seed=0):
    """Every claim metric of one trained model on the scenes ``data`` (a dict of numbers).

    ``lambdas``: the weights of S^code in the rankings S + lambda S^code (RET); ``kmeans_units``: for a
    model without codes, data whose units fit the post-hoc k-means codebook of cfg.K codes (the claim-2
    baseline), seeded by ``seed``.
    """
    pair, digits = cfg.modalities[:2], data["digits"]
    enc = encode_split(params, cfg, data, pair)
    S = enc[pair[0]]["r"] @ enc[pair[1]]["r"].T / cfg.tau  # (N, N), SUM-3
    ids = claims.content_ids(digits)[0]
    out = {"inst_ceiling_r1": metrics.set_ceiling_r1(digits),  # a perfect set retriever, per instance
           "set_chance_r1": float(np.mean(ids[:, None] == ids[None, :]))}  # a random ranking, per set
    if "distractors" in data:  # a perfect set retriever that cannot tell named digits from distractors
        extra = np.unique(data["n_distractors"])
        out["set_ceiling_r1"] = claims.distractor_ceiling_r1(digits, data["distractors"], extra)["mean"]
    ranks = _retrieval(out, "", S, digits)
    _subsets(out, ranks, data)
    if cfg.use_vq:
        S_code, _ = code_similarity_forward(enc[pair[0]]["P"], enc[pair[1]]["P"])  # CM-3
        _retrieval(out, "code_", S_code, digits)
        out["combined_set_mean_r1"] = {repr(float(lam)): _set_r1(claims.set_retrieval_ranks(S + lam * S_code, digits))
                                       for lam in lambdas}
        _concepts(out, "", {m: enc[m]["idx"] for m in pair}, enc, pair, cfg.K)
    if "image" in pair:
        _localization(out, enc, data, pair[1 - pair.index("image")], "image", cfg)
    if kmeans_units is not None:
        fit_enc = encode_split(params, cfg, kmeans_units, pair)
        E = claims.kmeans_codebook([fit_enc[m]["H"] for m in pair], [fit_enc[m]["M"] for m in pair], cfg.K,
                                   np.random.default_rng([seed, 2]))
        _concepts(out, "kmeans_", {m: claims.assign_codes(enc[m]["H"], enc[m]["M"], E) for m in pair}, enc, pair, cfg.K)
    return out


def _val_set_r1(params, cfg, data):
    """Set-level mean R@1 (ranking by S) on a small val set: one point of the learning curve."""
    pair = cfg.modalities[:2]
    rep = represent(params, batch_inputs(data, pair, np.arange(len(data["digits"]))), cfg)
    return _set_r1(claims.set_retrieval_ranks(rep[pair[0]]["r"] @ rep[pair[1]]["r"].T, data["digits"]))


def _train_with_curve(cfg, tc, train, curve_data, at=(), score_at=None):
    """Train to tc.epochs in one fit call: (state, the val curve per epoch, {epoch in ``at``: score_at(params)})."""
    state, curve, scores = init_state(cfg, tc, train), [], {}

    def after_epoch(st):
        curve.append(_val_set_r1(st.params, cfg, curve_data))
        if st.epoch in at:
            scores[st.epoch] = score_at(st.params)

    fit(state, train, None, log=None, after_epoch=after_epoch)
    return state, curve, scores


def run_job(job):
    """Train and score one run; a JSON-able record (``"diverged": True`` and no metrics if training diverged)."""
    t0 = time.perf_counter()
    with threadpool_limits(limits=1):
        patch, world = job["model"].get("patch", 8), job["world"]
        cache = job.get("data_cache")
        train = load("train", job["n_train"], job["data_seed"], patch, world, cache)
        val = load("val", job["n_val"], VAL_SEED, patch, world, cache)
        scored = val if job["split"] == "val" else load("test", job["n_test"], job["seed"], patch, world, cache)
        cfg = config_from_data(train, job["modalities"], variant=job["variant"], **job["model"])
        tc = TrainConfig(seed=job["seed"], epochs=job["epochs"], batch_size=job["batch_size"], lr=job["lr"],
                         val_size=0)
        record = {k: job[k] for k in ("arm", "variant", "seed", "lr", "epochs", "split")}
        curve_data = {k: v[:job["n_curve"]] for k, v in val.items()}
        fit_units = None if cfg.use_vq else {k: v[:job["n_kmeans"]] for k, v in train.items()}

        def score_at(params):
            return score(params, cfg, scored, job["lambdas"], fit_units, job["seed"])

        at = tuple(job.get("score_epochs", ()))
        try:
            state, curve, by_epoch = _train_with_curve(cfg, tc, train, curve_data, at, score_at)
        except TrainingDiverged as e:
            return {**record, "diverged": True, "error": str(e), "seconds": time.perf_counter() - t0}
        t1 = time.perf_counter()
        record["metrics"] = by_epoch[job["epochs"]] if job["epochs"] in by_epoch else score_at(state.params)
        if at:
            record["metrics_by_epoch"] = {str(e): m for e, m in by_epoch.items()}
    record["history"] = [{**{k: h[k] for k in ("epoch", "loss", "mms", "cmcm") if k in h}, "val_set_r1": r1}
                         for h, r1 in zip(state.history, curve)]
    record.update(diverged=False, train_seconds=t1 - t0, seconds=time.perf_counter() - t0)
    return record
