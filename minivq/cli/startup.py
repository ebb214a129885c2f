"""The first thing the ``minivq`` command does, before NumPy and the rest are imported.

``minivq/__init__.py`` calls :func:`arm`, which in any other process does nothing. In the command it refuses
an unreadable environment switch in one line (exit 2), and turns Ctrl-C during the start-up imports into one
line and exit 130, until :func:`disarm` hands Ctrl-C back to the command; :func:`rearm` covers the exit.
"""
import _signal  # signal's C core: `signal` itself imports enum, time in which Ctrl-C would be a traceback
import os
import sys

__all__ = ["is_command", "arm", "disarm", "rearm"]

COMMANDS = ("demo", "train", "evaluate", "study", "course")
_state = {"armed": False}


def is_command(argv=None):
    """True when this interpreter runs the ``minivq`` command (``argv``: default ``sys.orig_argv``)."""
    argv = list(getattr(sys, "orig_argv", sys.argv) if argv is None else argv)[1:]
    takes_value = ("-W", "-X")  # interpreter options followed by a value
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in takes_value:
            skip = True
        elif arg.startswith("-m"):
            module = arg[2:]
            if not module:
                i = argv.index(arg)
                module = argv[i + 1] if i + 1 < len(argv) else ""
            return module in ("minivq", "minivq.cli")
        elif arg == "-c" or arg == "-":
            return False
        elif not arg.startswith("-"):  # a script: the console script is named minivq
            return os.path.splitext(os.path.basename(arg))[0] in ("minivq", "minivq-script")
    return False


def _name():
    """``minivq demo`` (the subcommand typed), or ``minivq``."""
    command = next((a for a in sys.argv[1:] if not a.startswith("-")), None)
    return f"minivq {command}" if command in COMMANDS else "minivq"


def _interrupted(signum, frame):
    """Ctrl-C before the command runs or after it ended: one line, exit 130, nothing half-done to clean up."""
    try:
        sys.stdout.flush()
    except Exception:  # noqa: BLE001 - a closed pipe, or a write this signal interrupted
        pass
    os.write(2, f"{_name()}: error: interrupted\n".encode())
    os._exit(130)


def arm():
    """In the ``minivq`` command: catch Ctrl-C until :func:`disarm`, and check the environment switches."""
    if not is_command():
        return
    if _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:  # not when it is ignored (nohup, &)
        _signal.signal(_signal.SIGINT, _interrupted)
        _state["armed"] = True
    from ..env import EnvError, check_switches
    try:
        check_switches()
    except EnvError as e:
        sys.stderr.write(f"{_name()}: error: {e}\n")
        raise SystemExit(2) from None


def disarm():
    """Ctrl-C raises KeyboardInterrupt again (the command is ready to handle it)."""
    if _state["armed"] and _signal.getsignal(_signal.SIGINT) is _interrupted:
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)


def rearm():
    """After the command has returned: Ctrl-C during the interpreter's exit is one line and 130 again."""
    if _state["armed"]:
        _signal.signal(_signal.SIGINT, _interrupted)
