"""minivq.cli.parallel: worker processes for independent runs (the demo's --jobs)."""
import os
import signal
import subprocess
import sys
import time

import pytest

from launch import command_env
from minivq.cli.parallel import JobRunner, SharedClock, default_workers


def _square(x):
    return x * x


@pytest.mark.parametrize("n_workers", [1, 2])
def test_every_job_runs_once_whatever_the_workers(n_workers):
    with JobRunner(n_workers) as runner:
        got = dict(runner.results(_square, [1, 2, 3, 4]))
    assert got == {0: 1, 1: 4, 2: 9, 3: 16}


def test_shared_clock_counts_ticks():
    clock = SharedClock(4)
    assert clock.eta() is None
    clock.tick(1.0)
    assert clock.eta() >= 0


@pytest.mark.parametrize("call, error, pattern", [
    (lambda: default_workers(0), ValueError, r"n_jobs must be an int >= 1, got 0"),
    (lambda: SharedClock(-1), ValueError, r"total must be an int >= 0, got -1"),
    (lambda: JobRunner("x"), TypeError, r"n_workers must be an int >= 1"),
    (lambda: JobRunner(1, initializer=3), TypeError, r"initializer must be callable or None"),
])
def test_bad_arguments_are_named(call, error, pattern):
    with pytest.raises(error, match=pattern):
        call()


def _gone(pid):
    """True when no process ``pid`` runs (a zombie waiting for a reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            return any(line.split()[1] in ("Z", "X") for line in f if line.startswith("State:"))
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads worker processes from /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_end_quietly_when_their_parent_is_killed(tmp_path, sig):
    script = ("import os, time\nfrom minivq.cli.parallel import JobRunner\n"
              "with JobRunner(2) as runner:\n"
              "    print(' '.join(c for t in os.listdir(f'/proc/{os.getpid()}/task') for c in "
              "open(f'/proc/{os.getpid()}/task/{t}/children').read().split()), flush=True)\n"
              "    for _ in runner.results(time.sleep, [60, 60]):\n        pass\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=command_env())
    children = [int(pid) for pid in proc.stdout.readline().split()]
    assert len(children) >= 2, children
    time.sleep(0.5)  # the workers are in their job
    proc.send_signal(sig)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=30)  # returns when every process holding the pipes (the workers) is gone
    while not all(_gone(pid) for pid in children) and time.monotonic() - t0 < 3:
        time.sleep(0.05)
    assert all(_gone(pid) for pid in children), f"the workers outlived their parent by {time.monotonic() - t0:.1f}s"
    assert err == "", f"the workers (or multiprocessing) said: {err}"
