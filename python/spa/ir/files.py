"""Reading and writing MLIR modules as text (.mlir) or bytecode (.mlirbc)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from spa.ir.bindings import ir

from spa.ir.context import new_context
from spa.errors import SPAError

BYTECODE_SUFFIX = ".mlirbc"


def read_module(path: str | Path, context: ir.Context | None = None) -> ir.Module:
    """Parse an MLIR text or bytecode file into a module (in a new SPA context by default)."""
    path = Path(path)
    if not path.is_file():
        raise SPAError(f"{path}: no such file")
    data = path.read_bytes()
    context = context or new_context()
    with context:
        try:
            return ir.Module.parse(data)
        except ir.MLIRError as error:
            details = "; ".join(f"{d.location}: {d.message}" for d in error.error_diagnostics) or str(error)
            raise SPAError(f"{path}: not a valid MLIR module: {details}") from None


def write_module(module: ir.Module, path: str | Path, bytecode: bool | None = None) -> None:
    """Write a module atomically; bytecode when asked or when the name ends in .mlirbc."""
    path = Path(path)
    if bytecode is None:
        bytecode = path.suffix == BYTECODE_SUFFIX
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SPAError(f"{path}: directory {parent} does not exist")
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=parent)
    try:
        with os.fdopen(handle, "wb") as out:
            if bytecode:
                module.operation.write_bytecode(out)
            else:
                module.operation.print(file=out, binary=True, assume_verified=True)
        os.chmod(staging, 0o666 & ~_umask())  # mkstemp makes files private
        os.replace(staging, path)
    except BaseException:
        os.unlink(staging)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
