"""The zero-mask oracle (a pruned model equals the original with the removed channels zeroed) and the
round-trip base it compares against.

Pruning channels S of a function-preserving group must give the same outputs
as the unpruned model in which every constant slice of the group at S is set
to zero. Both models are made from the same imported module, so names match.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

import spa
from spa.groups import Group, Plan, plan_to_dict


def random_plan(groups: list[Group], fraction: float = 0.3, seed: int = 0) -> Plan:
    """Remove a random `fraction` (at least one) of every prunable, function-preserving group."""
    rng = np.random.default_rng(seed)
    removed = {}
    for group in groups:
        if not (group.prunable and group.function_preserving) or group.channels < 2:
            continue
        count = min(max(1, int(fraction * group.channels)), group.channels - 1)
        removed[group.id] = tuple(sorted(rng.choice(group.channels, count, replace=False).tolist()))
    return Plan(removed)


def _constant_arrays(model: onnx.ModelProto) -> dict[str, tuple[str, object]]:
    """Where each constant lives: ('init', index) or ('node', node)."""
    places = {t.name: ("init", i) for i, t in enumerate(model.graph.initializer)}
    for node in model.graph.node:
        if node.op_type in ("Constant", "ConstantOfShape") or (node.op_type == "Identity" and node.input[0] in places):
            places[node.output[0]] = ("node", node)
    return places


def _node_value(model: onnx.ModelProto, node: onnx.NodeProto) -> np.ndarray:
    if node.op_type == "Identity":  # a shared initializer
        return next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == node.input[0]).copy()
    value = next((a.t for a in node.attribute if a.name == "value"), None)
    if node.op_type == "Constant":
        return numpy_helper.to_array(value).copy()
    shape_name = node.input[0]
    shape = next(numpy_helper.to_array(t) for t in model.graph.initializer if t.name == shape_name)
    fill = numpy_helper.to_array(value).reshape(-1)[0] if value is not None else np.float32(0)
    return np.full(tuple(int(d) for d in shape), fill)


def _unshare_identities(model: onnx.ModelProto) -> None:
    """Exporters share equal weights through Identity nodes; give each use its own copy,
    so that masking one group's slice of a shared weight leaves the other uses alone."""
    initializers = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in initializers:
            copy = numpy_helper.from_array(numpy_helper.to_array(initializers[node.input[0]]), node.output[0])
            del node.input[:]
            node.op_type = "Constant"
            node.attribute.append(onnx.helper.make_attribute("value", copy))


def masked_model(base: onnx.ModelProto, plan_dict: dict) -> onnx.ModelProto:
    """A copy of `base` with every member slice of the plan set to zero."""
    model = onnx.ModelProto()
    model.CopyFrom(base)
    _unshare_identities(model)
    places = _constant_arrays(model)
    for group in plan_dict["groups"]:
        for member in group["members"]:
            kind, where = places[member["tensor"]]
            array = (numpy_helper.to_array(model.graph.initializer[where]).copy() if kind == "init"
                     else _node_value(model, where))
            index = [slice(None)] * array.ndim
            index[member["axis"]] = member["indices"]
            array[tuple(index)] = 0
            tensor = numpy_helper.from_array(array, member["tensor"])
            if kind == "init":
                model.graph.initializer[where].CopyFrom(tensor)
            else:  # replace the node by a Constant holding the masked value
                del where.input[:]
                del where.attribute[:]
                where.op_type = "Constant"
                where.attribute.append(onnx.helper.make_attribute("value", tensor))
    return model


def prune_and_mask(source, fraction: float = 0.3, seed: int = 0, heads: str = "dims"):
    """(pruned ONNX, masked ONNX, plan dict, groups) for a random plan over `source`."""
    model = spa.load(source)
    model.heads = heads
    base = model.to_onnx()
    groups = model.coupling_groups()
    plan = random_plan(groups, fraction, seed)
    plan_dict = plan_to_dict(plan, groups)
    model.prune(plan, verify=False)  # the caller compares with the oracle itself: verifying too would double it
    return model.to_onnx(), masked_model(base, plan_dict), plan_dict, groups
