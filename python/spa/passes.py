"""Running SPA's C++ passes in-process on a module (through MLIR's PassManager)."""

from __future__ import annotations

import json
import os
import tempfile

from mlir import ir
from mlir.passmanager import PassManager

from spa.errors import SPAError
from spa.groups import Group, Plan, load_groups, plan_to_json


def run_pipeline(module: ir.Module, pipeline: str) -> None:
    """Run a textual pass pipeline on `module`; pass errors become SPAError."""
    with module.context:
        try:
            PassManager.parse(pipeline).run(module.operation)
        except ir.MLIRError as error:
            details = "; ".join(d.message for d in error.error_diagnostics) or str(error)
            raise SPAError(details) from None


def _option_path(path: str) -> str:
    # Pass options are parsed MLIR-style: quote the path so any character is safe.
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def coupling_groups(module: ir.Module) -> list[Group]:
    """The channel groups of `module` (spa-channel-coupling), as Group objects."""
    handle, path = tempfile.mkstemp(prefix="spa-groups-", suffix=".json")
    os.close(handle)
    try:
        run_pipeline(module, f"builtin.module(spa-channel-coupling{{output={_option_path(path)}}})")
        with open(path, encoding="utf-8") as stream:
            return load_groups(json.load(stream))
    finally:
        os.unlink(path)


def apply_plan(module: ir.Module, plan: Plan, groups: list[Group]) -> None:
    """Remove the plan's channels from `module` in place (spa-prune)."""
    handle, path = tempfile.mkstemp(prefix="spa-plan-", suffix=".json")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(plan_to_json(plan, groups))
        run_pipeline(module, f"builtin.module(spa-prune{{plan={_option_path(path)}}})")
    finally:
        os.unlink(path)
