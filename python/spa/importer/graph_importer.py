"""Builds the onnx-dialect body of an ONNX graph (main graph or sub-graph).

One GraphImporter walks a GraphProto: initializers become onnx.Initializer,
nodes of the default domain become the generated onnx.<OpType> ops, other
nodes onnx.Custom, graph attributes regions ending in onnx.Yield. Names are
resolved through a scope chain, so sub-graphs can use outer values directly.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import onnx
from spa.ir.bindings import ir
from onnx import defs

from spa.ir import onnx_attributes, tensors
from spa.errors import SPAError
from spa.ir.names import GRAPH_NAME, INPUT_NAMES, NODE_NAME, OUTPUT_NAMES, SPA_OPSET
from spa.ir.onnx_types import from_type_proto

Param = defs.OpSchema.FormalParameterOption


@dataclasses.dataclass
class Scope:
    """Value names visible in one graph, falling back to the enclosing graph's."""

    values: dict[str, ir.Value]
    parent: "Scope | None" = None

    def lookup(self, name: str, where: str) -> ir.Value:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.values:
                return scope.values[name]
            scope = scope.parent
        raise SPAError(f"{where}: input '{name}' is not produced by any node, input or initializer")


def schema_for(node: onnx.NodeProto) -> defs.OpSchema | None:
    """The schema SPA's dialect has for this node, or None for other domains."""
    if node.domain not in ("", "ai.onnx"):
        return None
    try:
        return defs.get_schema(node.op_type, SPA_OPSET, "")
    except defs.SchemaError:
        return None


