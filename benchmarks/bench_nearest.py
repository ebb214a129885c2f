"""Benchmark of the nearest-codeword search (METHOD.md VQ-1).

Every method is timed on the same float32 data in the same run, and reported
as a ratio to the bare GEMM ``X @ E.T`` (the physical limit: a search that
forms every x.e cannot beat it). Methods are interleaved round by round, so a
noisy neighbour on a shared machine slows all of them alike; the median of
the rounds is kept.

    python benchmarks/bench_nearest.py            # the full table (~5 min)
    python benchmarks/bench_nearest.py --quick    # small sizes (~20 s)

Optional baselines are timed when installed: scikit-learn's
``pairwise_distances_argmin`` and faiss' ``IndexFlatL2``
(``pip install -e ".[bench]"``).
"""
import argparse
import json
import os
import statistics
import time

# Idle thread pools go to sleep at once (libgomp: OMP_WAIT_POLICY; OpenBLAS:
# a 2^4-cycle timeout). Timed back to back, a library whose threads still spin
# after a call steals the cores from the next method: without these two, the
# 2-thread GEMM at (512, 64, 16) measured 4 ms instead of 0.02 ms here. Set
# before NumPy loads its BLAS; an explicit value in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import minivq  # noqa: E402
from minivq.nearest import nearest_code_reference, nearest_code_teaching  # noqa: E402

SIZES = [
    (512, 64, 16),
    (4096, 256, 64),
    (16384, 512, 64),
    (65536, 1024, 64),
    (65536, 1024, 256),
]
QUICK_SIZES = [(512, 64, 16), (4096, 256, 64)]
TEACHING_MAX_WORK = 1 << 24  # N*K*D: the plain loop is only timed below this
CDIST_MAX_WORK = 1 << 31


def numpy_expanded(X, E):
    """The NumPy expanded form, unchunked: the (N, K) matrix in one go."""
    d = (X * X).sum(1)[:, None] - 2 * (X @ E.T) + (E * E).sum(1)[None, :]
    idx = d.argmin(1)
    return idx, np.maximum(d[np.arange(len(idx)), idx], 0)


def scipy_cdist(X, E):
    from scipy.spatial.distance import cdist

    d = cdist(X, E, "sqeuclidean")
    return d.argmin(1)


def optional_methods(threads):
    """Baselines from other libraries, when they are installed."""
    methods = {}
    try:
        from sklearn.metrics import pairwise_distances_argmin

        methods["sklearn"] = lambda X, E: pairwise_distances_argmin(X, E)
    except ImportError:
        pass
    try:
        import faiss

        faiss.omp_set_num_threads(threads)

        def faiss_flat(X, E):
            index = faiss.IndexFlatL2(E.shape[1])
            index.add(E)
            return index.search(X, 1)

        methods["faiss"] = faiss_flat
    except ImportError:
        pass
    return methods


def methods_for(N, K, D, threads):
    work = N * K * D
    methods = {
        "gemm": lambda X, E: X @ E.T,
        "numpy_expanded": numpy_expanded,
        "cdist": scipy_cdist if work <= CDIST_MAX_WORK else None,
        "reference": nearest_code_reference,
        "teaching": (nearest_code_teaching  # compiled only: absent under MINIVQ_PUREPYTHON
                     if work <= TEACHING_MAX_WORK and minivq.BACKEND == "cython" else None),
        "minivq": lambda X, E: minivq.nearest_code(X, E, n_threads=threads),
    }
    methods.update(optional_methods(threads))
    return {name: f for name, f in methods.items() if f is not None}


def time_interleaved(methods, X, E, min_rounds=5, budget_s=6.0):
    """Median seconds per method, timing one call of each per round."""
    times = {name: [] for name in methods}
    for f in methods.values():  # warm up (first-call costs, page faults)
        f(X, E)
    start = time.perf_counter()
    rounds = 0
    while rounds < min_rounds or (time.perf_counter() - start < budget_s and rounds < 50):
        for name, f in methods.items():
            t0 = time.perf_counter()
            f(X, E)
            times[name].append(time.perf_counter() - t0)
        rounds += 1
        if time.perf_counter() - start > 4 * budget_s:
            break
    return {name: statistics.median(ts) for name, ts in times.items()}


def run(sizes, thread_counts, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for N, K, D in sizes:
        X = rng.standard_normal((N, D), dtype=np.float32)
        E = rng.standard_normal((K, D), dtype=np.float32)
        for threads in thread_counts:
            with threadpool_limits(limits=threads):
                medians = time_interleaved(methods_for(N, K, D, threads), X, E)
            gemm = medians["gemm"]
            ratios = {name: t / gemm for name, t in medians.items()}
            rows.append({"N": N, "K": K, "D": D, "threads": threads, "gemm_ms": 1e3 * gemm,
                         "ratios": ratios})
            print(format_row(rows[-1]), flush=True)
    return rows


COLUMNS = ["numpy_expanded", "cdist", "reference", "teaching", "sklearn", "faiss", "minivq"]


def format_header():
    head = f"{'(N, K, D)':>20} {'thr':>3} {'gemm ms':>8} " + " ".join(f"{c:>14}" for c in COLUMNS)
    return head + "\n" + "-" * len(head)


def format_row(row):
    cells = []
    for c in COLUMNS:
        r = row["ratios"].get(c)
        cells.append(f"{'-':>14}" if r is None else f"{r:>14.2f}")
    size = f"({row['N']}, {row['K']}, {row['D']})"
    return f"{size:>20} {row['threads']:>3} {row['gemm_ms']:>8.2f} " + " ".join(cells)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    print(f"minivq {minivq.__version__}, BACKEND={minivq.BACKEND}, float32, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}; "
          "each column is the median time as a multiple of the bare GEMM X @ E.T "
          "measured in the same run ('-': not installed or too slow to time)")
    print(format_header())
    rows = run(QUICK_SIZES if args.quick else SIZES, args.threads)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
