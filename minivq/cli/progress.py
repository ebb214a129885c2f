"""Progress lines a person can follow: where a run is, how it goes, how long it will take."""
import sys

__all__ = ["Clock", "format_duration", "epoch_line", "say"]


def say(*parts):
    """print, flushed at once (progress shows through a pipe), in ONE write: ``print`` writes the newline
    apart, and two workers sharing a terminal could splice their lines."""
    sys.stdout.write(" ".join(map(str, parts)) + "\n")
    sys.stdout.flush()


def format_duration(seconds):
    """``"45s"``, ``"3m05s"`` or ``"1h02m"`` (``"?"`` for an unknown or negative time)."""
    if seconds is None or not seconds >= 0 or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Clock:
    """Time left for the ``total`` units of work (epochs) of a whole command, from the mean time per unit so far."""

    def __init__(self, total):
        self.total, self.done, self.seconds = int(total), 0, 0.0

    def tick(self, seconds):
        """Record one finished unit that took ``seconds``."""
        self.done += 1
        self.seconds += float(seconds)

    def eta(self):
        """Estimated seconds left (None before the first unit)."""
        if self.done == 0:
            return None
        return self.seconds / self.done * max(self.total - self.done, 0)


def epoch_line(state, logs, seconds, label, eta):
    """The progress line of the epoch ``state.epoch`` just finished: ``logs`` holds its means (and maybe
    ``val_r1`` on ``val_pairs`` pairs), ``label`` where the run stands (``"[full 3/3, seed 1]"``), ``eta`` the
    seconds left for the whole command."""
    cfg = state.model_cfg
    parts = f"mms {logs['mms']:.3f}"
    if cfg.use_cmcm:
        parts += f"  cmcm {logs['cmcm']:.3f}"
    if cfg.use_vq:
        parts += f"  commit {logs['commit']:.3f}  ppl {logs['perplexity']:.1f}  restarts {logs.get('restarted', 0):.2f}"
    val = ""
    if "val_r1" in logs:
        val = f"  val R@1 ({logs['val_pairs']} pairs) {logs['val_r1']:.3f}"
    return (f"{label} epoch {state.epoch}/{state.train_cfg.epochs}  loss {logs['loss']:.3f} ({parts}){val}  "
            f"{seconds:.1f}s  ETA {format_duration(eta)}")
