"""A fork server for the sandboxed children: NumPy, SciPy and pytest imported once, each child forked.

``python -I -B zygote.py`` (started by :class:`minivq.course.sandbox.Pool`)
imports what every child imports anyway and nothing of minivq, then reads
requests from stdin, one JSON line each: ``{"id", "argv", "cwd", "env",
"fifo"}``. For each it forks a child that starts a new session (its own
process group), sends its output to the FIFO ``fifo`` (which the grader
reads), takes ``env`` and ``cwd``, and runs :mod:`minivq.course.child` with
``argv``. It answers ``{"id", "pid"}`` on stdout, then ``{"exit": pid,
"status": exit code (negative: the signal)}`` when the child ends. It dies
with the grader (``PR_SET_PDEATHSIG``), and its children die with it.

Standalone, like :mod:`minivq.course.child`: it imports nothing from minivq.
"""
import json
import os
import select
import signal
import sys

PRELOAD = ("numpy", "numpy.testing", "scipy.linalg", "scipy.linalg.cython_blas", "pytest", "_pytest.python",
           "_pytest.runner", "_pytest.fixtures", "_pytest.assertion.rewrite", "_pytest.terminal", "_pytest.main")


def _die_with_parent():
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass


def _say(item):
    os.write(1, (json.dumps(item) + "\n").encode())


def _child(request, child_main, zygote):
    _die_with_parent()
    if os.getppid() != zygote:  # the fork server is already gone
        os._exit(3)
    os.setsid()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    out = os.open(request["fifo"], os.O_WRONLY)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.closerange(3, 1 << 16)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = list(request["argv"])
    child_main(request["argv"][-1])
    os._exit(0)


def main():
    _die_with_parent()
    import importlib
    import importlib.util

    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    spec = importlib.util.spec_from_file_location("_minivq_course_child", os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "child.py"))
    child = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(child)
    zygote = os.getpid()
    _say({"ready": zygote})
    buffer = b""
    while True:
        ready, _, _ = select.select([0], [], [], 0.05)
        if ready:
            chunk = os.read(0, 1 << 16)
            if not chunk:  # the grader closed the pipe: it is done
                os._exit(0)
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    try:
                        _child(request, child.main, zygote)
                    finally:
                        os._exit(70)
                _say({"id": request["id"], "pid": pid})
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            _say({"exit": pid, "status": os.waitstatus_to_exitcode(status)})


if __name__ == "__main__":
    main()
