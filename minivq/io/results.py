"""A command's results folder: written in ``.R.tmp-<pid>`` beside ``R``, moved into ``R`` when finished.

Until then ``R`` keeps what it held, whole, whatever stops the command; unfinished results are kept
(:meth:`ResultsFolder.keep`) in ``R`` if it holds no finished ones, else in ``R.partial``. Only the
command's own file names are moved or removed; a stage left by a killed command is removed by the next.
"""
import contextlib
import os
import shutil
import signal
import threading
from pathlib import Path

from .atomic import remove_stale, sync_folder

__all__ = ["ResultsFolder", "deferred_interrupt"]


@contextlib.contextmanager
def deferred_interrupt():
    """Hold a Ctrl-C that arrives during the block and raise it after (a move of files is not cut in half)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


class ResultsFolder:
    """The files ``names`` (every name the command may write) of one command, staged beside ``out``
    (created if needed) and moved into it when finished."""

    def __init__(self, out, names):
        self.out, self.names = Path(out), tuple(names)
        self.out.mkdir(parents=True, exist_ok=True)
        parent, prefix = self.out.resolve().parent, f".{self.out.resolve().name}.tmp-"
        if not os.access(parent, os.W_OK):  # e.g. --out inside a folder of someone else's: stage inside it
            parent = self.out
        remove_stale(parent, prefix)
        self.stage = parent / f"{prefix}{os.getpid()}"
        self.stage.mkdir(exist_ok=True)

    def path(self, name):
        """Where the command writes ``name`` now (in the temporary folder)."""
        if name not in self.names:
            raise ValueError(f"{name!r} is not one of this folder's files ({', '.join(self.names)})")
        return self.stage / name

    def publish(self, target=None):
        """Move the written files into ``target`` (default ``out``), remove the others of :attr:`names` there;
        returns ``target``, or None when they were published (or discarded) already."""
        target = self.out if target is None else Path(target)
        if not self.stage.is_dir():  # nothing more to move, nothing to remove
            return None
        with deferred_interrupt():
            target.mkdir(parents=True, exist_ok=True)
            written = [n for n in self.names if (self.stage / n).is_file()]
            for name in sorted(written, key=lambda n: n.endswith(".json")):  # the JSON, the record, last
                os.replace(self.stage / name, target / name)
            for name in set(self.names) - set(written):
                with contextlib.suppress(FileNotFoundError):
                    (target / name).unlink()
            sync_folder(target)
            self.discard()
        return target

    def keep(self, finished_there):
        """Keep unfinished results: in ``out`` unless it holds finished ones (``finished_there``), else in
        ``out.partial``. Returns the folder that holds them (None: nothing was left to keep)."""
        base = self.out if self.out.name else self.out.resolve()  # --out . : beside the current folder
        return self.publish(base.with_name(base.name + ".partial") if finished_there else None)

    def discard(self):
        """Remove the temporary folder and what is left in it."""
        shutil.rmtree(self.stage, ignore_errors=True)
