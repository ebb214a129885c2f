"""Build script for minivq's compiled kernels.

Metadata lives in pyproject.toml; this file only declares the two Cython
extensions (the teaching kernel and the fast kernel of METHOD.md VQ-1) and
maps the top-level ``data_small/`` folder into the installed package as
``minivq/data_small`` so that ``pip install .`` ships the data.

The build fails loudly: a missing compiler or Cython is an error, never a
silent fall back to the NumPy path (the test suite also checks
``minivq.BACKEND == "cython"``).
"""
import os
import sys

from Cython.Build import cythonize
from setuptools import Extension, find_packages, setup

# OpenMP parallelizes the fast kernel over row tiles. Portable flags only:
# no -march=native, so a wheel built here runs on any x86-64 machine.
if sys.platform == "win32":
    openmp_compile, openmp_link = ["/openmp"], []
elif sys.platform == "darwin" and not os.environ.get("MINIVQ_OPENMP"):
    openmp_compile, openmp_link = [], []  # Apple clang has no OpenMP by default
else:
    openmp_compile, openmp_link = ["-fopenmp"], ["-fopenmp"]

opt = [] if sys.platform == "win32" else ["-O3"]

extensions = [
    Extension(
        "minivq._nearest_teaching",
        ["minivq/_nearest_teaching.pyx"],
        extra_compile_args=opt,
    ),
    Extension(
        "minivq._nearest_fast",
        ["minivq/_nearest_fast.pyx"],
        extra_compile_args=opt + openmp_compile,
        extra_link_args=openmp_link,
    ),
]

setup(
    packages=find_packages(include=["minivq", "minivq.*"]) + ["minivq.data_small"],
    package_dir={"minivq": "minivq", "minivq.data_small": "data_small"},
    package_data={"minivq.data_small": ["*.npz", "*.json", "*.md", "*.txt"]},
    exclude_package_data={"minivq": ["*.pyx", "*.c", "*.html"]},
    ext_modules=cythonize(
        extensions,
        compiler_directives={"language_level": "3"},
        annotate=False,
    ),
    zip_safe=False,
)
