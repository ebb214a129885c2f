"""minivq.cli.parallel: worker processes for independent runs (the demo's --jobs)."""
import pytest

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
