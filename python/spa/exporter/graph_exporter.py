"""Writes the onnx-dialect body of a block back as an ONNX GraphProto.

The inverse of importer.graph_importer: ops become nodes (or initializers),
regions become graph attributes, and ONNX names come back from the
`onnx.*` discardable attributes. Values that lost their name (made by a
pass) get fresh unique names; a graph output whose value carries another
name is produced through an Identity node.
"""

from __future__ import annotations

import itertools
from typing import Callable

import onnx
from spa.ir.bindings import ir
from onnx import defs

from spa.ir import onnx_attributes, tensors
from spa.errors import SPAError
from spa.ir.names import GRAPH_INPUT, GRAPH_NAME, INPUT_NAMES, NODE_NAME, OUTPUT_NAMES, SPA_OPSET
from spa.ir.onnx_types import to_type_proto

_STRUCTURAL_OPS = {"onnx.NoValue", "onnx.Initializer", "onnx.Yield", "onnx.Custom", "func.return"}


def _strings(attr: ir.Attribute | None) -> list[str]:
    return [] if attr is None else [ir.StringAttr(a).value for a in ir.ArrayAttr(attr)]


def _attr(op: ir.Operation, name: str) -> ir.Attribute | None:
    return op.attributes[name] if name in op.attributes else None


TensorSink = Callable[[ir.Attribute, str], onnx.TensorProto]


class GraphExporter:
    """Exports blocks of one module; keeps the value -> name map across sub-graphs.

    `tensor_sink` turns an initializer's value into its TensorProto: in memory
    by default, or written straight to an external data file.
    """

    def __init__(self, taken_names: set[str], tensor_sink: TensorSink = tensors.to_tensor_proto):
        self.names: dict[ir.Value, str] = {}
        self.taken = set(taken_names)
        self.counter = itertools.count()
        self.tensor_sink = tensor_sink

    # -- names -------------------------------------------------------------
    def fresh_name(self, hint: str) -> str:
        while True:
            name = f"{hint}_spa{next(self.counter)}"
            if name not in self.taken:
                self.taken.add(name)
                return name

    def name_of(self, value: ir.Value) -> str:
        if value not in self.names:
            raise SPAError(f"value {value.get_name()} is used before it is defined")
        return self.names[value]

    # -- graphs ------------------------------------------------------------
    def export_block(self, block: ir.Block, graph: onnx.GraphProto,
                     output_names: list[str]) -> list[ir.Value]:
        """Append the block's ops to `graph` and return the values its terminator returns.

        `output_names` are the graph's output names; outputs are added to `graph`.
        """
        terminator = None
        for op in block.operations:
            if op.name in ("onnx.Yield", "func.return"):
                terminator = op
            else:
                self._export_op(op, graph)
        if terminator is None:
            raise SPAError("graph block has no terminator")
        returned = list(terminator.operands)
        for value, name in zip(returned, output_names):
            if self.name_of(value) != name:
                graph.node.append(onnx.helper.make_node("Identity", [self.name_of(value)], [name],
                                                        name=self.fresh_name(f"{name}_identity")))
            graph.output.append(onnx.helper.make_value_info(name, to_type_proto(value.type)))
        return returned

    def export_subgraph(self, region: ir.Region, where: str) -> onnx.GraphProto:
        block = region.blocks[0]
        terminator = block.operations[len(block.operations) - 1]
        graph_name = _attr(terminator, GRAPH_NAME)
        graph = onnx.GraphProto(name=ir.StringAttr(graph_name).value if graph_name else where)
        input_names = _strings(_attr(terminator, INPUT_NAMES))
        for index, argument in enumerate(block.arguments):
            name = input_names[index] if index < len(input_names) else self.fresh_name("input")
            self.names[argument] = name
            graph.input.append(onnx.helper.make_value_info(name, to_type_proto(argument.type)))
        output_names = _strings(_attr(terminator, OUTPUT_NAMES))
        output_names += [self.fresh_name("output") for _ in range(len(output_names), len(terminator.operands))]
        self.export_block(block, graph, output_names)
        return graph

    # -- ops ---------------------------------------------------------------
    def _export_op(self, op: ir.Operation, graph: onnx.GraphProto) -> None:
        if op.name == "onnx.NoValue":
            self.names[op.result] = ""
            return
        if op.name == "onnx.Initializer":
            name = ir.StringAttr(op.attributes["tensor_name"]).value
            graph.initializer.append(self.tensor_sink(op.attributes["value"], name))
            if GRAPH_INPUT in op.attributes:
                graph.input.append(onnx.helper.make_value_info(name, to_type_proto(op.result.type)))
            self.names[op.result] = name
            return
        if not op.name.startswith("onnx."):
            raise SPAError(f"operation {op.name} at {op.location} has no ONNX equivalent")
        node = onnx.NodeProto()
        label = ir.StringAttr(op.attributes[NODE_NAME]).value if NODE_NAME in op.attributes else ""
        node.name = label
        node.input.extend(_trim([self.name_of(v) for v in op.operands]))
        output_names = _strings(_attr(op, OUTPUT_NAMES))
        outputs = []
        for index, result in enumerate(op.results):
            if isinstance(result.type, ir.NoneType):
                name = ""
            elif index < len(output_names) and output_names[index]:
                name = output_names[index]
            else:
                name = self.fresh_name(label or op.name[5:])
            self.names[result] = name
            outputs.append(name)
        node.output.extend(_trim(outputs))
        if op.name == "onnx.Custom":
            self._custom_node(op, node)
        else:
            self._schema_node(op, node)
        graph.node.append(node)

    def _schema_node(self, op: ir.Operation, node: onnx.NodeProto) -> None:
        node.op_type = op.name[len("onnx."):]
        schema = defs.get_schema(node.op_type, SPA_OPSET, "")
        for name in op.attributes:
            if name.startswith("onnx."):
                continue
            formal = schema.attributes[name]
            proto = onnx_attributes.to_onnx(name, op.attributes[name], int(formal.type))
            if not onnx_attributes.equals_default(proto, formal.default_value):
                node.attribute.append(proto)
        graph_names = sorted(n for n, a in schema.attributes.items() if a.type == defs.OpSchema.AttrType.GRAPH)
        self._graph_attributes(op, node, graph_names)

    def _custom_node(self, op: ir.Operation, node: onnx.NodeProto) -> None:
        node.domain = ir.StringAttr(op.attributes["domain"]).value
        node.op_type = ir.StringAttr(op.attributes["op_type"]).value
        attributes = _attr(op, "node_attributes")
        if attributes is not None:
            for named in ir.DictAttr(attributes):
                node.attribute.append(onnx_attributes.to_onnx(named.name, named.attr))
        self._graph_attributes(op, node, _strings(_attr(op, "graph_attribute_names")))

    def _graph_attributes(self, op: ir.Operation, node: onnx.NodeProto, names: list[str]) -> None:
        for name, region in zip(names, op.regions):
            subgraph = self.export_subgraph(region, f"{node.name or node.op_type}_{name}")
            node.attribute.append(onnx.helper.make_attribute(name, subgraph))


def _trim(names: list[str]) -> list[str]:
    """Drop trailing absent ('') optional inputs or outputs, as ONNX writes them."""
    while names and not names[-1]:
        names.pop()
    return names
