"""The zero-mask oracle for groups that are not function-preserving.

Zeroing a group's weights is not the same as removing its channels when an
op computes statistics over them: a LayerNorm's mean and variance, a
ReduceMean, a Softmax. For those ops (the group's `non_preserving` sites),
the reference model gets a masked version of the op that reads a mask (one
per position of the channel axis: 1 kept, 0 removed) and computes over the
kept positions only. With every mask at one it computes what the op does; with
the plan's mask it computes what the pruned model's op does. So a plan whose
non-preserving groups are all emulated is checked against the pruned model
itself, with no second prune.

The masks are initializers of the reference model, set per plan like the
masked weights (`Emulation.masks`). Each op's masked form is one function in
`_EMULATIONS`; an op without one (GroupNorm, LRN, Shape...) leaves its group
to the second-prune check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from spa.groups import Group, Site


@dataclass
class Emulation:
    """The emulated groups of a reference model: per group, each mask's name and the group channel of
    each of its positions (shaped as the mask)."""

    masks: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    @property
    def groups(self) -> set[int]:
        return set(self.masks)

    def values(self, removed: Mapping[int, Iterable[int]]) -> dict[str, np.ndarray]:
        """The mask of every emulated group in `removed`: zero at the positions of removed channels."""
        result = {}
        for group, channels in removed.items():
            gone = np.fromiter((int(c) for c in channels), np.int64)
            for name, channel_of_position in self.masks.get(group, {}).items():
                result[name] = (~np.isin(channel_of_position, gone)).astype(np.float32)
        return result


class _Graph:
    """The nodes and initializers that replace one node, with fresh names."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.nodes, self.initializers, self.count = prefix, [], [], 0

    def op(self, op_type: str, inputs: list[str], **attributes) -> str:
        self.count += 1
        name = f"{self.prefix}/{op_type}_{self.count}"
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attributes))
        return name

    def constant(self, array: np.ndarray, hint: str) -> str:
        """An initializer named by `hint`; asked again for the same hint, the same one."""
        name = f"{self.prefix}/{hint}"
        known = next((t for t in self.initializers if t.name == name), None)
        if known is None:
            self.initializers.append(numpy_helper.from_array(np.asarray(array), name))
        else:
            assert np.array_equal(numpy_helper.to_array(known), array), f"{name} asked for with another value"
        return name

    def result(self, op_type: str, inputs: list[str], output: str) -> None:
        """The last node, which writes the replaced node's output."""
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=f"{self.prefix}/result"))


def _statistics_axes(node: onnx.NodeProto, site: Site) -> list[int] | None:
    """LayerNormalization normalises axes [axis, rank); the channel axis must be one of them."""
    axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
    first = axis + site.rank if axis < 0 else axis
    return list(range(first, site.rank)) if first <= site.axis < site.rank else None


def _kept(graph: _Graph, x: str, mask: str, elsewhere: str | None = None) -> str:
    """x at the kept positions, `elsewhere` (zero by default) at the removed ones. Where, not Mul by
    the mask: an inf or NaN in a removed channel must not reach the kept ones (inf * 0 is NaN)."""
    elsewhere = elsewhere or graph.constant(np.float32(0), "zero")
    return graph.op("Where", [graph.op("Cast", [mask], to=TensorProto.BOOL), x, elsewhere])


def _masked_mean(graph: _Graph, x: str, mask: str, axes: str, keepdims: int) -> tuple[str, str]:
    """(mean of x over `axes` counting kept positions only, the count), in float32."""
    total = graph.op("ReduceSum", [_kept(graph, x, mask), axes], keepdims=keepdims)
    count = graph.op("ReduceSum", [graph.op("Expand", [mask, graph.op("Shape", [x])]), axes], keepdims=keepdims)
    return graph.op("Div", [total, count]), count


