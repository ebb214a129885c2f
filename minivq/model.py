"""The cross-modal model: encoders, summary and discrete paths, total loss (METHOD.md 2-6).

One forward pass, for every modality m of the config:

    H^m, M^m = encoder(x^m)                         (ENC)   minivq.encoders
    h <- h / ||h|| for every unit of H^m            (cfg.unit_norm: one sphere for E; _units_forward)
    z^m  = W^m pool(H^m) + c^m                      (SUM-1)
    Q^m, k* = quantize(H^m, E)   (one shared E)     (VQ-1, VQ-2)     quantize_units
    zq^m = Wq^m pool(Q^m) + cq^m                    (SUM-2)
    r^m  = normalize(z^m + zq^m)                    (SUM-3)

and for every pair (a, b): S = r^a r^b^T / tau with the MMS loss, and the
CMCM loss on the code distributions (CM-1..4). The total (LOSS) adds the
commitment losses (VQ-3) and, for a gradient-trained codebook, the codebook
losses (VQ-4). :func:`loss_backward` walks the same path in reverse, by
hand, to every parameter; ``tests/test_model.py`` checks it against finite
differences in float64, with the hooks a gradient check needs (the
stop-gradients held at a base point, the kinks) kept out of this forward,
in :mod:`minivq.model_check`.

Three variants make the paper's ablation (``ModelConfig.variant``):
``"summary"`` (z only, MMS only), ``"vq"`` (z + zq through the shared
codebook, no CMCM) and ``"full"`` (the method).
"""
from itertools import combinations

import numpy as np

from ._checks import check_number, check_rng, describe
from ._encoder_checks import check_config, check_model_args, param_names
from .config import VARIANTS, ModelConfig
from .contrastive import info_nce_backward, info_nce_forward
from .encoders import _encoder_backward, _encoder_forward, init_encoder
from .layers import unchecked as layers  # the arguments are checked once, in loss_forward and represent
from .matching import (code_distribution_backward, code_distribution_forward, code_similarity_backward,
                       code_similarity_forward)
from .optim import glorot_uniform
from .quantizer import codebook_loss, commitment_loss, init_codebook_uniform, quantize_backward, quantize_forward

__all__ = ["VARIANTS", "ModelConfig", "init_params", "loss_forward", "loss_backward", "quantize_units",
           "represent"]


def init_params(cfg, rng):
    """All parameters in one dict: encoders, summary heads, and the codebook ``"E"``.

    Parameters
    ----------
    cfg : ModelConfig
    rng : np.random.Generator

    Returns
    -------
    dict
        ``"<m>.*"`` encoder weights, ``"<m>.Wz"`` (D, embed_dim) and
        ``"<m>.cz"`` (SUM-1), and with the discrete path ``"<m>.Wq"``,
        ``"<m>.cq"`` (SUM-2) and ``"E"`` (K, D) (VQ-8, uniform; the trainer
        may re-seed it by k-means++ from the first batch).
    """
    cfg, rng = check_config(cfg), check_rng(rng)
    params = {}
    heads = ("z", "q") if cfg.use_vq else ("z",)
    for m in cfg.modalities:
        params.update(init_encoder(m, cfg, rng))
        for h in heads:
            params[f"{m}.W{h}"] = glorot_uniform(rng, (cfg.D, cfg.embed_dim), dtype=cfg.dtype)
            params[f"{m}.c{h}"] = np.zeros(cfg.embed_dim, dtype=cfg.dtype)
    if cfg.use_vq:
        params["E"] = init_codebook_uniform(cfg.K, cfg.D, rng, dtype=cfg.dtype)
    return params


def _encoder_params(params, m, cfg):
    """The "W1", "b1", "W2", "b2" of modality m (no "b1" for text)."""
    return {name: params[f"{m}.{name}"] for name in param_names(m)}


