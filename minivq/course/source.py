"""Where the instructor repository is: the one minivq is imported from, or ``--source``."""
from pathlib import Path

from ..cli.checks import UsageError
from .exercises import COURSE

__all__ = ["repository_missing", "default_source", "check_source"]


def repository_missing(root, course=COURSE):
    """What ``root`` lacks to be a repository of ``course`` (setup.py, tests/, the package); [] if nothing."""
    root = Path(root)
    wanted = [("setup.py", (root / "setup.py").is_file()), ("tests/", (root / "tests").is_dir()),
              (f"{course.package}/", (root / course.package).is_dir())]
    return [name for name, present in wanted if not present]


def default_source():
    """The repository minivq is imported from, when it is a source tree (else UsageError)."""
    import minivq

    root = Path(minivq.__file__).resolve().parent.parent
    missing = repository_missing(root)
    if not missing:
        return root
    raise UsageError(f"--source: minivq is imported from {root}, which is not a repository (no "
                     f"{', no '.join(missing)}; a non-editable `pip install .` installs no repository); "
                     "pass --source PATH_TO_A_CLONE of the repository")


def check_source(text, course=COURSE):
    """``--source``, as typed, as a Path: an existing folder holding a repository (else UsageError)."""
    source = Path(text)
    if not source.exists():
        raise UsageError(f"--source {text}: no such folder")
    if not source.is_dir():
        raise UsageError(f"--source {text} is a file, expected the folder of a clone of the repository")
    missing = repository_missing(source, course)
    if missing:
        raise UsageError(f"--source {text}: expected a clone of the repository (setup.py, tests/, "
                         f"{course.package}/), got a folder with no {', no '.join(missing)}")
    return source
