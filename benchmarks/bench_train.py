"""Time one training step of the full method, broken down by component.

Run from the repository root::

    python benchmarks/bench_train.py [--batch-size 64] [--repeat 30] [--variant full]

Each component is timed on its own, on the arrays of one real batch of
spoken-digit scenes with the demo's model (median of ``--repeat`` runs, BLAS
limited to one thread as in training); the last line times the whole
``minivq.train.train_step``, and "other" is the step minus the components
(summary heads SUM-1..3, commitment loss VQ-3, straight-through VQ-2, glue).
On a shared CPU the numbers are pessimistic; compare rows, not machines.

Measured on the project's 2-core machine (shared with other jobs), batch 64,
768 image cells and ~8300 speech frames per step::

    image encoder fwd+bwd (ENC)                  0.75    2.8%
    speech encoder fwd+bwd (ENC)                21.65   81.0%
    nearest-code kernel (VQ-1)                   0.17    0.6%
    code distributions + CMCM (CM-1..4)          1.12    4.2%
    MMS (SUM-3, MMS)                             0.07    0.3%
    EMA + dead-code restart (VQ-5, VQ-6)         0.57    2.1%
    Adam + clipping                              0.35    1.3%
    other (heads, commitment, glue)              2.03    7.6%
    whole train_step                            26.73

The hot spot is the speech encoder's strided convolutions (mostly
``conv1d_backward``), not the nearest-codeword search.
"""
import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from minivq import BACKEND, nearest_code
from minivq.cli import load_split
from minivq.contrastive import info_nce_backward, info_nce_forward
from minivq.encoders import encoder_backward, encoder_forward
from minivq.matching import (code_distribution_backward, code_distribution_forward,
                             code_similarity_backward, code_similarity_forward)
from minivq.model import loss_backward, loss_forward
from minivq.optim import clip_grad_norm
from minivq.quantizer import ema_update, restart_dead_codes
from minivq.train import TrainConfig, batch_inputs, config_from_data, init_state, train_step


def median_ms(fn, repeat):
    fn()  # warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def components(state, inputs):
    """name -> zero-argument callable running one forward/backward component once; and the cache."""
    cfg, params = state.model_cfg, state.params
    E = params["E"]
    _, cache = loss_forward(params, inputs, cfg)
    units = cache["units"]
    mods = cfg.modalities
    rng = np.random.default_rng(0)
    dH = {m: rng.normal(size=units[m]["H"].shape).astype(cfg.dtype) for m in mods}

    def encoder(m):
        def run():
            H, M, c = encoder_forward(m, params, *inputs[m], cfg)
            encoder_backward(dH[m], c)
        return run

    def nearest():
        for m in mods:
            nearest_code(units[m]["H"].reshape(-1, cfg.D), E)

    def cmcm():
        (a, b) = mods
        P_a, c_a = code_distribution_forward(units[a]["H"], units[a]["M"], E, cfg.tau_code, cfg.squared)
        P_b, c_b = code_distribution_forward(units[b]["H"], units[b]["M"], E, cfg.tau_code, cfg.squared)
        S, c_s = code_similarity_forward(P_a, P_b)
        _, c_n = info_nce_forward(S)
        dP_a, dP_b = code_similarity_backward(info_nce_backward(1.0, c_n), c_s)
        code_distribution_backward(dP_a, c_a)
        code_distribution_backward(dP_b, c_b)

    def mms():
        r_a, r_b = cache["r"][mods[0]], cache["r"][mods[1]]
        _, c = info_nce_forward((r_a @ r_b.T) / cfg.tau, cfg.margin)
        dS = info_nce_backward(1.0, c) / cfg.tau
        return dS @ r_b, dS.T @ r_a

    parts = {f"{m} encoder fwd+bwd (ENC)": encoder(m) for m in mods}
    parts["nearest-code kernel (VQ-1)"] = nearest
    if cfg.use_cmcm:  # the "vq" variant has no CMCM term in its step
        parts["code distributions + CMCM (CM-1..4)"] = cmcm
    return {**parts, "MMS (SUM-3, MMS)": mms}, cache


def update_components(state, cache):
    """The parameter updates: EMA codebook + restarts, clipping + Adam; and a restore()."""
    tc, units, mods = state.train_cfg, cache["units"], state.model_cfg.modalities
    rng = np.random.default_rng(0)

    def ema():
        Hs, Ms = [units[m]["H"] for m in mods], [units[m]["M"] for m in mods]
        new = ema_update(state.ema, Hs, [units[m]["idx"] for m in mods], Ms, tc.ema_decay, tc.ema_eps)
        restart_dead_codes(new, Hs, Ms, tc.dead_threshold, rng)

    grads = {k: v.copy() for k, v in loss_backward(cache).items() if k in state.optimizer.params}
    saved = {k: v.copy() for k, v in state.optimizer.params.items()}

    def optimizer():
        clip_grad_norm(grads, tc.clip)
        state.optimizer.step(grads)

    def restore():
        for k, v in saved.items():
            state.optimizer.params[k][...] = v

    return {"EMA + dead-code restart (VQ-5, VQ-6)": ema, "Adam + clipping": optimizer}, restore


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--variant", default="full", choices=["vq", "full"])
    args = parser.parse_args()
    data = load_split(("image", "speech"), "train", 4 * args.batch_size)
    cfg = config_from_data(data, ("image", "speech"), variant=args.variant)
    state = init_state(cfg, TrainConfig(batch_size=args.batch_size), data)
    inputs = batch_inputs(data, cfg.modalities, np.arange(args.batch_size))
    with threadpool_limits(limits=1, user_api="blas"):
        parts, cache = components(state, inputs)
        updates, restore = update_components(state, cache)
        rows = {name: median_ms(fn, args.repeat) for name, fn in {**parts, **updates}.items()}
        restore()
        step = median_ms(lambda: train_step(state, inputs), args.repeat)
    rows["other (heads, commitment, glue)"] = max(step - sum(rows.values()), 0.0)
    print(f"backend {BACKEND}, batch {args.batch_size}, variant {args.variant}, "
          f"units per step: image {inputs['image'][1].size}, speech frames {inputs['speech'][1].sum()}")
    print(f"{'component':40s} {'ms':>8s} {'share':>7s}")
    for name, ms in rows.items():
        print(f"{name:40s} {ms:8.2f} {100 * ms / step:6.1f}%")
    print(f"{'whole train_step':40s} {step:8.2f}")


if __name__ == "__main__":
    main()
