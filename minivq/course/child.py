"""One exercise's graded tests in a sandboxed child: ``python -I -B child.py CONFIG`` (a JSON the grader wrote).

It dies with the grader, limits its memory and file sizes, compiles the copy's ``.pyx`` files if asked,
and runs pytest with the recorder of :mod:`.plugin`. Standalone: it imports nothing from minivq.
"""
import json
import os
import resource
import signal
import subprocess
import sys

def die_with_parent():
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the grader's kill of the group still applies
        pass


def _limit(config):
    die_with_parent()
    if config["grader"] is not None and os.getppid() != config["grader"]:  # the grader is already gone
        os._exit(3)
    for limit, value in ((resource.RLIMIT_AS, config["memory"]), (resource.RLIMIT_FSIZE, config["file_size"]),
                         (resource.RLIMIT_CORE, 0)):
        if value is not None:
            soft, hard = resource.getrlimit(limit)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(limit, (value, hard))


def _build(config):
    """Compile the copy's .pyx files in place; False (and the compiler's output in the log) when they fail."""
    import sysconfig

    with open(config["log"], "w", encoding="utf-8") as log:
        for name, path in config["build"]:
            folder, stem = os.path.dirname(path), name.rsplit(".", 1)[-1]
            for f in os.listdir(folder or "."):  # the teacher's build of the same module must not be imported
                if f.startswith(stem + ".") and f.endswith((".so", ".pyd")):
                    os.unlink(os.path.join(folder, f))
            c_file = path[:-4] + ".c"
            steps = [[sys.executable, "-I", "-B", "-m", "cython", "-3", path, "-o", c_file],
                     [(sysconfig.get_config_var("CC") or "cc").split()[0], "-shared", "-fPIC", "-O0", "-g0", "-w",
                      "-I" + sysconfig.get_paths()["include"], c_file, "-o",
                      os.path.join(folder, stem + sysconfig.get_config_var("EXT_SUFFIX")), "-lm"]]
            if sys.platform == "darwin":
                steps[1][1:2] = ["-bundle", "-undefined", "dynamic_lookup"]
            for argv in steps:
                log.flush()
                if subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode:
                    return False
    return True


def main(path):
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    _limit(config)
    os.chdir(config["root"])
    if config["build"] and not _build(config):
        with open(config["out"], "w", encoding="utf-8") as f:
            json.dump({"build_failed": True}, f)
        sys.stdout.flush()
        os._exit(0)
    sys.path.insert(0, config["root"])
    import importlib.util

    spec = importlib.util.spec_from_file_location("_minivq_course_recorder", config["plugin"])
    recorder = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = recorder
    spec.loader.exec_module(recorder)
    select = os.path.join(os.path.dirname(config["out"]), "select.json")
    with open(select, "w", encoding="utf-8") as f:
        json.dump(config["patterns"], f)
    import pytest

    args = ["-q", "-s", "-p", "no:cacheprovider", "--noconftest", "--rootdir", config["root"], "-c", os.devnull,
            "-o", "python_files=test_*.py hidden_*.py", "--continue-on-collection-errors", "--course-guard",
            "--course-select", select, "--course-out", config["out"], "--course-events", config["events"],
            "--course-package", "minivq", *config["files"]]
    try:
        pytest.main(args, plugins=[recorder])
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # no atexit handler of the code under test runs


if __name__ == "__main__":
    main(sys.argv[1])
