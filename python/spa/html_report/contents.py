"""What a report shows, as one JSON-ready dict: layers, edges, groups, totals, latency and sensitivity.

The layers come from the original model (see layer_graph); the figures after
pruning from the pruned model, matched by constant name (pruning keeps names).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from spa import stats
from spa.errors import SPAError
from spa.groups import Group
from spa.html_report.layer_graph import LayerGraph, layer_graph
from spa.ir.names import SPA_OPSET


@dataclass
class Side:
    """One model of the comparison: its ONNX form, constant shapes, MACs per weight and totals."""

    onnx: onnx.ModelProto
    shapes: dict[str, tuple[int, ...]]
    macs: dict[str, int]
    totals: stats.ModelStats

    @classmethod
    def of(cls, model) -> Side:
        """The figures of a spa.model.Model."""
        shapes = {name: tuple(array.shape) for name, array in model.weights().items()}
        return cls(model.to_onnx(opset=SPA_OPSET), shapes, stats.macs_per_weight(model.module), model.stats())


def _size(shape: Sequence[int] | None) -> int:
    return int(np.prod(shape)) if shape is not None else 0


def _width(shape: tuple[int, ...] | None, axis: int) -> int | None:
    return shape[axis] if shape is not None and -len(shape) <= axis < len(shape) else None


def _producer_axes(groups: Sequence[Group]) -> dict[str, tuple[int, int]]:
    """Constant name -> (axis, group id) of the first group that produces channels along it."""
    found: dict[str, tuple[int, int]] = {}
    for group in groups:
        for member in group.members:
            if member.role == "producer":
                found.setdefault(member.tensor, (member.axis, group.id))
    return found


def layer_rows(graph: LayerGraph, groups: Sequence[Group], before: Side, after: Side | None) -> list[dict[str, Any]]:
    """One row per layer: op, output width, weight shape, params and MACs, before and after."""
    produced = _producer_axes(groups)
    rows = []
    for layer in graph.layers:
        axis, group_id = produced.get(layer.main_weight, (layer.out_axis, None))
        shape = before.shapes.get(layer.main_weight)
        row = {"id": layer.id, "op": layer.op, "weight": layer.main_weight, "group": group_id,
               "shape_before": list(shape or ()), "width_before": _width(shape, axis),
               "params_before": sum(_size(before.shapes.get(w)) for w in layer.weights),
               "macs_before": before.macs.get(layer.main_weight, 0)}
        if after is not None:
            pruned = after.shapes.get(layer.main_weight)
            row.update(shape_after=list(pruned or ()), width_after=_width(pruned, axis),
                       params_after=sum(_size(after.shapes.get(w)) for w in layer.weights),
                       macs_after=after.macs.get(layer.main_weight, 0))
        rows.append(row)
    return rows


def removed_by_shapes(groups: Sequence[Group], before: Side, after: Side) -> dict[int, int]:
    """Group id -> channels removed, read from the pruned shapes of a member axis the group owns whole."""
    removed = {}
    for group in groups:
        for member in group.members:
            positions = len(member.channel_of_position)
            old, new = before.shapes.get(member.tensor), after.shapes.get(member.tensor)
            if member.positions_in_group() == positions and old is not None and new is not None \
                    and len(old) == len(new):
                removed[group.id] = (old[member.axis] - new[member.axis]) * group.channels // positions
                break
    return removed


def group_entries(graph: LayerGraph, groups: Sequence[Group], plan: Mapping[str, Any] | None,
                  removed: Mapping[int, int]) -> list[dict[str, Any]]:
    """One entry per group: size, status (pruned, kept, blocked, unprunable), reasons and its layers."""
    readers = graph.layer_of_tensor()
    blocked = {e["id"]: e.get("reason", "") for e in (plan or {}).get("blocked", []) if isinstance(e, dict)}
    entries = []
    for group in groups:
        if not group.prunable:
            status, reasons = "unprunable", list(group.reasons) or ["no reason given"]
        elif group.id in blocked:
            status, reasons = "blocked", [f"verification: {blocked[group.id]}"]
        else:
            status = "pruned" if removed.get(group.id) else "kept"
            reasons = []
        layers = {}
        for member in group.members:
            for layer_id in readers.get(member.tensor, []):
                layers.setdefault(layer_id, member.role)
        entries.append({"id": group.id, "channels": group.channels, "removed": removed.get(group.id),
                        "status": status, "reasons": reasons, "function_preserving": group.function_preserving,
                        "tensors": sorted({m.tensor for m in group.members}),
                        "layers": [{"id": i, "role": r} for i, r in layers.items()]})
    return entries


def sensitivity_curves(plan: Mapping[str, Any] | None, groups: Sequence[Group]) -> list[dict[str, Any]]:
    """The plan's sensitivity table as curves: per group, the fraction removed against the damage."""
    table = (plan or {}).get("sensitivity") or {}
    sizes = {group.id: group.channels for group in groups}
    curves = []
    for key, entry in sorted(table.items(), key=lambda item: int(item[0])):
        group_id = int(key)
        if group_id not in sizes or not isinstance(entry, Mapping):
            continue
        counts, damages = entry.get("counts", []), entry.get("damages", [])
        points = [{"x": 0.0, "y": 0.0}] + [{"x": c / sizes[group_id], "y": float(d)}
                                           for c, d in zip(counts, damages) if d is not None and np.isfinite(d)]
        curves.append({"group": group_id, "points": points})
    return curves


def report_contents(label: str, groups: Sequence[Group], before: Side, after: Side | None,
                    plan: Mapping[str, Any] | None) -> dict[str, Any]:
    """Everything but latency (see spa.html_report.timing) for the page of `label`."""
    graph = layer_graph(before.onnx)
    if not graph.layers:
        raise SPAError(f"{label}: no layer with a weight of rank 2 or more to draw")
    totals = {"before": {"params": before.totals.params, "macs": before.totals.macs}}
    removed = {}
    if plan is not None:
        removed = {e["id"]: len(e.get("removed", [])) for e in plan.get("groups", []) if isinstance(e, dict)}
    if after is not None:
        totals["after"] = {"params": after.totals.params, "macs": after.totals.macs}
        removed = removed if plan is not None else removed_by_shapes(groups, before, after)
    return {"model": label, "layers": layer_rows(graph, groups, before, after),
            "junctions": [{"id": i, "op": op} for i, op in graph.junctions],
            "edges": [list(edge) for edge in graph.edges], "inputs": graph.inputs, "outputs": graph.outputs,
            "groups": group_entries(graph, groups, plan, removed), "totals": totals,
            "sensitivity": sensitivity_curves(plan, groups),
            "data_used": (plan or {}).get("data_used", ""), "latency": None}
