"""Build script for minivq's compiled kernels.

Metadata lives in pyproject.toml; this file only declares the Cython
extensions (the teaching kernel and the fast kernel of METHOD.md VQ-1, the
only compiled code of minivq) and maps the top-level
``data_small/`` folder into the installed package as ``minivq/data_small``
so that ``pip install .`` ships the data. The ``.pyx`` sources ship too:
notebook 01 reads them from the installed package.

The build fails loudly: a missing compiler or Cython is an error, never a
silent fall back to the NumPy path (the test suite also checks
``minivq.BACKEND == "cython"``).

OpenMP is used only when a test program compiles and links with it, using
the compiler of this very build (as scikit-learn does); otherwise the fast
kernel is built without it, a warning says so, and ``minivq.about()`` (also
``minivq --version``) reports "OpenMP: off". ``MINIVQ_OPENMP=0`` turns it
off on purpose. The modules are built without debug information and, with
GNU-style linkers on Linux, stripped.
"""
import os
import sys
import tempfile
import textwrap

from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

OPENMP_TEST_PROGRAM = textwrap.dedent("""\
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d\\n", n > 0 && omp_get_max_threads() > 0);
        return 0;
    }
""")


def openmp_flags(compiler):
    """(compile_args, link_args) of every OpenMP flavour worth trying with ``compiler``."""
    if compiler.compiler_type == "msvc":
        return [(["/openmp"], [])]
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":  # Apple clang: libomp from Homebrew or conda
        candidates.append((["-Xpreprocessor", "-fopenmp"], ["-lomp"]))
    return candidates


def check_openmp(compiler):
    """The OpenMP flags with which ``compiler`` compiles and links a test program.

    Returns
    -------
    (list, list) or None
        Compile and link arguments, or None when no candidate works (or
        ``MINIVQ_OPENMP=0``); the reason is printed.
    """
    if os.environ.get("MINIVQ_OPENMP", "") == "0":
        print("minivq: MINIVQ_OPENMP=0: building the fast kernel without OpenMP")
        return None
    errors = []
    for compile_args, link_args in openmp_flags(compiler):
        with tempfile.TemporaryDirectory() as tmp:
            source = os.path.join(tmp, "test_openmp.c")
            with open(source, "w") as f:
                f.write(OPENMP_TEST_PROGRAM)
            try:
                objects = compiler.compile([source], output_dir=tmp, extra_postargs=compile_args)
                compiler.link_executable(objects, "test_openmp", output_dir=tmp,
                                         extra_postargs=link_args)
                return compile_args, link_args
            except Exception as exc:  # CompileError, LinkError: try the next flavour
                errors.append(f"{' '.join(compile_args)}: {type(exc).__name__}: {exc}")
    print("\n".join([
        "*" * 72,
        "minivq WARNING: the C compiler cannot build an OpenMP program; the fast",
        "kernel is built WITHOUT OpenMP and runs on one thread whatever n_threads",
        "says (minivq.about() reports 'OpenMP: off'). Tried:",
        *("  " + e.splitlines()[0] for e in errors),
        "*" * 72,
    ]))
    return None


class BuildExt(build_ext):
    """build_ext that adds OpenMP after a test compile and drops debug info."""

    def build_extensions(self):
        gnu_like = self.compiler.compiler_type != "msvc"
        openmp = check_openmp(self.compiler)
        for ext in self.extensions:
            if gnu_like:
                ext.extra_compile_args += ["-O3", "-g0"]
                if sys.platform.startswith("linux"):
                    ext.extra_link_args += ["-s"]  # strip: no symbol tables in the wheel
            if openmp is not None and ext.name in OPENMP_EXTENSIONS:
                ext.extra_compile_args += openmp[0]
                ext.extra_link_args += openmp[1]
        super().build_extensions()


# Portable flags only: no -march=native, so a wheel built here runs on any
# x86-64 machine. OpenMP parallelizes the fast kernel over row tiles.
extensions = [
    Extension("minivq._nearest_teaching", ["minivq/_nearest_teaching.pyx"]),
    Extension("minivq._nearest_fast", ["minivq/_nearest_fast.pyx"]),
]
#: The extensions compiled with OpenMP when the test compile succeeds.
OPENMP_EXTENSIONS = {"minivq._nearest_fast"}

if __name__ == "__main__":
    setup(
        packages=find_packages(include=["minivq", "minivq.*"]) + ["minivq.data_small"],
        package_dir={"minivq": "minivq", "minivq.data_small": "data_small"},
        package_data={
            "minivq": ["*.pyx"],
            "minivq.data_small": ["*.npz", "*.json", "*.md", "*.txt"],
        },
        exclude_package_data={"minivq": ["*.c", "*.html", "*.so", "*.pyd"]},
        ext_modules=cythonize(
            extensions,
            compiler_directives={"language_level": "3"},
            annotate=False,
        ),
        cmdclass={"build_ext": BuildExt},
        zip_safe=False,
    )
