"""MLIR contexts with SPA's dialects and passes registered."""

from __future__ import annotations

from spa.ir.bindings import ir

from spa import _native


def new_context() -> ir.Context:
    """Return a new MLIR context with the onnx, spa and upstream dialects loaded."""
    context = ir.Context()
    _native.register_dialects(context)
    return context
