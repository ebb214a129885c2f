"""Child processes with limits: a wall-time limit, a cap on their output, their own process group.

A job's group is killed when it ends, times out or prints too much, and every group when :meth:`Pool.run`
leaves; with ``reap_orphans`` (Linux) the grader also kills the orphans handed back to it. Not a security sandbox.
"""
import json
import os
import select
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Job", "Outcome", "Pool", "stop_on_sigterm", "become_subreaper", "kill_orphans"]

KEEP = 8192  # bytes of output kept from the start and from the end
ZYGOTE = Path(__file__).with_name("zygote.py")


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


@dataclass
class _Running:
    job: Job
    pid: int
    fd: int
    start: float
    proc: subprocess.Popen = None
    returncode: int = None
    head: bytearray = field(default_factory=bytearray)
    tail: bytearray = field(default_factory=bytearray)
    size: int = 0
    eof: bool = False


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _close(run):
    if run.proc is not None:
        run.proc.stdout.close()
    else:
        os.close(run.fd)


def become_subreaper():
    """Make this process the subreaper of its descendants (Linux; False elsewhere)."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(36, 1) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def _children_of(pid):
    found = []
    for entry in [e for e in os.listdir("/proc") if e.isdigit()] if os.path.isdir("/proc") else ():
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:  # the parent's pid
                    found.append(int(entry))
        except OSError:
            continue
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


class _ForkServer:
    """The grader's end of :mod:`minivq.course.zygote`: fork requests out, pids and exit codes back."""

    def __init__(self, env):
        self.proc = subprocess.Popen([sys.executable, "-I", "-B", str(ZYGOTE)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd="/",
                                     start_new_session=True, close_fds=True)
        self.buffer, self.exits, self.pids, self.count = b"", {}, {}, 0
        self.fifos = tempfile.mkdtemp(prefix="minivq-grade-fifo-")
        ready = self._line(30.0)
        if not ready or "ready" not in ready:
            self.close()
            raise OSError("the fork server did not start")

    def _line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = max(0.0, deadline - time.monotonic())
            if not select.select([self.proc.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)

    def pump(self, timeout=0.0):
        """Read what the server said; False when it is gone."""
        while True:
            item = self._line(timeout)
            if item is None:
                return self.proc.poll() is None
            if "exit" in item:
                self.exits[item["exit"]] = item["status"]
            elif "id" in item:
                self.pids[item["id"]] = item["pid"]
            timeout = 0.0

    def start(self, job):
        self.count += 1
        fifo = os.path.join(self.fifos, f"{self.count}.out")
        os.mkfifo(fifo, 0o600)
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        request = {"id": self.count, "argv": job.argv[3:], "cwd": job.cwd, "env": job.env, "fifo": fifo}
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + 30
        while self.count not in self.pids and time.monotonic() < deadline and self.pump(0.5):
            pass
        if self.count not in self.pids:
            os.close(fd)
            raise OSError("the fork server stopped")
        return self.pids.pop(self.count), fd

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        _kill_group(self.proc.pid)
        self.proc.wait()
        self.proc.stdout.close()
        shutil.rmtree(self.fifos, ignore_errors=True)


class Pool:
    """Run jobs at most ``jobs`` at a time, each in a new session with its output read here. With ``fork_env``
    (Linux) the jobs (``[python, "-I", "-B", child.py, CONFIG]``) are forked by :mod:`.zygote`."""

    def __init__(self, jobs=2, output_limit=4 << 20, reap_orphans=False, fork_env=None):
        self.jobs, self.output_limit, self.reap_orphans = max(1, int(jobs)), int(output_limit), reap_orphans
        self.running, self.fork_env, self.server = {}, fork_env, None

    def _start(self, job, selector):
        if self.server is not None:
            pid, fd = self.server.start(job)
            run = _Running(job, pid, fd, time.monotonic())
        else:
            proc = subprocess.Popen(job.argv, cwd=job.cwd, env=job.env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                    close_fds=True)
            os.set_blocking(proc.stdout.fileno(), False)
            run = _Running(job, proc.pid, proc.stdout.fileno(), time.monotonic(), proc=proc)
        self.running[run.pid] = run
        selector.register(run.fd, selectors.EVENT_READ, run)

    def _read(self, run):
        try:
            chunk = os.read(run.fd, 1 << 16)
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

    def _exit_code(self, run, wait):
        if run.proc is not None:
            return run.proc.wait() if wait else run.proc.poll()
        deadline = time.monotonic() + (10 if wait else 0)
        while run.pid not in self.server.exits:
            if not self.server.pump(0.05 if wait else 0.0) or time.monotonic() > deadline:
                return -signal.SIGKILL if wait else None
        return self.server.exits.pop(run.pid)

    def _finish(self, run, status, selector):
        _kill_group(run.pid)
        returncode = self._exit_code(run, wait=True) if run.returncode is None else run.returncode
        while not run.eof and self._read(run) is True and run.size <= self.output_limit + (1 << 20):  # what is left
            pass
        if not run.eof:
            selector.unregister(run.fd)
        _close(run)
        del self.running[run.pid]
        if self.reap_orphans:
            kill_orphans(list(self.running) + ([self.server.proc.pid] if self.server else []))
        text = bytes(run.head).decode("utf-8", "replace")
        if run.tail:
            text += ("\n[... output cut ...]\n" if run.size > len(run.head) + len(run.tail) else "") + \
                bytes(run.tail).decode("utf-8", "replace")
        return Outcome(run.job.key, status, returncode, time.monotonic() - run.start, text)

    def run(self, jobs, done):
        """Run ``jobs`` (an iterable, consumed as slots free up); ``done(outcome)`` as each one ends."""
        pending = iter(jobs)
        selector = selectors.DefaultSelector()
        exhausted = False
        if self.fork_env is not None and hasattr(os, "fork") and hasattr(os, "mkfifo"):
            try:
                self.server = _ForkServer(self.fork_env)
            except OSError:
                self.server = None
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
                for key, _ in selector.select(timeout=max(0.0, min(wait, 0.05))):
                    run = key.data
                    if self._read(run) is False:  # the child closed its output: watch its exit only
                        run.eof = True
                        selector.unregister(run.fd)
                    elif run.size > self.output_limit:
                        done(self._finish(run, "output_limit", selector))
                for run in list(self.running.values()):
                    if run.pid not in self.running:
                        continue
                    code = self._exit_code(run, wait=False)
                    if code is not None:
                        run.returncode = code
                        done(self._finish(run, "exited", selector))
                    elif time.monotonic() > run.start + run.job.timeout:
                        done(self._finish(run, "timeout", selector))
        finally:
            for run in list(self.running.values()):
                _kill_group(run.pid)
            for run in list(self.running.values()):
                self._exit_code(run, wait=True)
                _close(run)
            self.running.clear()
            if self.server is not None:
                self.server.close()
                self.server = None
            if self.reap_orphans:
                kill_orphans()
            selector.close()


def stop_on_sigterm():
    """SIGTERM raises KeyboardInterrupt in the main thread (so the pools clean up); returns the old handler."""

    def handler(signum, frame):
        raise KeyboardInterrupt("terminated (SIGTERM)")

    return signal.signal(signal.SIGTERM, handler)