def quantize_units(m, H, E):
    """VQ-1, VQ-2 for the units H of modality m: what the rest of the forward needs.

    Returns
    -------
    Q : ndarray, (B, T, D)
        The value of h + sg(q - h), which is q: it goes on to the discrete
        summary (SUM-2), and its gradient goes straight through to h.
    idx : ndarray of int, (B, T)
        The nearest codeword of every unit (VQ-1).
    c_q : cache of the quantizer's backward.
    Q_sg, H_sg : ndarray
        sg(q) and sg(h), the constants of the commitment (VQ-3) and codebook
        (VQ-4) losses: here q and h themselves. A gradient check holds them at
        a base point instead (:func:`minivq.model_check.held_quantizer`).
    """
    Q, idx, c_q = quantize_forward(H, E)
    return Q, idx, c_q, Q, H


def _summary_forward(m, params, H, M, cfg, quantize=quantize_units):
    """SUM-1..3 for one modality; returns (r, unit info, cache, commitment loss, dH_commit)."""
    pH, c_pool = layers.masked_mean_forward(H, M)
    z, c_z = layers.affine_forward(pH, params[f"{m}.Wz"], params[f"{m}.cz"])  # (B, embed_dim), SUM-1
    z_sum = z  # z, or z + zq with the discrete path (SUM-3)
    units = {"H": H, "M": M}
    vq = None
    if cfg.use_vq:
        Q, idx, c_q, Q_sg, H_sg = quantize(m, H, params["E"])  # (B, T, D), (B, T); VQ-1, VQ-2
        pQ, c_poolq = layers.masked_mean_forward(Q, M)
        zq, c_zq = layers.affine_forward(pQ, params[f"{m}.Wq"], params[f"{m}.cq"])  # (SUM-2)
        z_sum = z + zq  # (SUM-3)
        ### BEGIN SOLUTION bug_beta_on_codebook
        commit, dH = commitment_loss(H, Q_sg, M, cfg.beta)  # (VQ-3): beta here, gradient to H only
        ### END SOLUTION
        units.update(idx=idx, Q=Q_sg, H_sg=H_sg)
        vq = (c_q, c_poolq, c_zq)
    else:  # no discrete path: no commitment loss, and dH (its gradient, VQ-3) is zero
        commit, dH = 0.0, np.zeros_like(H)
    r, c_norm = z_sum, None
    if cfg.cosine:
        r, c_norm = layers.l2_normalize_forward(z_sum)  # r = normalize(z + zq) (SUM-3)
    return r, units, (c_pool, c_z, vq, c_norm), commit, dH


def _summary_backward(m, dr, cache, grads):
    """Reverse of :func:`_summary_forward`; fills the head grads, returns dH (B, T, D)."""
    c_pool, c_z, vq, c_norm = cache
    if c_norm is not None:
        dr = layers.l2_normalize_backward(dr, c_norm)
    dpH, grads[f"{m}.Wz"], grads[f"{m}.cz"] = layers.affine_backward(dr, c_z)
    dH = layers.masked_mean_backward(dpH, c_pool)
    if vq is not None:
        c_q, c_poolq, c_zq = vq
        dpQ, grads[f"{m}.Wq"], grads[f"{m}.cq"] = layers.affine_backward(dr, c_zq)
        dQ = layers.masked_mean_backward(dpQ, c_poolq)
        dH = dH + quantize_backward(dQ, c_q)  # straight-through (VQ-2)
    return dH


def _pair_forward(a, b, r, units, params, cfg):
    """MMS on S (SUM-3) and, for the full method, CMCM on S^code (CM-1..4)."""
    S = (r[a] @ r[b].T) / cfg.tau  # (B, B)
    mms, c_mms = info_nce_forward(S, cfg.margin)
    out = {"mms": mms, "cmcm": 0.0, "c_mms": c_mms, "c_cm": None}
    if cfg.use_cmcm:
        E = params["E"]
        P_a, c_a = code_distribution_forward(units[a]["H"], units[a]["M"], E, cfg.tau_code, cfg.squared)
        P_b, c_b = code_distribution_forward(units[b]["H"], units[b]["M"], E, cfg.tau_code, cfg.squared)
        S_code, c_s = code_similarity_forward(P_a, P_b)  # (B, B), CM-3
        out["cmcm"], c_nce = info_nce_forward(S_code, 0.0)  # CM-4
        out["c_cm"] = (c_a, c_b, c_s, c_nce)
    return out


