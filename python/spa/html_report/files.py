"""`spa report` from files: the original model, and either the plan spa prune wrote or the pruned model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from spa.errors import SPAError
from spa.groups import Plan


def report_from_files(model_path: str, output: str | Path, plan_path: str | None = None,
                      pruned_path: str | None = None, heads: str = "dims", latency: bool = True,
                      input_shapes: Mapping[str, Sequence[int]] | None = None) -> None:
    """Write the report of MODEL, pruned by PLAN (applied here, unverified: only widths, params, MACs and
    latency are read from it) or compared with PRUNED."""
    from spa.html_report import write_report
    from spa.model import load
    from spa.verify.files import planned_removals, read_plan

    if plan_path and pruned_path:
        raise SPAError("give --plan or --pruned, not both")
    original = load(model_path)
    entries = read_plan(plan_path) if plan_path else None
    original.heads = (entries or {}).get("heads") or heads  # group ids depend on the head granularity
    pruned = None
    if entries is not None:
        removed = planned_removals(entries, original.coupling_groups(), plan_path)
        pruned = load(model_path)
        pruned.heads = original.heads
        pruned.prune(Plan(removed, heads=original.heads), verify=False)
    elif pruned_path:
        pruned = load(pruned_path)
    write_report(output, original, pruned, entries, latency, input_shapes)
