"""Child processes with limits: a wall-time limit, a cap on their output, their own process group.

:class:`Pool` runs :class:`Job` s, at most ``jobs`` at a time, each in a new
session (so in its own process group) with stdin closed and stdout and stderr
read by the grader: it keeps the first and last lines and kills the job's
group when the output passes ``output_limit`` bytes. A job past its deadline
has its group killed; so has a job that ended (whatever it left behind in its
group); and when :meth:`Pool.run` leaves, normally or by an exception (the
grader's SIGINT or SIGTERM, see :func:`stop_on_sigterm`), every group still
running is killed and reaped. With ``reap_orphans`` the grader is the
"subreaper" of its descendants (Linux): a process that left its group and
its parent is handed to the grader, which kills it.

This is what keeps one exercise from stopping the others; it is not a
security sandbox (COURSE.md says what to add for that).
"""
import os
import selectors
import signal
import subprocess
import time
from dataclasses import dataclass, field

__all__ = ["Job", "Outcome", "Pool", "stop_on_sigterm", "become_subreaper", "kill_orphans"]

KEEP = 8192  # bytes of output kept from the start and from the end


@dataclass
class Job:
    """One child: ``argv`` run in ``cwd`` with ``env``, for at most ``timeout`` seconds."""

    key: object
    argv: list
    cwd: str
    env: dict
    timeout: float


@dataclass
class Outcome:
    """How a job ended: ``status`` ``"exited"`` (see ``returncode``), ``"timeout"`` or ``"output_limit"``."""

    key: object
    status: str
    returncode: int = None
    seconds: float = 0.0
    output: str = ""
    output_bytes: int = 0


@dataclass
class _Running:
    job: Job
    proc: subprocess.Popen
    start: float
    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    size: int = 0
    eof: bool = False


def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def become_subreaper():
    """Make this process the subreaper of its descendants (Linux; False elsewhere)."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(36, 1) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _children_of(pid):
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def kill_orphans(known=()):
    """Kill and reap this process's children that are not in ``known`` (orphans handed to a subreaper)."""
    for _ in range(20):
        orphans = [p for p in _children_of(os.getpid()) if p not in set(known)]
        if not orphans:
            return
        for pid in orphans:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError, PermissionError):
                pass


class Pool:
    """Run jobs at most ``jobs`` at a time; see the module docstring."""

    def __init__(self, jobs=2, output_limit=4 << 20, reap_orphans=False):
        self.jobs, self.output_limit, self.reap_orphans = max(1, int(jobs)), int(output_limit), reap_orphans
        self.running = {}

    def _start(self, job, selector):
        proc = subprocess.Popen(job.argv, cwd=job.cwd, env=job.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        os.set_blocking(proc.stdout.fileno(), False)
        run = _Running(job, proc, time.monotonic())
        self.running[proc.pid] = run
        selector.register(proc.stdout, selectors.EVENT_READ, run)

    def _read(self, run):
        try:
            chunk = os.read(run.proc.stdout.fileno(), 1 << 16)
        except BlockingIOError:  # nothing to read now
            return None
        except OSError:
            return False
        if not chunk:
            return False
        run.size += len(chunk)
        if len(run.head) < KEEP:
            take = KEEP - len(run.head)
            run.head += chunk[:take]
            chunk = chunk[take:]
        run.tail = (run.tail + chunk)[-KEEP:]
        return True

    def _finish(self, run, status, selector):
        _kill_group(run.proc)
        returncode = run.proc.wait()
        while not run.eof and self._read(run) is True and run.size <= self.output_limit + (1 << 20):  # what is left
            pass
        if not run.eof:
            selector.unregister(run.proc.stdout)
        run.proc.stdout.close()
        del self.running[run.proc.pid]
        if self.reap_orphans:
            kill_orphans(self.running)
        text = bytes(run.head).decode("utf-8", "replace")
        if run.tail:
            text += ("\n[... output cut ...]\n" if run.size > len(run.head) + len(run.tail) else "") + \
                bytes(run.tail).decode("utf-8", "replace")
        return Outcome(run.job.key, status, returncode, time.monotonic() - run.start, text, run.size)

    def run(self, jobs, done):
        """Run ``jobs`` (an iterable, consumed as slots free up); ``done(outcome)`` as each one ends."""
        pending = iter(jobs)
        selector = selectors.DefaultSelector()
        exhausted = False
        try:
            while True:
                while not exhausted and len(self.running) < self.jobs:
                    job = next(pending, None)
                    if job is None:
                        exhausted = True
                    else:
                        self._start(job, selector)
                if not self.running:
                    return
                now = time.monotonic()
                wait = min(run.start + run.job.timeout for run in self.running.values()) - now
                for key, _ in selector.select(timeout=max(0.0, min(wait, 0.1))):
                    run = key.data
                    if self._read(run) is False:  # the child closed its output: watch its exit only
                        run.eof = True
                        selector.unregister(run.proc.stdout)
                    elif run.size > self.output_limit:
                        done(self._finish(run, "output_limit", selector))
                for run in list(self.running.values()):
                    if run.proc.poll() is not None:
                        done(self._finish(run, "exited", selector))
                    elif time.monotonic() > run.start + run.job.timeout:
                        done(self._finish(run, "timeout", selector))
        finally:
            for run in list(self.running.values()):
                _kill_group(run.proc)
            for run in list(self.running.values()):
                run.proc.wait()
                run.proc.stdout.close()
            self.running.clear()
            if self.reap_orphans:
                kill_orphans()
            selector.close()


class Terminated(KeyboardInterrupt):
    """The grader got SIGTERM."""


def stop_on_sigterm():
    """SIGTERM raises :class:`Terminated` in the main thread (so the pools clean up); returns the old handler."""

    def handler(signum, frame):
        raise Terminated("terminated (SIGTERM)")

    return signal.signal(signal.SIGTERM, handler)