def loss_forward(params, inputs, cfg):
    """Total objective (LOSS) of one batch of paired samples.

    Parameters
    ----------
    params : dict
        From :func:`init_params`.
    inputs : dict of str -> (x, mask)
        The encoder input and input mask of each modality in ``cfg.modalities``.
    cfg : ModelConfig

    Returns
    -------
    loss : float
        L = L_MMS + lambda_cmcm L_CMCM + sum_m L_commit^m (+ sum_m L_code^m),
        MMS and CMCM averaged over the modality pairs. NaN or inf, not an
        exception, when the forward pass overflows (diverged parameters):
        the caller checks ``np.isfinite(loss)``.
    cache : dict
        ``"parts"`` (the loss terms), ``"units"`` (per modality H, M, and with
        VQ idx and Q), and what :func:`loss_backward` needs.

    Raises
    ------
    TypeError, ValueError
        Arguments that do not fit cfg, naming them: ``params['speech.W1']``,
        ``x of 'speech'``, ``mask of 'image'`` (every sample needs a valid
        unit); parameters and inputs must be finite. Checked once here; the
        layers inside run unchecked.

    Notes
    -----
    The gradient check differentiates the same forward with the
    stop-gradients held at a base point: :mod:`minivq.model_check`.
    """
    cfg, inputs = check_model_args(params, inputs, cfg)
    return _loss_forward(params, inputs, cfg)


def _units_forward(m, params, x, mask, cfg):
    """The units of modality m: its encoder (ENC), then h <- h / ||h|| with ``cfg.unit_norm``.

    Returns (H, M, encoder cache, normalization cache or None).
    """
    H, M, c_enc = _encoder_forward(m, _encoder_params(params, m, cfg), x, mask, cfg)
    c_unit = None
    if cfg.unit_norm:  # every modality meets the one codebook E on the unit sphere (choice)
        H, c_unit = layers.l2_normalize_forward(H)
    return H, M, c_enc, c_unit


def _loss_forward(params, inputs, cfg, quantize=quantize_units):
    """:func:`loss_forward` on checked arguments; ``quantize`` is :func:`quantize_units` but in gradient checks."""
    r, units, caches, dH_extra = {}, {}, {}, {}
    parts = {"mms": 0.0, "cmcm": 0.0, "commit": 0.0, "codebook": 0.0}
    dE = np.zeros_like(params["E"]) if cfg.use_vq else None
    for m in cfg.modalities:
        x, mask = inputs[m]
        H, M, c_enc, c_unit = _units_forward(m, params, x, mask, cfg)
        r[m], units[m], c_sum, commit, dH_extra[m] = _summary_forward(m, params, H, M, cfg, quantize)
        caches[m] = (c_enc, c_unit, c_sum)
        parts["commit"] += commit
        if cfg.use_vq and cfg.codebook == "grad":  # (VQ-4)
            ### BEGIN SOLUTION bug_beta_on_codebook
            code, dE_m = codebook_loss(units[m]["H_sg"], units[m]["idx"], M, params["E"])
            ### END SOLUTION
            parts["codebook"] += code
            dE += dE_m
    pairs = list(combinations(cfg.modalities, 2))
    pair_out = {p: _pair_forward(*p, r, units, params, cfg) for p in pairs}
    parts["mms"] = sum(float(o["mms"]) for o in pair_out.values()) / len(pairs)  # the mean over the pairs
    parts["cmcm"] = sum(float(o["cmcm"]) for o in pair_out.values()) / len(pairs)
    loss = parts["mms"] + cfg.lambda_cmcm * parts["cmcm"] + parts["commit"] + parts["codebook"]
    cache = {"parts": parts, "units": units, "r": r, "caches": caches, "pairs": pair_out,
             "dH_extra": dH_extra, "dE": dE, "cfg": cfg, "param_keys": list(params)}
    return loss, cache


def _pair_backward(a, b, out, r, dr, dH, dE, w, cfg):
    """Add the pair's MMS gradient to dr and its CMCM gradient to dH and dE (weight w)."""
    ### BEGIN SOLUTION pair_backward
    dS = info_nce_backward(w, out["c_mms"]) / cfg.tau  # (B, B)
    dr[a] += dS @ r[b]
    dr[b] += dS.T @ r[a]
    if out["c_cm"] is not None:
        c_a, c_b, c_s, c_nce = out["c_cm"]
        dS_code = info_nce_backward(w * cfg.lambda_cmcm, c_nce)
        dP_a, dP_b = code_similarity_backward(dS_code, c_s)
        for m, dP, c in ((a, dP_a, c_a), (b, dP_b, c_b)):
            dH_m, dE_m = code_distribution_backward(dP, c)
            dH[m] += dH_m
            dE += dE_m
    ### END SOLUTION


