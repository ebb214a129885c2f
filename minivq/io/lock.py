"""One writer per file: an OS lock on ``.<name>.lock`` beside it, held while a run writes the file.

``minivq train`` holds it on its checkpoint, so a second run on the same file is refused at once
(:class:`LockHeld`, naming the holder's pid, which the lock file holds). The lock is the operating system's
(``flock``, ``msvcrt.locking``): it dies with its process, so a killed run leaves no lock behind.
"""
import contextlib
import os
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

__all__ = ["LockHeld", "lock_path", "file_lock"]


class LockHeld(BlockingIOError):
    """Another process holds the lock of ``path`` (its pid ``pid``, or None if it has not written it yet)."""

    def __init__(self, path, pid, what="file"):
        self.path, self.pid = Path(path), pid
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"{what} {path} is being written by another minivq run ({holder}); wait for it to "
                         f"end, or choose another {what}")

    def __reduce__(self):
        return type(self), (self.path, self.pid)


def lock_path(path):
    """The lock file of ``path``: ``.<name>.lock`` in the same folder."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def _try_lock(fd):
    """Take the lock of the open file ``fd`` without waiting; False if another process holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _holder(lock):
    """The pid in the lock file (the holder writes it just after locking: wait for it a little)."""
    for _ in range(5):
        try:
            text = lock.read_text().strip()
        except OSError:
            return None
        if text.isdigit():
            return int(text)
        time.sleep(0.01)
    return None


@contextlib.contextmanager
def file_lock(path, what="file"):
    """Hold the lock of ``path`` (its folder must exist) for the block; :class:`LockHeld` at once if another
    process holds it (the message names the file as ``what``, e.g. ``"--checkpoint"``)."""
    lock = lock_path(path)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            raise LockHeld(path, _holder(lock), what)
        try:  # the holder before us may have removed the file we opened: lock the one at the path
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # (on Windows the locked byte hides it from the others)
        yield lock
    finally:
        with contextlib.suppress(OSError):
            if fcntl is not None:  # removed while held, so no one locks a file that is going away
                lock.unlink()
        os.close(fd)  # releases the lock
