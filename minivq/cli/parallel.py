"""Independent training runs in worker processes (the demo's and the study's runs).

Every run is seeded and a worker holds BLAS and the nearest-code kernel to one thread, so the numbers do not
depend on the number of workers. Workers are spawned (no fork of a process holding threads), ignore Ctrl-C
(the parent stops them and keeps what finished) and exit quietly when their parent is killed.
"""
import os
import signal
import sys
import threading
import time
from multiprocessing import get_context, parent_process

from ..checks.arrays import check_int

__all__ = ["default_workers", "SharedClock", "JobRunner"]


def default_workers(n_jobs):
    """One worker per core this process may use, at most one per job (n_jobs >= 1)."""
    n_jobs = check_int(n_jobs, "n_jobs", 1)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, n_jobs))


class SharedClock:
    """:class:`minivq.cli.progress.Clock` of ``total`` epochs counted in shared memory by every worker, the
    ETA from the wall time since the start."""

    def __init__(self, total, context=None):
        self.total, self.start = check_int(total, "total", 0), time.perf_counter()
        _quiet_tracker()
        self._done = (context or get_context("spawn")).Value("i", 0)

    def tick(self, seconds):
        """Record one finished epoch (``seconds`` is not needed: the clock is the wall)."""
        with self._done.get_lock():
            self._done.value += 1

    def eta(self):
        """Estimated seconds left (None before the first epoch)."""
        done = self._done.value
        if done == 0:
            return None
        return (time.perf_counter() - self.start) / done * max(self.total - done, 0)


def _quiet_tracker():
    """Start multiprocessing's resource tracker (POSIX) without its warning about the semaphores it removes
    after a kill (two lines of noise after a kill the user asked for)."""
    if os.name != "posix":
        return
    from multiprocessing import resource_tracker
    quiet = "ignore:resource_tracker:UserWarning"
    sys.warnoptions.append(quiet)
    try:
        resource_tracker.ensure_running()
    finally:
        sys.warnoptions.remove(quiet)


def _watch_parent():
    """End this worker, quietly, as soon as its parent process is gone, however it died: the operating system
    closes the parent's end of ``parent_process()``'s sentinel (without it, poll the parent's pid)."""
    parent = parent_process()
    if parent is not None:
        parent.join()
    else:
        ppid = os.getppid()
        while os.getppid() == ppid:
            time.sleep(0.5)
    os._exit(0)  # nothing to report to a parent that is gone; no output, no BrokenPipeError


def _init_worker(initializer, initargs):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    threading.Thread(target=_watch_parent, name="minivq-parent-watch", daemon=True).start()
    if initializer is not None:
        initializer(*initargs)


def _call(fn_index_job):
    fn, index, job = fn_index_job
    return index, fn(job)


def _start_pool(n_workers, initializer, initargs):
    """A spawn Pool whose workers run BLAS on one thread and never see Ctrl-C: SIGINT is blocked while they
    are spawned (they inherit the mask, their imports print no traceback); here it arrives once the pool exists."""
    _quiet_tracker()
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # a worker's BLAS and kernel run on one thread
    mask = hasattr(signal, "pthread_sigmask")
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if mask else None
    try:
        return get_context("spawn").Pool(n_workers, _init_worker, (initializer, initargs))
    finally:
        if previous is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = previous
        if mask:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


class JobRunner:
    """A context manager that runs ``fn(job)`` for every job in ``n_workers`` processes (1: in this one).

    ``initializer(*initargs)`` runs once in every worker (or here), e.g. to load the data the jobs share.
    Leaving the block by an exception, Ctrl-C included, stops the workers at once.
    """

    def __init__(self, n_workers, initializer=None, initargs=()):
        self.n_workers = check_int(n_workers, "n_workers", 1)
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be callable or None, got {type(initializer).__name__}")
        self.initializer, self.initargs = initializer, tuple(initargs)
        self._pool = None

    def __enter__(self):
        if self.n_workers > 1:
            try:
                self._pool = _start_pool(self.n_workers, self.initializer, self.initargs)
            except BaseException:  # Ctrl-C as the workers start: stop those that did
                self.__exit__(KeyboardInterrupt, None, None)
                raise
        elif self.initializer is not None:
            self.initializer(*self.initargs)
        return self

    def results(self, fn, jobs):
        """Yield (index, fn(jobs[index])) for every job, as each finishes (in order with one worker)."""
        if self._pool is None:
            for index, job in enumerate(jobs):
                yield index, fn(job)
            return
        yield from self._pool.imap_unordered(_call, [(fn, i, job) for i, job in enumerate(jobs)])

    def __exit__(self, exc_type, exc, tb):
        if self._pool is not None:
            if exc_type is None:
                self._pool.close()
            else:
                self._pool.terminate()
            self._pool.join()
        return False