def loss_backward(cache, dloss=1.0):
    """Gradient of :func:`loss_forward`'s loss with respect to every parameter.

    Parameters
    ----------
    cache : dict
        From :func:`loss_forward`.
    dloss : float
        Upstream gradient (1 for training).

    Returns
    -------
    grads : dict
        Same keys as ``params``. ``grads["E"]`` holds the CMCM (CM-4) and
        codebook-loss (VQ-4) gradients; with the EMA codebook the trainer
        does not apply it (METHOD.md section 5).
    """
    needed = ("cfg", "r", "pairs", "dH_extra", "dE", "caches", "param_keys")
    if not isinstance(cache, dict) or any(k not in cache for k in needed):
        raise TypeError(f"cache must be the dict returned by loss_forward, got {describe(cache)}")
    dloss = check_number(dloss, "dloss")
    if abs(dloss) > float(np.finfo(cache["cfg"].dtype).max):
        raise ValueError(f"dloss must be within {cache['cfg'].dtype}, got {dloss!r}")
    return _loss_backward(cache, dloss)


def _loss_backward(cache, dloss=1.0):
    """:func:`loss_backward` without the checks."""
    cfg, r, pairs = cache["cfg"], cache["r"], cache["pairs"]
    dr = {m: np.zeros_like(r[m]) for m in cfg.modalities}
    dH = {m: dloss * cache["dH_extra"][m] for m in cfg.modalities}  # new arrays: += below leaves the cache alone
    grads = {}
    dE = None if cache["dE"] is None else dloss * cache["dE"]
    for (a, b), out in pairs.items():
        _pair_backward(a, b, out, r, dr, dH, dE, dloss / len(pairs), cfg)
    for m in cfg.modalities:
        c_enc, c_unit, c_sum = cache["caches"][m]
        dH[m] += _summary_backward(m, dr[m], c_sum, grads)
        if c_unit is not None:
            dH[m] = layers.l2_normalize_backward(dH[m], c_unit)
        grads.update(_encoder_backward(dH[m], c_enc))
    if dE is not None:
        grads["E"] = dE
    return {k: grads[k] for k in cache["param_keys"]}


def represent(params, inputs, cfg):
    """Representations r^m (SUM-3) and units of each modality, without a loss.

    Parameters
    ----------
    params : dict
    inputs : dict of str -> (x, mask)
        Any subset of the config's modalities.
    cfg : ModelConfig

    Returns
    -------
    dict of str -> dict
        Per modality: ``"r"`` (B, embed_dim) (L2-normalized when cfg.cosine),
        ``"H"`` (B, T, D), ``"M"`` (B, T), and with the discrete path
        ``"idx"`` (B, T) (VQ-1).
    """
    cfg, inputs = check_model_args(params, inputs, cfg, require_all=False)
    out = {}
    for m, (x, mask) in inputs.items():
        H, M, _, _ = _units_forward(m, params, x, mask, cfg)
        r, units, *_ = _summary_forward(m, params, H, M, cfg)
        out[m] = {"r": r, **{k: v for k, v in units.items() if k in ("H", "M", "idx")}}
    return out


_MOVED = {"freeze_point", "decisions"}  # gradient-check hooks, in minivq.model_check since 0.2


def __getattr__(name):
    """``minivq.model.freeze_point`` and ``decisions`` moved to :mod:`minivq.model_check` (0.2)."""
    if name in _MOVED:
        import warnings
        from . import model_check
        warnings.warn(f"minivq.model.{name} moved to minivq.model_check.{name} (gradient-check hooks "
                      f"left the training forward in 0.2); the old name goes in 0.3",
                      DeprecationWarning, stacklevel=2)
        return getattr(model_check, name)
    raise AttributeError(f"module 'minivq.model' has no attribute {name!r}")

