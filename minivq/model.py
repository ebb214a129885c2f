"""The cross-modal model: encoders, summary and discrete paths, total loss (METHOD.md 2-6).

One forward pass, for every modality m of the config:

    H^m, M^m = encoder(x^m)                  (ENC; units on the unit sphere with cfg.unit_norm)
    Q^m, k*  = quantize(H^m, E)              (VQ-1, VQ-2; one shared E)
    z^m  = W^m pool(H^m) + c^m               (SUM-1)
    zq^m = Wq^m pool(Q^m) + cq^m             (SUM-2)
    r^m  = normalize(z^m + zq^m)             (SUM-3)

and for every pair (a, b): S = r^a r^b^T / tau with the MMS loss, and the
CMCM loss on the code distributions (CM-1..4). The total (LOSS) adds the
commitment losses (VQ-3) and, for a gradient-trained codebook, the codebook
losses (VQ-4). :func:`loss_backward` walks the same path in reverse, by
hand. Variants (``ModelConfig.variant``): ``"summary"`` (z only),
``"vq"`` (z + zq, no CMCM), ``"full"`` (the method). Walk-through:
``notebooks/05_training_toy.ipynb``; gradient check: :mod:`minivq.model_check`.
"""
from itertools import combinations

import numpy as np

from .checks import checked
from .checks import model as check
from .config import VARIANTS, ModelConfig
from .contrastive import info_nce_backward, info_nce_forward
from .encoders import encoder_backward, encoder_forward, init_encoder
from .layers import (affine_backward, affine_forward, l2_normalize_backward, l2_normalize_forward,
                     masked_mean_backward, masked_mean_forward)
from .matching import (code_distribution_backward, code_distribution_forward, code_similarity_backward,
                       code_similarity_forward)
from .optim import glorot_uniform
from .quantizer import codebook_loss, commitment_loss, init_codebook_uniform, quantize_forward

__all__ = ["VARIANTS", "ModelConfig", "init_params", "loss_forward", "loss_backward", "represent",
           "summary_forward", "summary_backward", "pairs_forward"]


@checked(check.init_params)
def init_params(cfg, rng):
    """All parameters in one dict: ``"<m>.*"`` encoders, ``"<m>.Wz"``, ``"<m>.cz"`` (SUM-1) and,
    with the discrete path, ``"<m>.Wq"``, ``"<m>.cq"`` (SUM-2) and ``"E"`` (K, D) (VQ-8, uniform)."""
    params = {}
    for m in cfg.modalities:
        params.update(init_encoder(m, cfg, rng))
        for h in ("z", "q") if cfg.use_vq else ("z",):
            params[f"{m}.W{h}"] = glorot_uniform(rng, (cfg.D, cfg.embed_dim), dtype=cfg.dtype)
            params[f"{m}.c{h}"] = np.zeros(cfg.embed_dim, dtype=cfg.dtype)
    if cfg.use_vq:
        params["E"] = init_codebook_uniform(cfg.K, cfg.D, rng, dtype=cfg.dtype)
    return params


@checked(check.loss_forward)
def loss_forward(params, inputs, cfg):
    """Total objective (LOSS) of one batch of B pairs.

    Parameters
    ----------
    params : dict, from :func:`init_params`
    inputs : dict modality -> (x, mask), one per modality of cfg
    cfg : ModelConfig

    Returns
    -------
    loss : float
        L = L_MMS + lambda_cmcm L_CMCM + sum_m L_commit^m (+ sum_m L_code^m),
        MMS and CMCM averaged over the modality pairs; NaN or inf when the
        parameters have diverged (the caller checks ``np.isfinite(loss)``).
    cache : dict
        ``"parts"`` (the terms), ``"units"`` (per modality H, M, and with the
        discrete path idx and Q), and what :func:`loss_backward` needs.
    """
    parts = {"mms": 0.0, "cmcm": 0.0, "commit": 0.0, "codebook": 0.0}
    r, units, caches = {}, {}, {}
    dE = np.zeros_like(params["E"]) if cfg.use_vq else None
    for m in cfg.modalities:
        H, M, c_enc = encoder_forward(m, params, *inputs[m], cfg)  # (B, T, D), (B, T)
        units[m] = {"H": H, "M": M}
        Q, dH_commit = None, np.zeros_like(H)
        if cfg.use_vq:
            Q, idx, _ = quantize_forward(H, params["E"])  # (VQ-1, VQ-2): Q's gradient goes straight to H
            units[m].update(idx=idx, Q=Q)
            ### BEGIN SOLUTION bug_beta_on_codebook
            commit, dH_commit = commitment_loss(H, Q, M, cfg.beta)  # (VQ-3): beta here, gradient to H only
            ### END SOLUTION
            parts["commit"] += commit
            if cfg.codebook == "grad":
                ### BEGIN SOLUTION bug_beta_on_codebook
                code, dE_m = codebook_loss(H, idx, M, params["E"])  # (VQ-4): no beta, gradient to E only
                ### END SOLUTION
                parts["codebook"] += code
                dE += dE_m
        r[m], c_sum = summary_forward(m, params, H, M, Q, cfg)
        caches[m] = (c_enc, c_sum, dH_commit)
    pairs = pairs_forward(r, units, params, cfg, parts)
    loss = parts["mms"] + cfg.lambda_cmcm * parts["cmcm"] + parts["commit"] + parts["codebook"]
    return loss, {"parts": parts, "units": units, "r": r, "caches": caches, "pairs": pairs, "dE": dE,
                  "cfg": cfg, "param_keys": list(params)}