class GraphImporter:
    """Imports graphs of one model; `types` maps every value name to its TypeProto."""

    def __init__(self, types: dict[str, onnx.TypeProto], weights: dict[str, onnx.TensorProto],
                 base_dir: Path | None):
        self.types = types
        self.weights = weights  # initializers taken out of the proto during normalisation
        self.base_dir = base_dir  # where external data files are

    # -- values ------------------------------------------------------------
    def value_type(self, name: str, fallback: ir.Type | None, where: str) -> ir.Type:
        proto = self.types.get(name)
        if proto is not None and proto.WhichOneof("value") is not None:
            return from_type_proto(proto, f"{where}: value '{name}'")[0]
        if fallback is not None:  # shape inference could not type it
            return fallback
        raise SPAError(f"{where}: the type of value '{name}' is unknown (shape inference could not infer it)")

    def _no_value(self, block: ir.Block, cache: dict[int, ir.Value]) -> ir.Value:
        key = id(block)
        if key not in cache:
            with ir.InsertionPoint.at_block_begin(block), ir.Location.unknown():
                cache[key] = ir.Operation.create("onnx.NoValue", results=[ir.NoneType.get()]).result
        return cache[key]

    # -- graphs ------------------------------------------------------------
    def import_body(self, graph: onnx.GraphProto, block: ir.Block, scope: Scope) -> None:
        """Append the graph's initializers and nodes to `block`, registering names in `scope`."""
        none_cache: dict[int, ir.Value] = {}
        with ir.InsertionPoint(block):
            for tensor in graph.initializer:
                scope.values[tensor.name] = self._initializer(tensor)
            for node in graph.node:
                self._node(node, block, scope, none_cache)

    def _initializer(self, tensor: onnx.TensorProto) -> ir.Value:
        data = self.weights.get(tensor.name, tensor)
        value = tensors.to_attribute(data, tensor.name, f"initializer '{tensor.name}'", self.base_dir)
        with ir.Location.name(tensor.name):
            op = ir.Operation.create("onnx.Initializer", results=[value.type],
                                     attributes={"tensor_name": ir.StringAttr.get(tensor.name), "value": value})
        return op.result

    def import_subgraph(self, graph: onnx.GraphProto, region: ir.Region, scope: Scope, where: str) -> None:
        """Fill a single-block region with a sub-graph: inputs are block arguments."""
        arg_types = [from_type_proto(i.type, where)[0] if i.type.WhichOneof("value")
                     else self.value_type(i.name, None, where) for i in graph.input]
        block = region.blocks.append(*arg_types)
        inner = Scope({i.name: arg for i, arg in zip(graph.input, block.arguments)}, scope)
        self.import_body(graph, block, inner)
        outputs = [inner.lookup(o.name, where) for o in graph.output]
        with ir.InsertionPoint(block), ir.Location.unknown():
            ir.Operation.create("onnx.Yield", operands=outputs, attributes={
                GRAPH_NAME: ir.StringAttr.get(graph.name),
                INPUT_NAMES: _strings([i.name for i in graph.input]),
                OUTPUT_NAMES: _strings([o.name for o in graph.output]),
            })

    # -- nodes -------------------------------------------------------------
    def _node(self, node: onnx.NodeProto, block: ir.Block, scope: Scope, none_cache: dict) -> None:
        label = node.name or (node.output[0] if node.output else node.op_type)
        where = f"node '{label}' ({node.op_type})"
        schema = schema_for(node)

        def operand(name: str) -> ir.Value:
            return scope.lookup(name, where) if name else self._no_value(block, none_cache)

        if schema is None:
            operands = [operand(n) for n in node.input]
            result_names = list(node.output)
        else:
            operands = self._formal_operands(schema, list(node.input), operand)
            result_names = self._formal_results(schema, list(node.output))
        fallback = _fallback_type(operands)
        result_types = [self.value_type(n, fallback, where) if n else ir.NoneType.get() for n in result_names]

        graphs = sorted((a for a in node.attribute if a.type == onnx.AttributeProto.GRAPH), key=lambda a: a.name)
        attributes = {a.name: onnx_attributes.to_mlir(a, where, label, custom=schema is None)
                      for a in node.attribute if a.type != onnx.AttributeProto.GRAPH}
        if schema is None:
            attributes = {
                "domain": ir.StringAttr.get(node.domain), "op_type": ir.StringAttr.get(node.op_type),
                "node_attributes": ir.DictAttr.get(attributes),
                "graph_attribute_names": _strings([g.name for g in graphs]),
            }
        attributes[OUTPUT_NAMES] = _strings(result_names)
        if node.name:
            attributes[NODE_NAME] = ir.StringAttr.get(node.name)
        name = "onnx.Custom" if schema is None else f"onnx.{node.op_type}"
        with ir.Location.name(label):
            op = ir.Operation.create(name, results=result_types, operands=operands,
                                     attributes=attributes, regions=len(graphs))
        for graph_attr, region in zip(graphs, op.regions):
            self.import_subgraph(graph_attr.g, region, scope, f"{where}: graph '{graph_attr.name}'")
        for result_name, result in zip(result_names, op.results):
            if result_name:
                scope.values[result_name] = result

    @staticmethod
    def _formal_operands(schema: defs.OpSchema, inputs: list[str], operand) -> list[ir.Value]:
        """One operand per formal input: absent optionals become `none`, variadics expand."""
        operands = []
        for index, formal in enumerate(schema.inputs):
            if formal.option == Param.Variadic:
                operands.extend(operand(n) for n in inputs[index:])
                break
            operands.append(operand(inputs[index] if index < len(inputs) else ""))
        return operands

    @staticmethod
    def _formal_results(schema: defs.OpSchema, outputs: list[str]) -> list[str]:
        """One result name per formal output ('' for an absent optional one)."""
        names = []
        for index, formal in enumerate(schema.outputs):
            if formal.option == Param.Variadic:
                names.extend(outputs[index:])
                break
            names.append(outputs[index] if index < len(outputs) else "")
        return names


def _strings(values: list[str]) -> ir.Attribute:
    return ir.ArrayAttr.get([ir.StringAttr.get(v) for v in values])


def _fallback_type(operands: list[ir.Value]) -> ir.Type:
    """Unranked tensor of the first tensor operand's element type, for untyped results."""
    for value in operands:
        if isinstance(value.type, ir.ShapedType):
            return ir.UnrankedTensorType.get(ir.ShapedType(value.type).element_type)
    return ir.UnrankedTensorType.get(ir.F32Type.get())
