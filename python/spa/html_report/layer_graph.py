"""The graph a report draws: layers and junctions as nodes, and an edge where data flows between them.

A layer is a node that reads a float constant of rank 2 or more (a Conv,
Gemm or MatMul weight, an embedding table, a positional embedding). A
junction is any other node where two computed data streams meet (a residual
Add, a Concat, attention's MatMuls): without them a residual stream would
join every layer to every later one. Every other node (activations,
reshapes, normalisations, shape arithmetic) is passed through, so an edge
joins two drawn nodes when a path of such nodes joins them. That keeps the
picture of a ResNet-50 or a ViT-B/16 at a few hundred nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import onnx

INPUT_PREFIX, OUTPUT_PREFIX = "input:", "output:"
SHAPE_READERS = {"Shape", "Size"}  # their results say nothing of the values that flow in


@dataclass
class Layer:
    """One drawn node: `id` is the ONNX node name (made unique), `weights` its constant inputs (all ranks)."""

    id: str
    op: str
    weights: list[str]
    main_weight: str
    out_axis: int  # the axis of `main_weight` along which the layer's output channels run


def _out_axis(node: onnx.NodeProto, weight: str) -> int:
    """Where a layer's output channels run in its weight, by the op's own convention."""
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "ConvTranspose":
        return 1
    if node.op_type == "Gemm":
        return 0 if attributes.get("transB", 0) else 1
    if node.op_type == "MatMul":
        return -1 if list(node.input).index(weight) == 1 else -2
    if node.op_type == "Gather":
        return -1
    return 0


@dataclass
class LayerGraph:
    layers: list[Layer] = field(default_factory=list)
    junctions: list[tuple[str, str]] = field(default_factory=list)  # (id, op)
    edges: list[tuple[str, str]] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def layer_of_tensor(self) -> dict[str, list[str]]:
        """Constant name -> the ids of the layers that read it."""
        readers: dict[str, list[str]] = {}
        for layer in self.layers:
            for name in layer.weights:
                readers.setdefault(name, []).append(layer.id)
        return readers


def _constants(graph: onnx.GraphProto) -> dict[str, tuple[int, bool]]:
    """Constant name -> (rank, is float), for initializers, Constant nodes and Identity nodes of either."""
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16, onnx.TensorProto.DOUBLE}
    found = {t.name: (len(t.dims), t.data_type in floats) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            tensor = next((a.t for a in node.attribute if a.name == "value" and a.HasField("t")), None)
            if tensor is not None:
                found[node.output[0]] = (len(tensor.dims), tensor.data_type in floats)
        elif node.op_type == "Identity" and node.input and node.input[0] in found:  # a shared weight
            found[node.output[0]] = found[node.input[0]]
    return found


def _node_ids(graph: onnx.GraphProto) -> list[str]:
    """A unique, non-empty id per node: its name, or its op and index."""
    seen: set[str] = set()
    ids = []
    for index, node in enumerate(graph.node):
        name = node.name or f"{node.op_type}_{index}"
        while name in seen:
            name = f"{name}#{index}"
        seen.add(name)
        ids.append(name)
    return ids


def layer_graph(model: onnx.ModelProto) -> LayerGraph:
    """The layers of the main graph of `model` and the data-flow edges between them (see the module doc)."""
    graph = model.graph
    constants = _constants(graph)
    ids = _node_ids(graph)
    result = LayerGraph(inputs=[i.name for i in graph.input if i.name not in constants],
                        outputs=[o.name for o in graph.output])
    carries_data = set(result.inputs)  # tensors computed from the inputs' values, not from their shapes
    drawn = []
    for node_id, node in zip(ids, graph.node):
        weights = [name for name in node.input if name in constants]
        heavy = [name for name in weights if constants[name][1] and constants[name][0] >= 2]
        streams = {name for name in node.input if name in carries_data}
        if node.op_type not in SHAPE_READERS and streams:
            carries_data.update(name for name in node.output if name)
        is_layer, is_junction = bool(heavy) and node.op_type != "Constant", len(streams) >= 2
        if is_layer:
            result.layers.append(Layer(node_id, node.op_type, weights, heavy[0], _out_axis(node, heavy[0])))
        elif is_junction:
            result.junctions.append((node_id, node.op_type))
        drawn.append(is_layer or is_junction)
    result.edges = _edges(graph, ids, drawn, result.inputs, result.outputs)
    return result


def _edges(graph: onnx.GraphProto, ids: list[str], drawn: list[bool], inputs: list[str],
           outputs: list[str]) -> list[tuple[str, str]]:
    """(from, to) pairs of drawn node ids (and input:/output: ends) joined by paths through the others."""
    readers: dict[str, list[int]] = {}
    for index, node in enumerate(graph.node):
        for name in node.input:
            readers.setdefault(name, []).append(index)
    output_set = set(outputs)
    reached: dict[int, frozenset[str]] = {}  # node index -> the drawn nodes and outputs its results flow into

    def flows_into(tensor: str) -> frozenset[str]:
        ends = {OUTPUT_PREFIX + tensor} if tensor in output_set else set()
        for reader in readers.get(tensor, []):
            ends |= {ids[reader]} if drawn[reader] else through(reader)
        return frozenset(ends)

    def through(index: int) -> frozenset[str]:
        if index not in reached:
            reached[index] = frozenset()  # ONNX graphs have no cycles; this guards against malformed ones
            reached[index] = frozenset().union(*(flows_into(name) for name in graph.node[index].output if name))
        return reached[index]

    for index in reversed(range(len(graph.node))):  # nodes are in topological order: readers come first here,
        if not drawn[index]:                         # so the recursion is one level deep
            through(index)
    edges = set()
    for index, node in enumerate(graph.node):
        if drawn[index]:
            for name in node.output:
                edges |= {(ids[index], end) for end in flows_into(name)}
    for name in inputs:
        edges |= {(INPUT_PREFIX + name, end) for end in flows_into(name)}
    return sorted(edges)
