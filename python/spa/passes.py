"""Running SPA's C++ passes in-process on a module (through MLIR's PassManager)."""

from __future__ import annotations

import json

from spa.errors import SPAError
from spa.groups import Group, Plan, load_groups, plan_to_json
from spa.ir.bindings import PassManager, ir


def run_pipeline(module: ir.Module, pipeline: str) -> None:
    """Run a textual pass pipeline on `module`; pass errors become SPAError."""
    with module.context:
        try:
            PassManager.parse(pipeline).run(module.operation)
        except ir.MLIRError as error:
            details = "; ".join(d.message for d in error.error_diagnostics) or str(error)
            raise SPAError(details) from None


GROUPS_ATTRIBUTE = "spa.coupling_groups"  # where spa-channel-coupling{attach} leaves its JSON
PLAN_ATTRIBUTE = "spa.plan"  # where spa-prune reads a plan handed over in memory


def coupling_groups(module: ir.Module, heads: str = "dims") -> list[Group]:
    """The channel groups of `module` (spa-channel-coupling), as Group objects; `heads` is "dims" or "whole"."""
    run_pipeline(module, f"builtin.module(spa-channel-coupling{{attach=true heads={heads}}})")
    with module.context:
        attributes = module.operation.attributes
        text = ir.StringAttr(attributes[GROUPS_ATTRIBUTE]).value
        del attributes[GROUPS_ATTRIBUTE]
    return load_groups(json.loads(text))


def apply_plan(module: ir.Module, plan: Plan, groups: list[Group], heads: str = "dims") -> None:
    """Remove the plan's channels from `module` in place (spa-prune); `heads` as the groups were made."""
    with module.context:
        module.operation.attributes[PLAN_ATTRIBUTE] = ir.StringAttr.get(plan_to_json(plan, groups))
    try:
        run_pipeline(module, f"builtin.module(spa-prune{{heads={heads}}})")
    finally:
        with module.context:
            if PLAN_ATTRIBUTE in module.operation.attributes:
                del module.operation.attributes[PLAN_ATTRIBUTE]
