"""Files a crash or a kill never leaves half-written: temporary file, fsync, ``os.replace``, fsync the folder.

A reader sees the old file or the new one, never a mix. :func:`check_writable_folder` tells, before a
long run, whether its outputs can be written at all.
"""
import contextlib
import os
import shutil
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_text", "check_writable_folder", "remove_stale"]


def _pid_alive(pid):
    """False only when no process ``pid`` exists (another user's, or no way to tell: alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass
    return True


def remove_stale(folder, prefix):
    """Remove the files and folders ``<prefix><pid>...`` in ``folder`` whose process ``pid`` is gone."""
    for old in Path(folder).glob(f"{prefix}*"):
        pid = old.name[len(prefix):].split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    old.unlink()


def sync_folder(folder):
    """fsync a folder so a rename inside it is durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path, write):
    """Write ``path`` (its folder must exist) atomically: ``write(f)`` fills the binary file ``f``; returns the Path."""
    path = Path(path)
    remove_stale(path.parent, f".{path.name}.tmp-")  # left by processes killed mid-write
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    sync_folder(path.parent)
    return path


def atomic_write_text(path, text):
    """:func:`atomic_write` of a UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def check_writable_folder(folder, create=False):
    """Why files cannot be written in ``folder`` (created with ``create``), or None if they can.

    Writes and removes a probe file: permissions, read-only mounts and full disks all show.
    """
    folder = Path(folder)
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        return f"{existing} is a file, expected a folder"
    if not folder.exists():
        if not create:
            return f"folder {folder} does not exist"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            return f"cannot create folder {folder} ({e.strerror or e})"
    probe = folder / f".minivq-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        return f"cannot write in folder {folder} ({e.strerror or e})"
    return None
