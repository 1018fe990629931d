"""Builds the CPU kernel of the fused TSSL-BP neuron (tsslc/csrc/tsslbp_cpu.cpp) at install.

Everything else about the package is in pyproject.toml. The extension is optional: without
a C++ compiler the install still succeeds, and tsslc builds the kernel on first use or runs
the pure-torch reference neuron (tsslc/fused_cpu.py says which, in one line).
"""

import importlib.util
from pathlib import Path

from setuptools import setup

_spec = importlib.util.spec_from_file_location("_tsslc_csrc_build", Path(__file__).parent / "tsslc" / "csrc" / "build.py")
_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_build)

setup(ext_modules=[_build.setuptools_extension()])
