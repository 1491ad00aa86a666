# lit configuration for SPA's FileCheck tests: `lit test/lit` after `pip install .`.
import os
import sys

import lit.formats

from spa.tools import tool_path

config.name = "SPA"
config.test_format = lit.formats.ShTest()
config.suffixes = [".mlir"]
config.test_source_root = os.path.dirname(__file__)
config.excludes = ["lit.cfg.py"]
# Run the installed native spa-opt directly (not the Python launcher), and
# filecheck (the PyPI port of LLVM's FileCheck) from this environment.
config.environment["PATH"] = os.pathsep.join(
    [str(tool_path("spa-opt").parent), os.path.dirname(sys.executable), os.environ["PATH"]])
