"""Pieces of one prepared graph as models of their own: a run of its nodes, fed the values it reads.

A model prepared by spa.providers.overridable lists its overridable
constants as graph inputs; a piece keeps that for the constants it reads, so
one session of a piece still takes changed weights as feeds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper

from spa.importer.subgraph_constants import sub_graphs


class GraphPieces:
    """The nodes, constants and reads of a prepared model, to cut pieces from."""

    def __init__(self, prepared: onnx.ModelProto) -> None:
        graph = prepared.graph
        self.nodes = list(graph.node)
        self.overridable = {i.name for i in graph.input} & {t.name for t in graph.initializer}
        self.initializers = {t.name: t for t in graph.initializer}
        self.producer = {name: index for index, node in enumerate(self.nodes) for name in node.output if name}
        self.reads = [node_reads(node) for node in self.nodes]
        self.opset_import, self.ir_version = list(prepared.opset_import), prepared.ir_version
        self.functions = list(prepared.functions)  # model-local functions the nodes may call

    def model(self, piece: Sequence[int], constants: Sequence[str], fed: Sequence[str], outputs: Sequence[str],
              sample: Mapping[str, np.ndarray]) -> onnx.ModelProto:
        """The nodes `piece` as a model: `fed` values are inputs typed like `sample`'s arrays, the
        `constants` they read are initializers (inputs too when overridable)."""
        inputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.asarray(sample[name]).dtype),
                                                None) for name in fed]
        inputs += [helper.make_tensor_value_info(name, self.initializers[name].data_type,
                                                 list(self.initializers[name].dims))
                   for name in constants if name in self.overridable]
        graph = helper.make_graph([self.nodes[index] for index in piece], "piece", inputs,
                                  [helper.ValueInfoProto(name=name) for name in outputs],
                                  [self.initializers[name] for name in constants])
        return helper.make_model(graph, opset_imports=self.opset_import, ir_version=self.ir_version,
                                 functions=self.functions)

    def constants_read(self, piece: Sequence[int]) -> list[str]:
        return sorted({name for index in piece for name in self.reads[index] if name in self.initializers})


def node_reads(node: onnx.NodeProto) -> list[str]:
    """Values `node` reads: its inputs, and for If/Loop/Scan what their bodies read from outside."""
    names = [name for name in node.input if name]
    for attribute in node.attribute:
        for inner in (*attribute.graphs, *([attribute.g] if attribute.HasField("g") else [])):
            for graph in (inner, *sub_graphs(inner)):
                names += [name for body_node in graph.node for name in body_node.input if name]
    return names
