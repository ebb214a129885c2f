"""Where a person waits: each stage of ``minivq demo`` and notebooks 05-06, timed in one run.

A course runs the demo and the notebooks live; this benchmark times what a
student sits through, stage by stage, on one thread like the demo's workers
(BLAS and the nearest-code kernel held to one thread):

- loading the demo's three splits (scene generation, speech rendering);
- one training epoch of the full method (2000 pairs, batch 64);
- the per-epoch validation check (quick R@1 on ``val_size`` pairs);
- the final evaluation of one run on the 500 test pairs (encode, retrieval,
  localization, code-concept analysis);
- the demo's figures for that run;
- notebooks 05 and 06, executed in a Jupyter kernel (inline backend), with
  ``--notebooks``;
- the whole ``minivq demo`` in a subprocess, with ``--demo``.

Every stage is also printed as a ratio to one training epoch measured in the
same run, the unit a student feels (the machine is shared and noisy: the
ratios move less than the milliseconds). Medians of ``--repeat`` rounds.

    python benchmarks/bench_waits.py                         # ~1 minute
    python benchmarks/bench_waits.py --notebooks --demo      # ~3 minutes
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle pools sleep: see bench_nearest.py

from threadpoolctl import threadpool_limits  # noqa: E402

from minivq.cli import demo, demo_report  # noqa: E402
from minivq.metrics.evaluate import encode_split, evaluate  # noqa: E402
from minivq.nearest import nearest_threads  # noqa: E402
from minivq.train import TrainConfig, config_from_data, init_state, quick_val_r1, train_epoch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _run_notebook(path):
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    env_backend = os.environ.pop("MPLBACKEND", None)  # inline, as a student sees it
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        if env_backend is not None:
            os.environ["MPLBACKEND"] = env_backend


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="rounds per stage (median kept)")
    ap.add_argument("--notebooks", action="store_true", help="also execute notebooks 05 and 06")
    ap.add_argument("--demo", action="store_true", help="also run the whole `minivq demo` (about 40 s)")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error(f"--repeat must be at least 1, got {args.repeat}")

    settings = demo.demo_settings()
    rows = []
    with threadpool_limits(limits=1, user_api="blas"), nearest_threads(1):
        t_load = _median_time(lambda: demo._load_splits(settings, "test", log=lambda *_: None), 1)
        splits = demo._load_splits(settings, "test", log=lambda *_: None)
        cfg = config_from_data(splits["train"], demo.MODALITIES, variant="full", **settings["model"])
        tc = TrainConfig(seed=0, **settings["train"])
        state = init_state(cfg, tc, splits["train"])
        logs = train_epoch(state, splits["train"])  # warm up (k-means++ seeding, first allocations)
        t_epoch = _median_time(lambda: train_epoch(state, splits["train"]), args.repeat)
        n_val = min(tc.val_size, len(splits["val"]["images"]))
        t_val = _median_time(lambda: quick_val_r1(state.params, cfg, splits["val"], n_val), args.repeat)
        history = [{"epoch": 1, **logs, "val_pairs": n_val,
                    "val_r1": quick_val_r1(state.params, cfg, splits["val"], n_val)}]
        holder = {}

        def score():
            holder["enc"] = encode_split(state.params, cfg, splits["test"])
            holder["eval"] = evaluate(state.params, cfg, splits["test"], enc=holder["enc"])
        t_eval = _median_time(score, args.repeat)
        run = {"seed": 0, "history": history, "eval": holder["eval"], "enc": holder["enc"],
               "cfg": cfg, "train_cfg": tc}
        with tempfile.TemporaryDirectory() as tmp:
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt

            def draw():
                folder = SimpleNamespace(path=lambda name: Path(tmp) / name)  # as ResultsFolder's stage
                demo_report.draw_figures(folder, {"full": [run]}, splits["test"])
                plt.close("all")
            t_fig = _median_time(draw, args.repeat)
    rows += [("load the three splits (once per demo)", t_load),
             ("one training epoch, full method (2000 pairs)", t_epoch),
             (f"per-epoch validation ({n_val} pairs)", t_val),
             ("final evaluation of one run (500 test pairs)", t_eval),
             ("the demo's figures (one run)", t_fig)]
    if args.notebooks:
        for name in ("05_training_toy.ipynb", "06_spoken_digits.ipynb"):
            rows.append((f"notebook {name}", _median_time(lambda: _run_notebook(ROOT / "notebooks" / name), 1)))
    if args.demo:
        with tempfile.TemporaryDirectory() as tmp:
            t = _median_time(lambda: subprocess.run([sys.executable, "-m", "minivq", "demo", "--out", tmp],
                                                    check=True, stdout=subprocess.DEVNULL), 1)
        rows.append((f"`minivq demo` (3 variants x {tc.epochs} epochs, 2 workers)", t))

    print(f"minivq waits, {demo.DEMO['data']['world']} world; medians of {args.repeat} round(s), one thread")
    print()
    print("| stage | seconds | x one training epoch |")
    print("|---|---:|---:|")
    for name, t in rows:
        print(f"| {name} | {t:.2f} | {t / t_epoch:.2f} |")
    print()
    print(f"validation is {100 * t_val / t_epoch:.1f}% of an epoch's training; a demo run trains "
          f"{tc.epochs} epochs and validates after each")


if __name__ == "__main__":
    main()
