"""Packaging promises that do not need a wheel build (``.ci/run`` builds and installs both
artifacts): the sdist's MANIFEST.in, the wheel's .pyx sources, the build's OpenMP check and
debug-info flags, ``minivq.about()``, and the import-time warning without a compiled kernel."""
import ast
import fnmatch
import importlib.util
import os
import shutil
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

import minivq
from minivq import nearest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(minivq.__file__).resolve().parent
IN_SOURCE_TREE = PACKAGE.parent == ROOT and (ROOT / "setup.py").is_file()
source_tree_only = pytest.mark.skipif(not IN_SOURCE_TREE, reason="minivq is not imported from this checkout")


def tracked_files():
    """The files git tracks in this checkout (skips outside a git checkout, e.g. an sdist)."""
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return out.stdout.split()


def manifest_selection(files, defaults=()):
    """The subset of ``files`` that MANIFEST.in's rules select (setuptools' own parser),
    starting from ``defaults``, the files setuptools adds before reading MANIFEST.in."""
    from setuptools.command.egg_info import FileList

    selection = FileList()
    selection.allfiles = list(files)
    selection.files = list(defaults)
    for line in (ROOT / "MANIFEST.in").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            selection.process_template_line(line)
    return set(selection.files)


def setup_keywords():
    """The literal keyword arguments of the ``setup(...)`` call in setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree)
                if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "setup")
    return {k.arg: k.value for k in call.keywords}


@source_tree_only
def test_manifest_ships_every_file_the_build_and_the_notebooks_need():
    tracked = tracked_files()
    needed = [f for f in tracked
              if fnmatch.fnmatch(f, "minivq/*.pyx")
              or f.startswith(("data_small/", "tests/", "notebooks/"))
              or f in ("README.md", "METHOD.md", "STYLE.md", "LICENSE", "pyproject.toml", "setup.py")]
    assert any(f.endswith("_nearest_fast.pyx") for f in needed) and any(f.endswith(".npz") for f in needed)
    missing = sorted(set(needed) - manifest_selection(tracked))
    assert not missing, f"MANIFEST.in must include {missing}"


@source_tree_only
def test_manifest_leaves_generated_files_out():
    # setuptools adds the extensions' sources, which after cythonize() are the generated .c files
    c_sources = [f"minivq/_{name}.c" for name in ("nearest_fast", "nearest_teaching")]
    generated = c_sources + ["minivq/_nearest_teaching.html", "minivq/__pycache__/cli.cpython-311.pyc",
                             *(f"minivq/_nearest_fast{suffix}" for suffix in EXTENSION_SUFFIXES)]
    kept = manifest_selection(tracked_files() + generated, defaults=c_sources) & set(generated)
    assert not kept, f"MANIFEST.in must exclude the generated {sorted(kept)}"


@source_tree_only
def test_wheel_keeps_the_pyx_sources_notebook_01_reads():
    keywords = setup_keywords()
    excluded = ast.literal_eval(keywords["exclude_package_data"]).get("minivq", [])
    assert not [p for p in excluded if fnmatch.fnmatch("_nearest_fast.pyx", p)], excluded
    shipped = ast.literal_eval(keywords["package_data"]).get("minivq", [])
    for name in ("_nearest_fast.pyx", "_nearest_teaching.pyx"):
        assert any(fnmatch.fnmatch(name, p) for p in shipped), f"package_data['minivq'] = {shipped} misses {name}"


def test_installed_package_has_the_pyx_sources():
    for name in ("_nearest_fast.pyx", "_nearest_teaching.pyx"):
        assert (PACKAGE / name).is_file(), f"{PACKAGE / name} is missing: notebook 01 reads it"


def load_setup_module():
    """setup.py as a module (its setup() call runs only as __main__)."""
    pytest.importorskip("Cython")
    spec = importlib.util.spec_from_file_location("minivq_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CompilerWithoutOpenMP:
    """A stand-in for a distutils compiler on which every OpenMP flag fails to compile."""

    compiler_type = "unix"

    def __init__(self):
        self.calls = []

    def compile(self, sources, output_dir=None, extra_postargs=None):
        from setuptools.errors import CompileError

        self.calls.append(list(extra_postargs))
        raise CompileError(f"unrecognized command-line option {extra_postargs[0]!r}")

    def link_executable(self, *args, **kwargs):
        raise AssertionError("link after a failed compile")


@source_tree_only
def test_openmp_check_warns_and_builds_without_when_the_compiler_cannot(capsys, monkeypatch):
    monkeypatch.delenv("MINIVQ_OPENMP", raising=False)
    setup = load_setup_module()
    compiler = CompilerWithoutOpenMP()
    assert setup.check_openmp(compiler) is None
    assert ["-fopenmp"] in compiler.calls
    out = capsys.readouterr().out
    assert "WITHOUT OpenMP" in out and "unrecognized command-line option '-fopenmp'" in out


@source_tree_only
def test_openmp_can_be_turned_off_on_purpose(capsys, monkeypatch):
    monkeypatch.setenv("MINIVQ_OPENMP", "0")
    compiler = CompilerWithoutOpenMP()
    assert load_setup_module().check_openmp(compiler) is None
    assert compiler.calls == [] and "MINIVQ_OPENMP=0" in capsys.readouterr().out


def test_openmp_flag_is_the_compiled_kernels_own_answer():
    if minivq.BACKEND != "cython":
        pytest.skip("no compiled kernel")
    from minivq import _nearest_fast

    assert isinstance(_nearest_fast.openmp_enabled(), bool)
    assert minivq.OPENMP is _nearest_fast.openmp_enabled()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ELF section names")
def test_compiled_modules_carry_no_debug_info():
    modules = [p for p in PACKAGE.iterdir() if p.name.startswith("_nearest_") and p.suffix in (".so",)]
    if not modules:
        pytest.skip("no compiled kernel")
    for module in modules:
        data = module.read_bytes()
        assert b".debug_info" not in data, f"{module.name} has debug info: build with -g0"
        assert b".symtab" not in data, f"{module.name} is not stripped: link with -s"


def test_about_reports_version_backend_openmp_and_location():
    line = minivq.about()
    assert "\n" not in line
    assert line.startswith(f"minivq {minivq.__version__} (backend: {minivq.BACKEND}, ")
    if minivq.BACKEND == "cython":
        assert ("OpenMP: on" in line) is minivq.OPENMP and ("OpenMP: off" in line) is not minivq.OPENMP
    assert line.endswith(f" from {PACKAGE}")


def test_version_has_one_source():
    from importlib.metadata import version

    assert minivq.__version__ == "0.2.0"
    assert version("minivq") == minivq.__version__, "installed metadata is stale: reinstall minivq"
    pyproject = (ROOT / "pyproject.toml")
    if pyproject.is_file():
        text = pyproject.read_text()
        assert 'dynamic = ["version"]' in text and 'version = {attr = "minivq.__version__"}' in text


def import_from(folder, env_extra=None):
    """Import minivq with ``folder`` as the working directory; (stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MINIVQ_PUREPYTHON", "PYTHONPATH")}
    env.update(env_extra or {})
    code = "import minivq; print(minivq.__file__); print(minivq.about())"
    done = subprocess.run([sys.executable, "-W", "always::RuntimeWarning", "-c", code], cwd=folder,
                          env=env, capture_output=True, text=True, timeout=120, check=True)
    return done.stdout, done.stderr


def copy_package(dest, source_tree):
    """The package's Python files, without any compiled kernel, in ``dest/minivq``."""
    shutil.copytree(PACKAGE, dest / "minivq",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.c", "*.html", "__pycache__"))
    if source_tree:
        (dest / "setup.py").write_text("")
        (dest / "pyproject.toml").write_text("")
    return dest / "minivq"


def test_import_from_a_source_tree_without_kernel_says_so(tmp_path):
    copy_package(tmp_path, source_tree=True)
    out, err = import_from(tmp_path)
    assert out.splitlines()[0] == str(tmp_path / "minivq" / "__init__.py")
    assert (f"you are importing minivq from the source tree at {tmp_path}, which has no compiled kernel; "
            "build it in place with `pip install -e .` or run from outside the source tree "
            "to use the installed package") in err
    assert "circular" not in err
    assert "backend: numpy" in out


def test_import_of_an_install_without_kernel_says_reinstall(tmp_path):
    copy_package(tmp_path, source_tree=False)
    out, err = import_from(tmp_path)
    assert f"the installed package at {tmp_path / 'minivq'} has no compiled kernel" in err
    assert "pip install --force-reinstall minivq" in err and "source tree" not in err


def test_a_kernel_that_fails_to_load_shows_the_real_error(tmp_path):
    package = copy_package(tmp_path, source_tree=True)
    broken = package / f"_nearest_fast{EXTENSION_SUFFIXES[0]}"
    broken.write_bytes(b"not a shared library")
    out, err = import_from(tmp_path)
    assert "is there but fails to import: ImportError" in err
    assert str(broken) in err  # the loader's own message names the file
    assert "circular" not in err and "backend: numpy" in out


def test_purepython_is_named_as_the_reason(tmp_path):
    out, err = import_from(tmp_path, {"MINIVQ_PUREPYTHON": "1"})
    assert "backend: numpy" in out and "MINIVQ_PUREPYTHON is set" in out
    assert "RuntimeWarning" not in err
