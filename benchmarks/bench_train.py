"""One training step of the full method against its PyTorch eager twin, timed in one run.

Run from the repository root (torch is never a dependency of minivq)::

    pip install torch==2.13.0
    python benchmarks/bench_train.py [--world hard_on_grid] [--batch-size 64] [--steps 40] [--rounds 5]

First the twin (``benchmarks/torch_twin.py``) is checked against minivq in
float64 (loss and every gradient); then minivq's :func:`minivq.train.train_step`
and the twin's whole step (autograd, clipping, Adam, EMA codebook and
restarts) are timed in interleaved rounds, at 1 and 2 threads, and the ratio
minivq / torch of the medians is printed. The machine is shared and noisy:
the ratio, taken in one run, is the number to read. A cProfile of minivq's
step by function (``--profile``) says where its time goes.
"""
import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import minivq
from minivq.cli.demo import load_split
from minivq.data.batches import batch_inputs
from minivq.data.world import PRESETS
from minivq.model import loss_backward, loss_forward
from minivq.nearest import nearest_threads
from minivq.train import TrainConfig, config_from_data, init_state, train_step


def setup(batch_size, world, dtype="float32"):
    """A fresh state of the full method and one batch of the world's training split."""
    data = load_split(("image", "speech"), "train", 4 * batch_size, world=world)
    cfg = config_from_data(data, ("image", "speech"), variant="full", dtype=dtype)
    state = init_state(cfg, TrainConfig(batch_size=batch_size, seed=0), data)
    return state, batch_inputs(data, cfg.modalities, np.arange(batch_size))


def measure(fn, n):
    """Median CPU and wall seconds of one call of fn, over n calls."""
    cpu, wall = [], []
    for _ in range(n):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return float(np.median(cpu)), float(np.median(wall))


def check_twin(torch_twin, world):
    """Loss and gradients of the twin against minivq's, float64; True when they agree to 1e-10."""
    state, inputs = setup(16, world, dtype="float64")
    loss, cache = loss_forward(state.params, inputs, state.model_cfg)
    grads = loss_backward(cache)
    t_loss, t_grads = torch_twin.gradients(state.params, inputs, state.model_cfg)
    err = max(np.abs(grads[k] - t_grads[k]).max() / max(np.abs(t_grads[k]).max(), 1e-300) for k in grads)
    print(f"twin check, float64: loss {loss:.15f} vs {t_loss:.15f}, largest relative gradient difference {err:.1e}")
    return abs(loss - t_loss) <= 1e-10 * abs(loss) and err <= 1e-10


def compare(torch, torch_twin, args):
    print(f"whole step, batch {args.batch_size} (ms; medians of {args.rounds} interleaved rounds of "
          f"{args.steps} steps)")
    print(f"{'threads':>7s} {'minivq CPU':>10s} {'torch CPU':>10s} {'ratio':>6s} {'minivq wall':>11s} "
          f"{'torch wall':>10s} {'ratio':>6s}")
    for threads in (1, 2):
        state, inputs = setup(args.batch_size, args.world)
        twin = torch_twin.TwinStep(state, inputs)
        torch.set_num_threads(threads)
        mine, theirs = [], []
        with threadpool_limits(limits=threads, user_api="blas"), nearest_threads(threads):
            for _ in range(3):  # warm up
                train_step(state, inputs)
                twin()
            for _ in range(args.rounds):
                mine.append(measure(lambda: train_step(state, inputs), args.steps))
                theirs.append(measure(twin, args.steps))
        (mc, mw), (tc, tw) = np.median(mine, axis=0), np.median(theirs, axis=0)
        print(f"{threads:7d} {1e3 * mc:10.2f} {1e3 * tc:10.2f} {mc / tc:6.2f} {1e3 * mw:11.2f} {1e3 * tw:10.2f} "
              f"{mw / tw:6.2f}")


def profile(args):
    """Where minivq's step spends its time, by function (one thread)."""
    state, inputs = setup(args.batch_size, args.world)
    with threadpool_limits(limits=1, user_api="blas"), nearest_threads(1):
        train_step(state, inputs)
        profiler = cProfile.Profile()
        profiler.runcall(lambda: [train_step(state, inputs) for _ in range(args.steps)])
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40, help="steps per timing")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of minivq and torch")
    parser.add_argument("--world", default="hard_on_grid", choices=sorted(PRESETS), help="the scenes' world")
    parser.add_argument("--profile", action="store_true", help="also profile minivq's step by function")
    args = parser.parse_args()
    print(minivq.about())
    print(f"world {args.world!r}, batch {args.batch_size}")
    if args.profile:
        profile(args)
    try:
        import torch
    except ImportError:
        sys.exit("torch is not installed (pip install torch==2.13.0): nothing to compare with")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch_twin

    print(f"PyTorch {torch.__version__}")
    if not check_twin(torch_twin, args.world):
        sys.exit("the twin does not compute minivq's model: no timing")
    compare(torch, torch_twin, args)


if __name__ == "__main__":
    main()
