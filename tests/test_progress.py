"""Tests of minivq.cli.progress: durations, the ETA clock, the epoch line."""
import pytest

from minivq.cli.progress import Clock, format_duration


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (44.6, "45s"), (60, "1m00s"), (185, "3m05s"),
                                           (3720, "1h02m"), (None, "?"), (float("nan"), "?"),
                                           (float("inf"), "?"), (-1, "?")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_clock_estimates_the_time_left_from_the_mean_unit():
    clock = Clock(total=5)
    assert clock.eta() is None
    clock.tick(2.0)
    clock.tick(4.0)
    assert clock.eta() == pytest.approx(3 * 3.0)
    for _ in range(3):
        clock.tick(3.0)
    assert clock.eta() == 0
    clock.tick(1.0)  # more units than announced: never negative
    assert clock.eta() == 0


def test_say_writes_each_line_whole(monkeypatch):
    """One write per line: with PYTHONUNBUFFERED=1, print's separate newline let two demo workers splice lines."""
    import io
    import sys

    from minivq.cli.progress import say

    class Recorder(io.StringIO):
        def __init__(self):
            super().__init__()
            self.writes, self.flushes = [], 0

        def write(self, text):
            self.writes.append(text)
            return super().write(text)

        def flush(self):
            self.flushes += 1

    out = Recorder()
    monkeypatch.setattr(sys, "stdout", out)
    say("[full 3/3, seed 0] epoch 1/2", 0.5)
    assert out.writes == ["[full 3/3, seed 0] epoch 1/2 0.5\n"] and out.flushes == 1
