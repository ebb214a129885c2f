"""The runs of ``minivq study`` as jobs: the plain dict of each run (:func:`minivq.study.runs.run_job` runs
it), and a list of them run in worker processes, longest first, one progress line per run.
"""
import os
import signal
import tempfile
import threading
import time
from contextlib import contextmanager

from ..cli.parallel import JobRunner
from ..cli.progress import format_duration, say
from ..io.atomic import remove_stale
from .analysis import VARIANTS, tuned_arms
from .runs import run_job

__all__ = ["make_jobs", "seed_jobs", "run_jobs", "scenes_folder", "job_cost"]


def make_jobs(s, arm, variant, seed, lr, split, epochs=None, score_epochs=()):
    """The job dict of one run (see :mod:`minivq.study.runs`); epochs default: the budget."""
    a = s["arms"][arm]
    return {"arm": arm, "variant": variant, "seed": seed, "data_seed": seed, "lr": lr, "split": split,
            "modalities": tuple(a["modalities"]), "world": a.get("world", s["world"]), "n_train": a["n_train"],
            "n_val": s["n_val"], "n_test": s["n_test"], "n_curve": s["n_curve"], "n_kmeans": s["n_kmeans"],
            "epochs": epochs or s["epochs"], "score_epochs": list(score_epochs), "batch_size": s["batch_size"],
            "model": {**s["model"], **a["model"]}, "lambdas": s["lambdas"]}


def _line(phase, done, total, rec, eta):
    what = f"{rec['arm']} {rec['variant']} seed {rec['seed']} lr {rec['lr']:g}, {rec['epochs']} epochs"
    if rec["diverged"]:
        return f"[{phase} {done}/{total}] {what}: diverged ({rec['error']}); ETA {format_duration(eta)}"
    m = rec["metrics"]
    extra = f", LOC {m['loc_code_to_image']:.3f}" if "loc_code_to_image" in m else ""
    return (f"[{phase} {done}/{total}] {what}: {rec['split']} set R@1 {m['set_mean_r1']:.3f}{extra} "
            f"({rec['seconds']:.0f}s); ETA {format_duration(eta)}")


def job_cost(job):
    """A rough relative cost, for the ETA before any run of a kind has finished."""
    window = 3.0 if job["model"].get("image_window") else 1.0  # the window image encoder: 3 times an epoch
    return (1.0 if job["variant"] == "summary" else 2.2) * (0.3 if "speech" not in job["modalities"] else 1.0) \
        * window * job["n_train"] * job["epochs"]


_SCENES_PREFIX = "minivq-study-data-"


@contextmanager
def scenes_folder():
    """A temporary folder for the scenes the workers share (:func:`minivq.study.runs.load`), removed at the end,
    on an error, Ctrl-C and SIGTERM (SystemExit in the block); after a SIGKILL, by the next study."""
    remove_stale(tempfile.gettempdir(), _SCENES_PREFIX)
    previous = None
    if threading.current_thread() is threading.main_thread():
        def stop(signum, frame):
            raise SystemExit(128 + signum)
        previous = signal.signal(signal.SIGTERM, stop)
    try:
        with tempfile.TemporaryDirectory(prefix=f"{_SCENES_PREFIX}{os.getpid()}-") as folder:
            yield folder
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run_jobs(jobs, n_workers, phase, eta_after=0.0):
    """Run every job in ``n_workers`` processes; records in job order. One progress line per finished run,
    with the ETA of this phase plus ``eta_after`` (the :func:`job_cost` of the phases still to come)."""
    n_workers = min(n_workers, len(jobs))
    say(f"minivq study: {phase}: {len(jobs)} runs on {n_workers} worker process{'es' * (n_workers > 1)}")
    order = sorted(range(len(jobs)), key=lambda i: -job_cost(jobs[i]))  # longest first
    t0, records, done_cost = time.perf_counter(), [None] * len(jobs), 0.0
    total_cost = sum(job_cost(j) for j in jobs)
    with scenes_folder() as cache, JobRunner(n_workers) as runner:
        # each seed's scenes are made once and shared by the workers through `cache` (deleted at the end)
        for k, rec in runner.results(run_job, [{**jobs[i], "data_cache": cache} for i in order]):
            i = order[k]
            records[i], done_cost = rec, done_cost + job_cost(jobs[i])
            rate = (time.perf_counter() - t0) / done_cost  # seconds per cost unit, all workers together
            eta = rate * (total_cost - done_cost + eta_after)
            say(_line(phase, sum(r is not None for r in records), len(jobs), rec, eta))
    return records


def seed_jobs(s, choices, seeds):
    """The test runs: every arm, variant and seed (secondary arms: the first extra_seeds), with the arm's
    own choices if it was tuned (:func:`minivq.study.analysis.tuned_arms`), else image-speech's."""
    jobs, own = [], tuned_arms(s)
    for arm, a in s["arms"].items():
        tuned = choices[arm if arm in own else "image_speech"]
        for seed in seeds:
            if a.get("extra") and seed >= s["extra_seeds"]:
                continue
            jobs += [make_jobs(s, arm, v, seed, tuned["lr"][v], "test", tuned["epochs"][v]) for v in VARIANTS]
    return jobs
