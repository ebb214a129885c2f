"""Files written so that a crash or a kill never leaves a half-written one.

:func:`atomic_write` writes to a temporary file in the destination's folder
(``.name.tmp-<pid>``), flushes it and syncs it to disk, renames it over the
destination with :func:`os.replace` (atomic on POSIX and Windows) and syncs
the folder, so the rename itself survives a power cut. A reader sees the old
file or the new one, never a mix. :func:`check_writable_folder` tells, before
a long run, whether its outputs could be written at all.
"""
import contextlib
import os
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_text", "check_writable_folder"]


def _temp_name(path):
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _remove_orphans(path):
    """Delete temporary files of ``path`` left by processes that were killed mid-write."""
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()


def _sync_folder(folder):
    """fsync a folder so a rename inside it is durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write):
    """Write a file atomically: temporary file, flush, fsync, ``os.replace``, fsync the folder.

    Parameters
    ----------
    path : str or Path
        Destination; its folder must exist.
    write : callable
        ``write(f)`` writes the content to the binary file object ``f``.

    Returns
    -------
    pathlib.Path
        The destination, once it holds the new content.
    """
    path = Path(path)
    _remove_orphans(path)
    tmp = _temp_name(path)
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
    _sync_folder(path.parent if str(path.parent) else ".")
    return path


def atomic_write_text(path, text):
    """:func:`atomic_write` of a UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def check_writable_folder(folder, create=False):
    """The reason files cannot be written in ``folder``, or None if they can.

    Creates and removes a temporary file there (the only reliable test:
    permissions, read-only mounts and full disks all show).

    Parameters
    ----------
    folder : str or Path
    create : bool
        Create the folder (and its parents) if it does not exist.

    Returns
    -------
    str or None
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
