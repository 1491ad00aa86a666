"""ONNX -> MLIR: turn an ONNX model into a module of the onnx dialect.

The module holds one `func.func @main_graph` whose arguments are the graph
inputs and whose results are the graph outputs (their ONNX names and symbolic
dims are argument/result attributes), plus the model's metadata as
`onnx.*` module attributes, so that export gives the same model back.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import onnx

from spa.ir.context import new_context
from spa.errors import SPAError
from spa.importer.graph_importer import GraphImporter, Scope
from spa.importer.model_prep import (
    ImportConfig,
    LoadedModel,
    load,
    normalise,
)
from spa.importer.subgraph_constants import sub_graphs
from spa.ir.bindings import func, ir
from spa.ir.names import DEFAULT_DOMAIN, GRAPH_INPUT, INPUT_ORDER, MAIN_FUNCTION, SOURCE_IR_VERSION, SOURCE_OPSET
from spa.ir.onnx_model import default_opset
from spa.ir.onnx_types import from_type_proto

__all__ = ["ImportConfig", "import_model"]


def import_model(source: str | Path | onnx.ModelProto, config: ImportConfig = ImportConfig(),
                 context: ir.Context | None = None) -> ir.Module:
    """Import an ONNX file or ModelProto into a new MLIR module.

    Takes the model (path or proto), import options and optionally an MLIR
    context with SPA's dialects (a new one is made otherwise). Returns the
    module; raises SPAError naming the file, node or value at fault.
    """
    loaded = load(source)
    normalise(loaded, config)
    context = context or new_context()
    with context, ir.Location.unknown():
        module = ir.Module.create()
        _set_model_attributes(module, loaded.proto)
        _record_source_version(module, loaded)
        _import_main_graph(module, loaded)
    try:
        module.operation.verify()
    except ir.MLIRError as error:  # an op whose operand types its ONNX schema forbids (an exporter's bug)
        raise SPAError(f"{loaded.label}: not a valid ONNX model: {_first_diagnostic(error)}") from None
    return module


def _first_diagnostic(error: ir.MLIRError) -> str:
    """The first of MLIR's diagnostics in one line: where (the node's name) and what."""
    diagnostics = getattr(error, "error_diagnostics", None)
    text = str(diagnostics[0].message) if diagnostics else str(error)
    node = re.fullmatch(r'loc\("(.*)"\)', str(diagnostics[0].location)) if diagnostics else None
    line = " ".join(text.split())
    return f"node {node.group(1)}: {line}" if node else line


def _collect_types(graph: onnx.GraphProto, types: dict[str, onnx.TypeProto]) -> None:
    """The declared type of every value of `graph` and its sub-graphs (the first declaration wins)."""
    for scope in (graph, *sub_graphs(graph)):
        for info in [*scope.input, *scope.output, *scope.value_info]:
            types.setdefault(info.name, info.type)
        for tensor in scope.initializer:
            types.setdefault(tensor.name, onnx.helper.make_tensor_type_proto(tensor.data_type, list(tensor.dims)))


def _import_main_graph(module: ir.Module, loaded: LoadedModel) -> None:
    graph, label = loaded.proto.graph, loaded.label
    initializer_names = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializer_names]
    input_types = [from_type_proto(i.type, f"{label}: graph input '{i.name}'") for i in inputs]
    output_types = [from_type_proto(o.type, f"{label}: graph output '{o.name}'") for o in graph.output]
    with ir.InsertionPoint(module.body):
        function = func.FuncOp(MAIN_FUNCTION, ([t for t, _ in input_types], [t for t, _ in output_types]))
    function.arg_attrs = ir.ArrayAttr.get([_io_attributes(i.name, p) for i, (_, p) in zip(inputs, input_types)])
    function.res_attrs = ir.ArrayAttr.get([_io_attributes(o.name, p) for o, (_, p) in zip(graph.output, output_types)])
    block = function.add_entry_block()
    types: dict[str, onnx.TypeProto] = {}
    _collect_types(graph, types)
    scope = Scope({i.name: arg for i, arg in zip(inputs, block.arguments)})
    GraphImporter(types, loaded.weights, loaded.base_dir).import_body(graph, block, scope)
    overridable = {i.name for i in graph.input} & initializer_names
    if overridable:  # initializers listed as inputs: keep the inputs' original order
        module.operation.attributes[INPUT_ORDER] = ir.ArrayAttr.get([ir.StringAttr.get(i.name) for i in graph.input])
    for op in block.operations:
        if op.name == "onnx.Initializer" and ir.StringAttr(op.attributes["tensor_name"]).value in overridable:
            op.attributes[GRAPH_INPUT] = ir.UnitAttr.get()
    with ir.InsertionPoint(block):
        func.ReturnOp([scope.lookup(o.name, f"{label}: graph output") for o in graph.output])


def _io_attributes(name: str, dim_params: list[str]) -> ir.Attribute:
    attributes = {"onnx.name": ir.StringAttr.get(name)}
    if any(dim_params):
        attributes["onnx.dim_params"] = ir.ArrayAttr.get([ir.StringAttr.get(p) for p in dim_params])
    return ir.DictAttr.get(attributes)


def _record_source_version(module: ir.Module, loaded: LoadedModel) -> None:
    """Remember the opset and IR version a converted model came with, so export can give them back."""
    i64 = ir.IntegerType.get_signless(64)
    if loaded.source_opset is not None and loaded.source_opset != default_opset(loaded.proto):
        module.operation.attributes[SOURCE_OPSET] = ir.IntegerAttr.get(i64, loaded.source_opset)
        module.operation.attributes[SOURCE_IR_VERSION] = ir.IntegerAttr.get(i64, loaded.source_ir_version)


def _set_model_attributes(module: ir.Module, model: onnx.ModelProto) -> None:
    attributes = module.operation.attributes
    i64 = ir.IntegerType.get_signless(64)
    attributes["onnx.ir_version"] = ir.IntegerAttr.get(i64, model.ir_version)
    attributes["onnx.opset_import"] = ir.DictAttr.get(
        {o.domain or DEFAULT_DOMAIN: ir.IntegerAttr.get(i64, o.version) for o in model.opset_import})
    for field in ("producer_name", "producer_version", "domain", "doc_string"):
        if getattr(model, field):
            attributes[f"onnx.{field}"] = ir.StringAttr.get(getattr(model, field))
    if model.model_version:
        attributes["onnx.model_version"] = ir.IntegerAttr.get(i64, model.model_version)
    if model.metadata_props:
        attributes["onnx.metadata_props"] = ir.DictAttr.get(
            {p.key: ir.StringAttr.get(p.value) for p in model.metadata_props})
    attributes["onnx.graph_name"] = ir.StringAttr.get(model.graph.name)
    if model.functions:  # model-local functions are kept opaque, serialised
        attributes["onnx.functions"] = ir.ArrayAttr.get(
            [ir.StringAttr.get(base64.b64encode(f.SerializeToString()).decode()) for f in model.functions])