def _layer_norm(graph: _Graph, node: onnx.NodeProto, site: Site, mask: str) -> bool:
    axes_list = _statistics_axes(node, site)
    if axes_list is None or len([o for o in node.output if o]) != 1:
        return False
    epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
    axes = graph.constant(np.asarray(axes_list, np.int64), "axes")
    x = graph.op("Cast", [node.input[0]], to=TensorProto.FLOAT)
    mean, count = _masked_mean(graph, x, mask, axes, 1)
    centred = _kept(graph, graph.op("Sub", [x, mean]), mask)
    variance = graph.op("Div", [graph.op("ReduceSum", [graph.op("Mul", [centred, centred]), axes], keepdims=1), count])
    spread = graph.op("Sqrt", [graph.op("Add", [variance, graph.constant(np.float32(epsilon), "epsilon")])])
    normal = graph.op("CastLike", [graph.op("Div", [centred, spread]), node.input[0]])
    scaled = graph.op("Mul", [normal, node.input[1]])
    result = graph.op("Add", [scaled, node.input[2]]) if len(node.input) > 2 and node.input[2] else scaled
    graph.result("Identity", [result], node.output[0])
    return True


def _reduced_axes(graph: _Graph, node: onnx.NodeProto, site: Site) -> str | None:
    """The axes a ReduceMean averages over, as a tensor name: its `axes` input, or every axis when it
    has none; None when it averages over none. (The reference is at SPA's opset, where axes are an
    input, whatever opset the model came with.)"""
    if len(node.input) > 1 and node.input[1]:
        return node.input[1]
    if next((a.i for a in node.attribute if a.name == "noop_with_empty_axes"), 0):
        return None
    return graph.constant(np.arange(site.rank, dtype=np.int64), "axes")


def _reduce_mean(graph: _Graph, node: onnx.NodeProto, site: Site, mask: str) -> bool:
    axes = _reduced_axes(graph, node, site)
    if axes is None:
        return False
    keepdims = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
    x = graph.op("Cast", [node.input[0]], to=TensorProto.FLOAT)
    mean, _ = _masked_mean(graph, x, mask, axes, keepdims)
    graph.result("CastLike", [mean, node.input[0]], node.output[0])
    return True


def _softmax(graph: _Graph, node: onnx.NodeProto, site: Site, mask: str) -> bool:
    axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
    x = graph.op("Cast", [node.input[0]], to=TensorProto.FLOAT)
    scores = _kept(graph, x, mask, graph.constant(np.float32(-np.inf), "minus_inf"))  # exp gives 0 there
    probabilities = _kept(graph, graph.op("Softmax", [scores], axis=axis), mask)
    graph.result("CastLike", [probabilities, node.input[0]], node.output[0])
    return True


# One masked form per op type: (graph, node, site, mask name) -> whether it applied.
_EMULATIONS: dict[str, Callable[[_Graph, onnx.NodeProto, Site, str], bool]] = {
    "LayerNormalization": _layer_norm,
    "ReduceMean": _reduce_mean,
    "Softmax": _softmax,
}


def emulate(model: onnx.ModelProto, groups: Iterable[Group]) -> Emulation:
    """Rewrite `model` in place: every site of each prunable, non-preserving group whose sites all
    have a masked form gets it (with its mask at one); returns the masks to set per plan."""
    producers = {output: index for index, node in enumerate(model.graph.node) for output in node.output}
    emulation, replaced, initializers = Emulation(), {}, []
    for group in groups:
        sites = group.non_preserving
        if not group.prunable or group.function_preserving or not sites or not all(
                s.op in _EMULATIONS and s.rank > s.axis >= 0 and s.output in producers for s in sites):
            continue
        staged = [(site, _Graph(f"spa.emulated/{group.id}/{number}")) for number, site in enumerate(sites)]
        masks = {}
        for site, graph in staged:
            shape = (len(site.channel_of_position),) + (1,) * (site.rank - site.axis - 1)
            mask = graph.constant(np.ones(shape, np.float32), "mask")
            node = model.graph.node[producers[site.output]]
            if node.op_type != site.op or not _EMULATIONS[site.op](graph, node, site, mask):
                break
            masks[mask] = np.asarray(site.channel_of_position, np.int64).reshape(shape)
        else:
            emulation.masks[group.id] = masks
            for site, graph in staged:
                replaced[producers[site.output]] = graph.nodes
                initializers += graph.initializers
    if replaced:
        nodes = [n for i, node in enumerate(model.graph.node) for n in replaced.get(i, [node])]
        del model.graph.node[:]
        model.graph.node.extend(nodes)
        model.graph.initializer.extend(initializers)
    return emulation
