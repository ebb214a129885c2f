"""Time one training step of the full method: where it goes, its floor, and PyTorch's twin.

Run from the repository root::

    python benchmarks/bench_train.py [--batch-size 64] [--steps 40] [--rounds 5]

Three parts, measured in one run (the machine is shared and noisy: compare
the ratios, which are taken between timings interleaved in the same run):

1. **Components, timed where they run.** The step runs as ``minivq.train.fit``
   runs it (``_train_step``, on data checked once before the first step); the
   functions it calls are wrapped by timers for the
   duration (exclusive time: a component called inside another is not
   counted twice). "other" is the whole step minus the components, so the
   rows add up to the step. CPU time (all threads of the process) and wall
   time, per step.
2. **The floor.** Every matrix product the step computes, listed from the
   model's shapes and the batch's packed lengths (:func:`step_gemm_table`,
   each with the component that computes it), each timed on its own on
   contiguous float32 arrays at the table's thread count; their sum is the
   time of the step's own matrix products at this machine's GEMM speed. The
   floor is timed in rounds interleaved with the plain step, so that both
   see the same load; the step is printed as the median of the rounds'
   ratios, and each component next to its own products' floor.
3. **PyTorch eager.** When ``torch`` is importable
   (``pip install torch==2.13.0``; never a dependency of minivq), the twin
   of ``benchmarks/torch_twin.py`` is first checked against minivq's loss and
   gradients in float64, then its whole step (autograd, clipping, Adam, EMA
   codebook and restarts) is timed interleaved with minivq's, at 1 and 2
   threads.
"""
import argparse
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import minivq
from minivq.cli.demo import load_split
from minivq.data.world import PRESETS
from minivq.layers import conv1d_output_length
from minivq.layers.packed import pack_layout
from minivq.model import loss_backward, loss_forward
from minivq.nearest import nearest_threads
from minivq.train import TrainConfig, _train_step, batch_inputs, config_from_data, check_data, init_state

#: (module, attribute, label): the functions timed inside the step.
COMPONENTS = [
    ("minivq.model", "_encoder_forward", "{m} encoder forward (ENC)"),
    ("minivq.model", "_encoder_backward", "{m} encoder backward (ENC)"),
    ("minivq.quantizer", "nearest_code", "nearest code (VQ-1)"),
    ("minivq.model", "_code_distribution_forward", "code distributions (CM-1, CM-2)"),
    ("minivq.model", "_code_distribution_backward", "code distributions (CM-1, CM-2)"),
    ("minivq.model", "_pair_forward", "S, MMS, S^code, CMCM (SUM-3, CM-3, CM-4)"),
    ("minivq.model", "_pair_backward", "S, MMS, S^code, CMCM (SUM-3, CM-3, CM-4)"),
    ("minivq.train", "_ema_update", "EMA update + dead-code restart (VQ-5, VQ-6)"),
    ("minivq.train", "_restart_dead_codes", "EMA update + dead-code restart (VQ-5, VQ-6)"),
    ("minivq.train", "_clip_grad_norm", "clipping + Adam"),
]


class Timers:
    """Exclusive CPU and wall time per label, for functions that may call each other."""

    def __init__(self):
        self.cpu, self.wall, self._stack = {}, {}, []

    def wrap(self, fn, label):
        def timed(*args, **kwargs):
            name = label.format(m=_modality_of(args))
            self._stack.append([0.0, 0.0])
            c0, w0 = time.process_time(), time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                c, w = time.process_time() - c0, time.perf_counter() - w0
                inner_c, inner_w = self._stack.pop()
                self.cpu[name] = self.cpu.get(name, 0.0) + c - inner_c
                self.wall[name] = self.wall.get(name, 0.0) + w - inner_w
                if self._stack:  # the caller's exclusive time excludes this call
                    self._stack[-1][0] += c
                    self._stack[-1][1] += w
        return timed


def _modality_of(args):
    """The modality a call is about: encoder_forward(m, ...) or encoder_backward(dH, cache)."""
    if args and isinstance(args[0], str):
        return args[0]
    if len(args) > 1 and isinstance(args[1], tuple) and args[1] and isinstance(args[1][0], str):
        return args[1][0]
    return "?"


