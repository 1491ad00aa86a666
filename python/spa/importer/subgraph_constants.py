"""Initializers of If/Loop/Scan bodies move to the main graph.

A sub-graph may read any value of the graphs around it, so an initializer
declared inside a branch means the same when declared at the top. Moved
there, it is a constant like every other weight: criteria score it, the
prune pass slices it, and verification masks it. A name that another value
in the model already uses is renamed inside its sub-graph first, so that no
outer value is shadowed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import onnx

from spa.importer.graph_names import fresh_name


def sub_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """Every graph attribute of every node, nested ones included."""
    for node in graph.node:
        for attribute in node.attribute:
            for inner in (*attribute.graphs, *([attribute.g] if attribute.HasField("g") else [])):
                yield inner
                yield from sub_graphs(inner)


def _definitions(graph: onnx.GraphProto) -> Counter:
    """How often each name is defined (graph input, initializer or node output) in `graph` and below."""
    names = Counter([*(i.name for i in graph.input), *(t.name for t in graph.initializer),
                     *(name for node in graph.node for name in node.output if name)])
    for inner in sub_graphs(graph):
        names.update([*(i.name for i in inner.input), *(t.name for t in inner.initializer),
                      *(name for node in inner.node for name in node.output if name)])
    return names


def _rename_reads(graph: onnx.GraphProto, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
    for output in graph.output:
        if output.name == old:
            output.name = new
    for inner in sub_graphs(graph):
        _rename_reads(inner, old, new)


def hoist_subgraph_initializers(graph: onnx.GraphProto) -> int:
    """Move every sub-graph initializer of `graph` into `graph`; returns how many moved."""
    defined = _definitions(graph)
    taken = set(defined)
    moved = 0
    for inner in list(sub_graphs(graph)):
        for tensor in list(inner.initializer):
            if defined[tensor.name] > 1:  # another value has this name: the copy at the top would clash
                renamed = fresh_name(tensor.name, taken)
                _rename_reads(inner, tensor.name, renamed)
                defined[tensor.name] -= 1
                tensor.name = renamed
            inner.initializer.remove(tensor)
            graph.initializer.append(tensor)
            moved += 1
    return moved
