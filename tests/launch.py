"""How the tests start the ``minivq`` command as a user does: a process of its own, on the tree under test.

``python -m minivq`` finds the package on ``sys.path``; the environment puts
the folder of the minivq these tests imported first, so a subprocess runs
the same code (a source tree, or the installed package) whatever its working
folder.
"""
import os
import signal
import subprocess
import sys
from pathlib import Path

import minivq

__all__ = ["ROOT", "minivq_command", "command_env", "start"]

ROOT = Path(minivq.__file__).resolve().parent.parent


def minivq_command(*argv):
    return [sys.executable, "-m", "minivq", *map(str, argv)]


def command_env(**extra):
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def start(*argv, cwd=None, env=None, **kwargs):
    """Popen of ``minivq argv``, text pipes, Ctrl-C delivered as Python's default (not ignored)."""
    return subprocess.Popen(minivq_command(*argv), cwd=cwd, env=command_env(**(env or {})), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kwargs)