@contextmanager
def timed_components(state, timers):
    """Wrap the step's functions (and the optimizer's step) by timers, for the duration."""
    import importlib
    originals = []
    for module_name, attr, label in COMPONENTS:
        module = importlib.import_module(module_name)
        if not hasattr(module, attr):
            print(f"note: {module_name}.{attr} not found; its time lands in 'other'", file=sys.stderr)
            continue
        originals.append((module, attr, getattr(module, attr)))
        setattr(module, attr, timers.wrap(getattr(module, attr), label))
    for name in ("step", "_step"):  # train_step calls step, fit's steps the unchecked _step
        setattr(state.optimizer, name, timers.wrap(getattr(state.optimizer, name), "clipping + Adam"))
    try:
        yield
    finally:
        for module, attr, fn in originals:
            setattr(module, attr, fn)
        del state.optimizer.step, state.optimizer._step


def step_gemms(cfg, inputs):
    """Every matrix product (m, k, n) of one training step of the image-speech model."""
    return [shape for _, shape in step_gemm_table(cfg, inputs)]


#: Labels of the floor's products, as the component table names them.
_SP_F, _SP_B = "speech encoder forward (ENC)", "speech encoder backward (ENC)"
_IM_F, _IM_B = "image encoder forward (ENC)", "image encoder backward (ENC)"
_CM12, _PAIR = "code distributions (CM-1, CM-2)", "S, MMS, S^code, CMCM (SUM-3, CM-3, CM-4)"
_VQ1, _OTHER = "nearest code (VQ-1)", "other (heads, commitment, glue)"


