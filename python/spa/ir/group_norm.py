"""torch's GroupNorm as one GroupNormalization node on import, and back to torch's form on export.

torch's TorchScript exporter writes `GroupNorm(G, C)` as primitives: Reshape
to [N, G, -1], InstanceNormalization with unit scale and zero bias per group,
Reshape back to Shape(x), then Mul and Add by the affine weight and bias
unsqueezed to [C, 1, ...]. Channels inside the flattened groups are hard to
follow through those Reshapes, while ONNX's GroupNormalization (opset 21:
scale and bias per channel) is exactly this computation and has a coupling
rule. Import fuses the pattern into it; export writes it back as the same
primitives when the target opset is older than 21 (GroupNormalization 18
meant per-group scale and bias).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

PER_CHANNEL_GROUP_NORM = 21  # the opset whose GroupNormalization takes per-channel scale and bias


def fuse_group_norms(model: onnx.ModelProto) -> int:
    """Replace torch's GroupNorm pattern in `model`'s main graph by GroupNormalization nodes (in place, at
    opset 21 or newer); returns how many were fused."""
    graph = model.graph
    if not any(node.op_type == "InstanceNormalization" for node in graph.node):
        return 0
    values, ranks = GraphConstants(graph), value_ranks(model)
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {value.name for value in graph.output}

    def only_consumer(name: str, op_type: str) -> onnx.NodeProto | None:
        users = consumers.get(name, [])
        if len(users) != 1 or name in outputs or users[0].op_type != op_type:
            return None
        return users[0]

    fused = []
    for reshape in [n for n in graph.node if n.op_type == "Reshape" and n.domain in ("", "ai.onnx")]:
        match = _match(reshape, values, ranks, producers, only_consumer)
        if match is not None:
            fused.append(match)
    for removed, node in fused:
        index = list(graph.node).index(removed[-1])
        graph.node.insert(index, node)
        for dead in removed:
            graph.node.remove(dead)
    _drop_dead_helpers(graph)
    return len(fused)


def _match(reshape, values, ranks, producers, only_consumer):
    """(nodes the pattern from `reshape` covers, the GroupNormalization replacing them), or None."""
    target = values.ints(reshape.input[1])
    if target is None or target[:1] != [0] or len(target) != 3 or target[2] != -1 or target[1] < 1 or \
            any(a.name == "allowzero" and a.i for a in reshape.attribute):
        return None  # [0, G, -1]: the batch kept, each group flattened
    groups, x = int(target[1]), reshape.input[0]
    rank = ranks.get(x)
    if rank is None or rank < 3:
        return None
    norm = only_consumer(reshape.output[0], "InstanceNormalization")
    if norm is None or not values.all_equal(norm.input[1], 1.0, groups) or not values.all_equal(norm.input[2], 0.0,
                                                                                                  groups):
        return None
    back = only_consumer(norm.output[0], "Reshape")
    shape = producers.get(back.input[1]) if back is not None else None
    if shape is None or shape.op_type != "Shape" or shape.input[0] != x or shape.attribute:
        return None
    scale_mul = only_consumer(back.output[0], "Mul")
    weight = _per_channel(scale_mul, back.output[0], rank, values, producers) if scale_mul else None
    shift_add = only_consumer(scale_mul.output[0], "Add") if weight else None
    bias = _per_channel(shift_add, scale_mul.output[0], rank, values, producers) if shift_add else None
    if bias is None or values.length(weight) != values.length(bias) or values.length(weight) % groups:
        return None
    epsilon = next((a.f for a in norm.attribute if a.name == "epsilon"), 1e-5)
    fused = helper.make_node("GroupNormalization", [x, weight, bias], [shift_add.output[0]],
                             name=shift_add.name or norm.name, epsilon=epsilon, num_groups=groups)
    return [reshape, norm, back, scale_mul, shift_add], fused


def _per_channel(node, data, rank, values, producers):
    """The 1-D constant that `node` (Mul or Add with `data`, of `rank`) applies per channel on axis 1,
    unsqueezed to [C, 1, ...] as torch writes it; None otherwise."""
    other = node.input[1] if node.input[0] == data else node.input[0]
    unsqueeze = producers.get(other)
    if unsqueeze is None or unsqueeze.op_type != "Unsqueeze" or len(unsqueeze.input) != 2:
        return None
    axes = values.ints(unsqueeze.input[1])
    source = unsqueeze.input[0]
    if axes is None or values.length(source) is None or sorted(axes) != list(range(1, rank - 1)):
        return None  # [C, 1, ...] with rank - 2 ones: broadcast against axis 1
    return source


def value_ranks(model: onnx.ModelProto) -> dict[str, int]:
    """The rank of every value of the main graph that ONNX shape inference types."""
    inferred = onnx.shape_inference.infer_shapes(model).graph
    values = [*inferred.input, *inferred.value_info, *inferred.output]
    return {v.name: len(v.type.tensor_type.shape.dim) for v in values if v.type.tensor_type.HasField("shape")}


class GraphConstants:
    """Initializers, Constant nodes and Identity copies of them in a graph, read on demand."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.tensors = {t.name: t for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant" and node.attribute:
                attribute = node.attribute[0]
                if attribute.name == "value":
                    self.tensors[node.output[0]] = attribute.t
                elif attribute.name == "value_ints":
                    self.tensors[node.output[0]] = numpy_helper.from_array(np.array(attribute.ints, np.int64))
            elif node.op_type == "Identity" and node.input[0] in self.tensors:  # torch shares equal weights so
                self.tensors[node.output[0]] = self.tensors[node.input[0]]

    def array(self, name: str) -> np.ndarray | None:
        tensor = self.tensors.get(name)
        if tensor is None or tensor.data_location == onnx.TensorProto.EXTERNAL:
            return None
        return numpy_helper.to_array(tensor)

    def ints(self, name: str) -> list[int] | None:
        value = self.array(name)
        return None if value is None or value.dtype.kind not in "iu" else [int(v) for v in value.reshape(-1)]

    def length(self, name: str) -> int | None:
        """The length of a 1-D constant (a weight: its data need not be loaded)."""
        tensor = self.tensors.get(name)
        return int(tensor.dims[0]) if tensor is not None and len(tensor.dims) == 1 else None

    def all_equal(self, name: str, value: float, size: int) -> bool:
        array = self.array(name)
        return array is not None and array.size == size and bool(np.all(array == value))


