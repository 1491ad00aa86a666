"""The part every adapter shares: prune an exported ONNX model and read the pruned constants by name."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from spa.groups import Plan


@dataclass
class PrunedExport:
    """`plan`: what was removed; `onnx_model`: the pruned model; `arrays`: its constants by name."""

    plan: Plan
    onnx_model: onnx.ModelProto
    arrays: dict[str, np.ndarray]


def as_tuple(example_inputs: Any) -> tuple:
    """The example inputs an adapter was given, as a tuple (one input may come bare)."""
    return example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)


def prune_exported(source: onnx.ModelProto, criterion: str, keep: Iterable[str] = (), heads: str = "dims",
                   verify: bool = True, restrict: Callable[[Any], Any] | None = None,
                   replan: Callable[[Any, Plan], dict[str, Any] | None] | None = None,
                   **plan_options: Any) -> PrunedExport:
    """Load `source` into SPA, plan with `criterion` and `plan_options` (see spa.Model.plan), and prune.

    `keep` names weights whose groups the framework cannot represent pruned; those present are protected.
    `heads` is spa.Model.heads: attention heads lose head dims ("dims") or whole heads ("whole").
    `verify` checks the pruned model before it is used (spa.Model.prune); the returned plan then
    lists the groups verification blocked. `restrict(model)`, when given, is called before planning to
    hold groups the framework cannot represent (spa.Model.hold_groups). `replan(model, plan)`, when
    given, may return plan options to plan again with (the framework cannot take that plan's widths).
    """
    import spa

    model = spa.load(source)
    model.heads = heads
    if restrict is not None:
        restrict(model)
    present = set(model.weights()) if keep else set()
    protected = [*plan_options.pop("protect", ()), *(name for name in keep if name in present)]
    plan = model.plan(criterion, protect=protected, **plan_options)
    retry = replan(model, plan) if replan is not None else None
    if retry:
        plan = model.plan(criterion, protect=protected, **{**plan_options, **retry})
    applied = model.prune(plan, verify=verify)
    pruned = model.to_onnx()
    return PrunedExport(applied, pruned, named_constants(pruned))


def named_constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers, Constant nodes (how paddle2onnx stores weights) and Identity copies of them
    (how exporters share equal tensors), by name."""
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in arrays:
            arrays[node.output[0]] = arrays[node.input[0]]
        elif node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            arrays[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return arrays
