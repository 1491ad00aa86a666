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


def sub_graphs(graph: onnx.GraphProto, nested: bool = True) -> Iterator[onnx.GraphProto]:
    """Every graph attribute of every node of `graph`, and with `nested` the ones inside those."""
    for node in graph.node:
        for attribute in node.attribute:
            for inner in (*attribute.graphs, *([attribute.g] if attribute.HasField("g") else [])):
                yield inner
                if nested:
                    yield from sub_graphs(inner)


def _defined_here(graph: onnx.GraphProto) -> list[str]:
    """Names `graph` itself defines: inputs, initializers and node outputs."""
    return [*(i.name for i in graph.input), *(t.name for t in graph.initializer),
            *(name for node in graph.node for name in node.output if name)]


def _definitions(graph: onnx.GraphProto) -> Counter:
    """How often each name is defined in `graph` and below."""
    return Counter(name for scope in (graph, *sub_graphs(graph)) for name in _defined_here(scope))


def _rename_reads(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Read `new` for `old` in `graph` and the scopes below it, except where a scope defines `old` again."""
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
    for output in graph.output:
        if output.name == old:
            output.name = new
    for inner in sub_graphs(graph, nested=False):
        if old not in _defined_here(inner):
            _rename_reads(inner, old, new)


def hoist_subgraph_initializers(graph: onnx.GraphProto) -> int:
    """Move every sub-graph initializer of `graph` into `graph`; returns how many moved."""
    defined = _definitions(graph)
    taken = set(defined)
    moved = 0
    for inner in list(sub_graphs(graph)):
        tensors = list(inner.initializer)
        del inner.initializer[:]
        for tensor in tensors:
            if defined[tensor.name] > 1:  # another value has this name: the copy at the top would clash
                renamed = fresh_name(tensor.name, taken)
                _rename_reads(inner, tensor.name, renamed)
                defined[tensor.name] -= 1
                tensor.name = renamed
            graph.initializer.append(tensor)
            moved += 1
    return moved