def _drop_dead_helpers(graph: onnx.GraphProto) -> None:
    """Remove the Constant, Shape and Unsqueeze nodes the fused patterns left without readers."""
    while True:
        used = {name for node in graph.node for name in node.input} | {v.name for v in graph.output}
        dead = [n for n in graph.node if n.op_type in ("Constant", "Shape", "Unsqueeze")
                and not any(out in used for out in n.output)]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)


def unfuse_group_norms(model: onnx.ModelProto, ranks: dict[str, int]) -> int:
    """Write every GroupNormalization of `model`'s main graph whose input rank is in `ranks` as torch's
    primitives (in place), for a target opset older than 21; returns how many."""
    graph = model.graph
    rewritten = [(index, node) for index, node in enumerate(graph.node)
                 if node.op_type == "GroupNormalization" and node.domain in ("", "ai.onnx") and node.input[0] in ranks]
    for index, node in reversed(rewritten):
        nodes = _primitives(node, ranks[node.input[0]])
        graph.node.remove(node)
        for offset, new in enumerate(nodes):
            graph.node.insert(index + offset, new)
    return len(rewritten)


def _primitives(node: onnx.NodeProto, rank: int) -> list[onnx.NodeProto]:
    x, scale, bias = node.input
    groups = next(a.i for a in node.attribute if a.name == "num_groups")
    epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
    base = (node.name or node.output[0]) + "/spa"

    def constant(name: str, array: np.ndarray) -> onnx.NodeProto:
        return helper.make_node("Constant", [], [f"{base}/{name}"], value=numpy_helper.from_array(array))

    return [
        constant("groups_shape", np.array([0, groups, -1], np.int64)),
        helper.make_node("Reshape", [x, f"{base}/groups_shape"], [f"{base}/grouped"]),
        constant("ones", np.ones(groups, np.float32)),
        constant("zeros", np.zeros(groups, np.float32)),
        helper.make_node("InstanceNormalization", [f"{base}/grouped", f"{base}/ones", f"{base}/zeros"],
                         [f"{base}/normalised"], epsilon=epsilon),
        helper.make_node("Shape", [x], [f"{base}/shape"]),
        helper.make_node("Reshape", [f"{base}/normalised", f"{base}/shape"], [f"{base}/ungrouped"]),
        constant("axes", np.arange(1, rank - 1, dtype=np.int64)),  # per channel: [C, 1, ...] against axis 1
        helper.make_node("Unsqueeze", [scale, f"{base}/axes"], [f"{base}/scale"]),
        helper.make_node("Unsqueeze", [bias, f"{base}/axes"], [f"{base}/bias"]),
        helper.make_node("Mul", [f"{base}/ungrouped", f"{base}/scale"], [f"{base}/scaled"]),
        helper.make_node("Add", [f"{base}/scaled", f"{base}/bias"], list(node.output), name=node.name),
    ]
