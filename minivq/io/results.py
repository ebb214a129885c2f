"""A command's results folder: written beside it, moved into it when the results are finished.

``minivq demo --out R`` and ``minivq study --out R`` write their files into a
temporary folder beside ``R`` (``.R.tmp-<pid>``) and move them into ``R``
at the end, one atomic rename per file: until then ``R`` keeps the results
it held, whole, whatever stops the command (Ctrl-C, SIGTERM, SIGKILL, an
error). Unfinished results are kept too (:meth:`ResultsFolder.keep`): in
``R`` when it holds no finished results, beside it in ``R.partial``
otherwise. Only the command's own file names are moved or removed; anything
else in ``R`` stays. A temporary folder left by a killed command is removed
by the next one (its name carries the dead pid).
"""
import contextlib
import os
import shutil
import signal
import threading
from pathlib import Path

from .atomic import _pid_alive, _sync_folder

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


def _stale_stages(parent, name):
    """Temporary folders of ``name`` in ``parent`` left by processes that are gone."""
    for old in parent.glob(f".{name}.tmp-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            yield old


class ResultsFolder:
    """The files ``names`` of one command, staged beside ``out`` and moved into it when finished.

    Parameters
    ----------
    out : str or Path
        The results folder (created if needed).
    names : iterable of str
        Every file name the command may write there: :meth:`publish` moves
        those it wrote and removes the others (an earlier run's), nothing else.
    """

    def __init__(self, out, names):
        self.out, self.names = Path(out), tuple(names)
        self.out.mkdir(parents=True, exist_ok=True)
        parent = self.out.resolve().parent
        if not os.access(parent, os.W_OK):  # e.g. --out inside a folder of someone else's: stage inside it
            parent = self.out
        for old in _stale_stages(parent, self.out.resolve().name):
            shutil.rmtree(old, ignore_errors=True)
        self.stage = parent / f".{self.out.resolve().name}.tmp-{os.getpid()}"
        self.stage.mkdir(exist_ok=True)

    def path(self, name):
        """Where the command writes ``name`` now (in the temporary folder)."""
        if name not in self.names:
            raise ValueError(f"{name!r} is not one of this folder's files ({', '.join(self.names)})")
        return self.stage / name

    def publish(self, target=None):
        """Move the written files into ``target`` (default ``out``), remove the others of :attr:`names` there.

        Returns
        -------
        pathlib.Path or None
            The folder that now holds them; None when they were published (or discarded) already.
        """
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
            _sync_folder(target)
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
