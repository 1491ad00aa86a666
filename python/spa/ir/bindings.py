"""The MLIR Python bindings, imported in one place so a process where they cannot work gets a clear error.

TensorFlow's native libraries carry their own LLVM/MLIR symbols. Loaded
after them, the MLIR bindings or SPA's native module crash the process;
loaded before them (both here, together), they work beside TensorFlow.
"""

import sys

from spa.errors import SPAError

if "tensorflow" in sys.modules:
    raise SPAError("SPA's MLIR cannot be loaded after TensorFlow in the same process (TensorFlow bundles its own "
                   "MLIR and the two collide): import spa.ir.bindings before tensorflow (or a Keras that uses it), "
                   "or run SPA in another process such as the spa CLI")

from mlir import ir
from mlir.dialects import func
from mlir.passmanager import PassManager

from spa import _native  # noqa: F401 - SPA's dialects and passes; must load before TensorFlow, like MLIR

__all__ = ["PassManager", "func", "ir"]