def step_gemm_table(cfg, inputs):
    """Every matrix product of one training step of the image-speech model: (component label, (m, k, n)).

    The products the step must compute: the forward and parameter
    gradients of every layer, and the input gradient of every layer but
    the first of each encoder (its input is data)."""
    B = len(inputs["image"][0])
    k, s = cfg.speech_kernel, cfg.speech_stride
    pad = (k - 1) // 2
    n_q = -(-k // s)
    offsets, L = pack_layout(inputs["speech"][1], (k, k), (s, s))
    T1 = conv1d_output_length(L, k, s, pad)
    T2 = conv1d_output_length(T1, k, s, pad)
    F, Hd, D, K, Ed = cfg.n_mels, cfg.hidden, cfg.D, cfg.K, cfg.embed_dim
    x_img = inputs["image"][0]
    N_img = B * (x_img.shape[1] // cfg.patch) * (x_img.shape[2] // cfg.patch)
    speech_units = int(inputs["speech"][1].shape[1])  # unpacked grid of units, for T_out below
    T_sp = conv1d_output_length(conv1d_output_length(speech_units, k, s, pad), k, s, pad)
    units = {"image": N_img, "speech": B * T_sp}
    g = []
    g += [(_SP_F, (T1, s * F, Hd))] * n_q + [(_SP_B, (s * F, T1, Hd))] * n_q  # speech conv 1: fwd, dW (no dx)
    g += [(_SP_F, (T2, s * Hd, D))] * n_q  # conv 2: forward
    g += [(_SP_B, (s * Hd, T2, D))] * n_q + [(_SP_B, (T2, D, s * Hd))] * n_q  # conv 2: dW, dx
    P2 = cfg.patch * cfg.patch
    g += [(_IM_F, (N_img, P2, Hd)), (_IM_B, (P2, N_img, Hd))]  # image affine 1: forward, dW
    g += [(_IM_F, (N_img, Hd, D)), (_IM_B, (Hd, N_img, D)), (_IM_B, (N_img, D, Hd))]  # affine 2: fwd, dW, dx
    heads = 2 if cfg.use_vq else 1
    g += [(_OTHER, (B, D, Ed)), (_OTHER, (D, B, Ed)), (_OTHER, (B, Ed, D))] * (2 * heads)  # SUM-1, SUM-2 heads
    g += [(_PAIR, (B, Ed, B)), (_PAIR, (B, B, Ed)), (_PAIR, (B, B, Ed))]  # S and its backward
    if cfg.use_vq:
        g += [(_VQ1, (units[m], D, K)) for m in units]  # nearest code (VQ-1)
    if cfg.use_cmcm:
        valid = {"image": N_img, "speech": int(np.sum(_speech_unit_mask(inputs["speech"][1], k, s)))}
        for m, N in valid.items():
            g += [(_CM12, (N, D, K)), (_CM12, (N, K, D)), (_CM12, (K, N, D))]  # CM-1 distances; dX, dE
        g += [(_PAIR, (B, K, B))] * 2 + [(_PAIR, (B, B, K))] * 4  # CM-3 and its backward
    return g


def _speech_unit_mask(mask, k, s):
    from minivq.layers import conv1d_output_mask
    pad = (k - 1) // 2
    return conv1d_output_mask(conv1d_output_mask(mask, k, s, pad), k, s, pad)


def gemm_operands(gemms, seed=0):
    """Contiguous float32 operands (a, b, out) for each distinct shape of ``gemms``."""
    rng = np.random.default_rng(seed)
    ops = {}
    for m, k, n in sorted(set(gemms)):
        ops[m, k, n] = (rng.standard_normal((m, k)).astype(np.float32),
                        rng.standard_normal((k, n)).astype(np.float32), np.empty((m, n), np.float32))
    return ops


def time_gemms(gemms, repeat=20, operands=None):
    """Median seconds of each distinct product on contiguous float32 arrays: ({shape: s}, their sum over the list)."""
    operands = gemm_operands(gemms) if operands is None else operands
    cache = {}
    for shape in sorted(set(gemms)):
        a, b, out = operands[shape]
        np.matmul(a, b, out=out)
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            times.append(time.perf_counter() - t0)
        cache[shape] = float(np.median(times))
    return cache, sum(cache[s] for s in gemms)


def measure(fn, n):
    """Median CPU and wall seconds of n calls of fn."""
    cpu, wall = [], []
    for _ in range(n):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return float(np.median(cpu)), float(np.median(wall))


def setup(batch_size, dtype="float32", seed=0, world="easy"):
    """State and batch of the benchmark; ``world`` (--world): v0.1's "easy" by default, the batch of issue 11."""
    data = load_split(("image", "speech"), "train", 4 * batch_size, world=world)
    cfg = config_from_data(data, ("image", "speech"), variant="full", dtype=dtype)
    state = init_state(cfg, TrainConfig(batch_size=batch_size, seed=seed), data)
    check_data(state, data)  # as fit does, once
    inputs = batch_inputs(data, cfg.modalities, np.arange(batch_size))
    return state, inputs


def components_table(batch_size, steps, threads=1, rounds=5, world="easy"):
    state, inputs = setup(batch_size, world=world)
    table = step_gemm_table(state.model_cfg, inputs)
    gemms = [shape for _, shape in table]
    operands = gemm_operands(gemms)
    timers = Timers()
    plain, floors, per_shape = [], [], []
    with threadpool_limits(limits=threads, user_api="blas"), nearest_threads(threads):
        for _ in range(3):
            _train_step(state, inputs)  # warm up
        for _ in range(rounds):  # the plain step and the floor, interleaved: the same load on both
            plain.append(measure(lambda: _train_step(state, inputs), steps))
            shape_s, floor_s = time_gemms(gemms, operands=operands)
            floors.append(floor_s)
            per_shape.append(shape_s)
        with timed_components(state, timers):
            cpu_t, wall_t = measure(lambda: _train_step(state, inputs), steps)
    cpu_plain, wall_plain = np.median(plain, axis=0)
    floor_s = float(np.median(floors))
    ratio_cpu = float(np.median([c / f for (c, _), f in zip(plain, floors)]))
    ratio_wall = float(np.median([w / f for (_, w), f in zip(plain, floors)]))
    shape_s = {shape: float(np.median([r[shape] for r in per_shape])) for shape in per_shape[0]}
    floor_of = {}
    for label, shape in table:
        floor_of[label] = floor_of.get(label, 0.0) + shape_s[shape]
    gflop = sum(2 * m * k * n for m, k, n in gemms) / 1e9
    plural = "s" * (threads > 1)
    print(f"\n1. one step, batch {batch_size}, {threads} thread{plural}: components timed inside "
          f"the step (ms per step; {steps} steps); 'floor' is the time of the component's own matrix products")
    print(f"{'component':48s} {'CPU':>7s} {'wall':>7s} {'share':>6s} {'floor':>6s} {'wall-floor':>10s}")
    names = list(timers.cpu) + [_OTHER]
    other_c = cpu_t - sum(timers.cpu.values()) / steps
    other_w = wall_t - sum(timers.wall.values()) / steps
    for name in names:
        if name == _OTHER:
            c, w = other_c, other_w
        else:
            c, w = timers.cpu[name] / steps, timers.wall[name] / steps
        f = floor_of.get(name, 0.0)
        print(f"{name:48s} {1e3 * c:7.2f} {1e3 * w:7.2f} {100 * w / wall_t:5.1f}% {1e3 * f:6.2f} {1e3 * (w - f):10.2f}")
    missing = set(floor_of) - set(names)
    if missing:
        print(f"note: floor of {sorted(missing)} has no component row", file=sys.stderr)
    print(f"{'whole step, with the timers':48s} {1e3 * cpu_t:7.2f} {1e3 * wall_t:7.2f}")
    print(f"{'whole step, without them':48s} {1e3 * cpu_plain:7.2f} {1e3 * wall_plain:7.2f}        "
          f"{1e3 * floor_s:6.2f} {1e3 * (wall_plain - floor_s):10.2f}")
    print(f"\n2. floor: {len(gemms)} matrix products, {gflop:.3f} GFLOP per step, "
          f"{1e3 * floor_s:.2f} ms at this machine's {threads}-thread GEMM speed "
          f"({gflop / floor_s:.1f} GFLOP/s); the step is {ratio_cpu:.2f} times its floor in CPU time, "
          f"{ratio_wall:.2f} in wall time (medians of {rounds} interleaved rounds)")
    return state, inputs


def torch_comparison(batch_size, steps, rounds, world="easy"):
    try:
        import torch
    except ImportError:
        print("\n3. PyTorch: torch is not installed (pip install torch==2.13.0); skipped")
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch_twin

    state64, inputs64 = setup(16, dtype="float64", world=world)
    loss, cache = loss_forward(state64.params, inputs64, state64.model_cfg)
    grads = loss_backward(cache)
    t_loss, t_grads = torch_twin.gradients(state64.params, inputs64, state64.model_cfg)
    err = max(np.abs(grads[k] - t_grads[k]).max() / max(np.abs(t_grads[k]).max(), 1e-300) for k in grads)
    print(f"\n3. PyTorch {torch.__version__} eager twin: float64 loss {loss:.15f} vs {t_loss:.15f}, "
          f"largest relative gradient difference {err:.1e}")
    if abs(loss - t_loss) > 1e-10 * abs(loss) or err > 1e-10:
        print("   the twin does not compute minivq's model: no timing")
        return
    print(f"   whole step (ms, medians of {rounds} interleaved rounds of {steps} steps), batch {batch_size}:")
    print(f"   {'threads':>7s} {'minivq CPU':>10s} {'torch CPU':>10s} {'ratio':>6s} "
          f"{'minivq wall':>11s} {'torch wall':>10s} {'ratio':>6s}")
    for threads in (1, 2):
        state, inputs = setup(batch_size, world=world)
        twin = torch_twin.TwinStep(state, inputs)
        torch.set_num_threads(threads)
        mine, theirs = [], []
        with ExitStack() as stack:
            stack.enter_context(threadpool_limits(limits=threads, user_api="blas"))
            stack.enter_context(nearest_threads(threads))
            for _ in range(3):
                _train_step(state, inputs)
                twin()
            for _ in range(rounds):
                mine.append(measure(lambda: _train_step(state, inputs), steps))
                theirs.append(measure(twin, steps))
        (mc, mw), (tc, tw) = np.median(mine, axis=0), np.median(theirs, axis=0)
        print(f"   {threads:7d} {1e3 * mc:10.2f} {1e3 * tc:10.2f} {mc / tc:6.2f} "
              f"{1e3 * mw:11.2f} {1e3 * tw:10.2f} {mw / tw:6.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40, help="steps per timing")
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved rounds: of the step and its floor, and against PyTorch")
    parser.add_argument("--threads", type=int, default=1, help="threads of the component table")
    parser.add_argument("--world", default="easy", choices=sorted(PRESETS),
                        help="the scenes' world: 'easy' (v0.1's, the default) or the demo's 'hard_on_grid' "
                             "(2-5 named digits: longer captions)")
    args = parser.parse_args()
    print(minivq.about())
    print(f"world {args.world!r}, batch {args.batch_size}")
    components_table(args.batch_size, args.steps, args.threads, args.rounds, args.world)
    torch_comparison(args.batch_size, args.steps, args.rounds, args.world)


if __name__ == "__main__":
    main()