def summary_forward(m, params, H, M, Q, cfg):
    """r^m (B, embed_dim) from the units H and, with the discrete path, Q (SUM-1..3); and a cache."""
    pH, c_pool = masked_mean_forward(H, M)  # (B, D)
    z, c_z = affine_forward(pH, params[f"{m}.Wz"], params[f"{m}.cz"])  # (SUM-1)
    c_zq = None
    if Q is not None:
        zq, c_zq = affine_forward(masked_mean_forward(Q, M)[0], params[f"{m}.Wq"], params[f"{m}.cq"])  # SUM-2
        z = z + zq  # (SUM-3)
    r, c_norm = l2_normalize_forward(z) if cfg.cosine else (z, None)
    return r, (c_pool, c_z, c_zq, c_norm)


def summary_backward(m, dr, cache, grads):
    """Reverse of :func:`summary_forward`: fills the heads' gradients, returns dH (B, T, D).

    dQ reaches H unchanged: the straight-through estimator (VQ-2).
    """
    c_pool, c_z, c_zq, c_norm = cache  # pool(H) and pool(Q) share their weights (one mask)
    if c_norm is not None:
        dr = l2_normalize_backward(dr, c_norm)
    dpH, grads[f"{m}.Wz"], grads[f"{m}.cz"] = affine_backward(dr, c_z)
    dH = masked_mean_backward(dpH, c_pool)
    if c_zq is not None:
        dpQ, grads[f"{m}.Wq"], grads[f"{m}.cq"] = affine_backward(dr, c_zq)
        dH = dH + masked_mean_backward(dpQ, c_pool)  # dQ, straight through to dH (VQ-2)
    return dH


def pairs_forward(r, units, params, cfg, parts):
    """MMS on S (SUM-3) and, for the full method, CMCM on S^code (CM-1..4) for every pair of modalities.

    Adds the mean over the pairs to ``parts["mms"]`` and ``parts["cmcm"]``; returns the pairs' caches.
    """
    out, pairs = {}, list(combinations(cfg.modalities, 2))
    for a, b in pairs:
        mms, c_mms = info_nce_forward(r[a] @ r[b].T / cfg.tau, cfg.margin)  # S (B, B), MMS
        c_cm = None
        if cfg.use_cmcm:
            P_a, c_a = code_distribution_forward(units[a]["H"], units[a]["M"], params["E"], cfg.tau_code,
                                                 cfg.squared)  # (B, K), CM-1, CM-2
            P_b, c_b = code_distribution_forward(units[b]["H"], units[b]["M"], params["E"], cfg.tau_code,
                                                 cfg.squared)
            S_code, c_s = code_similarity_forward(P_a, P_b)  # (B, B), CM-3
            cmcm, c_nce = info_nce_forward(S_code, 0.0)  # CM-4
            parts["cmcm"] += cmcm / len(pairs)
            c_cm = (c_a, c_b, c_s, c_nce)
        parts["mms"] += mms / len(pairs)
        out[a, b] = (c_mms, c_cm)
    return out


def _pair_backward(a, b, out, r, dr, dH, dE, w, cfg):
    """Add the pair's MMS gradient to dr and its CMCM gradient to dH and dE (weight w)."""
    c_mms, c_cm = out
    ### BEGIN SOLUTION pair_backward
    dS = info_nce_backward(w, c_mms) / cfg.tau  # (B, B)
    dr[a] += dS @ r[b]
    dr[b] += dS.T @ r[a]
    if c_cm is not None:
        c_a, c_b, c_s, c_nce = c_cm
        dS_code = info_nce_backward(w * cfg.lambda_cmcm, c_nce)
        dP_a, dP_b = code_similarity_backward(dS_code, c_s)
        for m, dP, c in ((a, dP_a, c_a), (b, dP_b, c_b)):
            dH_m, dE_m = code_distribution_backward(dP, c)
            dH[m] += dH_m
            dE += dE_m
    ### END SOLUTION


@checked(check.loss_backward)
def loss_backward(cache, dloss=1.0):
    """Gradient of :func:`loss_forward`'s loss with respect to every parameter: a dict with params' keys.

    ``grads["E"]`` holds the CMCM (CM-4) and codebook-loss (VQ-4) gradients;
    with the EMA codebook the trainer does not apply it (METHOD.md section 5).
    """
    cfg, r, pairs = cache["cfg"], cache["r"], cache["pairs"]
    dr = {m: np.zeros_like(r[m]) for m in cfg.modalities}
    dH = {m: dloss * cache["caches"][m][2] for m in cfg.modalities}  # the commitment gradients (VQ-3)
    dE = None if cache["dE"] is None else dloss * cache["dE"]
    for (a, b), out in pairs.items():
        _pair_backward(a, b, out, r, dr, dH, dE, dloss / len(pairs), cfg)
    grads = {}
    for m in cfg.modalities:
        c_enc, c_sum, _ = cache["caches"][m]
        dH[m] += summary_backward(m, dr[m], c_sum, grads)
        grads.update(encoder_backward(dH[m], c_enc))
    if dE is not None:
        grads["E"] = dE
    return {k: grads[k] for k in cache["param_keys"]}


@checked(check.represent)
def represent(params, inputs, cfg):
    """Representations r^m (SUM-3) and units of any subset of the modalities, without a loss.

    Returns {m: {"r": (B, embed_dim), "H": (B, T, D), "M": (B, T), and with VQ "idx": (B, T)}}.
    """
    out = {}
    for m, (x, mask) in inputs.items():
        H, M, _ = encoder_forward(m, params, x, mask, cfg)
        out[m] = {"H": H, "M": M}
        Q = None
        if cfg.use_vq:
            Q, out[m]["idx"], _ = quantize_forward(H, params["E"])
        out[m]["r"] = summary_forward(m, params, H, M, Q, cfg)[0]
    return out
