"""MLIR -> ONNX: turn an onnx-dialect module back into an ONNX model.

`export_module` gives a ModelProto with the names, opset imports and
metadata the importer recorded; `save_module` exports and writes atomically
(never a half-written file), with external data when the weights are over
protobuf's 2 GB limit or when asked.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import onnx
from spa.ir.bindings import ir

from spa.ir import tensors
from spa.errors import SPAError
from spa.exporter.external_data import ExternalDataWriter, initializer_bytes
from spa.exporter.graph_exporter import GraphExporter, TensorSink
from spa.exporter.opset import convert_opset
from spa.ir.names import DEFAULT_DOMAIN, INPUT_ORDER, MAIN_FUNCTION, SOURCE_IR_VERSION, SOURCE_OPSET
from spa.ir.onnx_types import to_type_proto

__all__ = ["export_module", "save_model", "save_module", "write_bytes_atomically", "write_text_atomically"]

# Above this much weight data a model is written with external data.
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


def _main_function(module: ir.Module) -> ir.Operation:
    for op in module.body.operations:
        if op.operation.name == "func.func" and ir.StringAttr(op.attributes["sym_name"]).value == MAIN_FUNCTION:
            return op.operation
    raise SPAError(f"module has no func.func @{MAIN_FUNCTION} (was it made by `spa import`?)")


def _taken_names(module: ir.Module) -> set[str]:
    names: set[str] = set()

    def visit(op: ir.Operation) -> ir.WalkResult:
        attributes = op.attributes
        for key in ("onnx.output_names", "onnx.input_names"):
            if key in attributes:
                names.update(ir.StringAttr(a).value for a in ir.ArrayAttr(attributes[key]))
        if "tensor_name" in attributes and op.name == "onnx.Initializer":
            names.add(ir.StringAttr(attributes["tensor_name"]).value)
        return ir.WalkResult.ADVANCE

    module.operation.walk(visit)
    return names


def _io_name(attributes: ir.Attribute, index: int, fallback: str) -> tuple[str, list[str] | None]:
    entry = ir.DictAttr(ir.ArrayAttr(attributes)[index]) if attributes is not None else None
    if entry is None or "onnx.name" not in entry:
        return fallback, None
    params = [ir.StringAttr(p).value for p in ir.ArrayAttr(entry["onnx.dim_params"])] \
        if "onnx.dim_params" in entry else None
    return ir.StringAttr(entry["onnx.name"]).value, params


def export_module(module: ir.Module, tensor_sink: TensorSink = tensors.to_tensor_proto,
                  opset: int | None = None) -> onnx.ModelProto:
    """Export an onnx-dialect module (as made by spa.importer) to an ONNX ModelProto.

    `tensor_sink` makes each initializer's TensorProto (in memory by default;
    see save_module for external data). `opset` is the default-domain opset
    to write; None gives the model the opset it was imported with (keeping
    SPA's with a SPAWarning if onnx cannot convert back). Raises SPAError when
    the module holds something ONNX cannot express, or `opset` cannot be written.
    """
    with module.context:
        function = _main_function(module)
        attrs = module.operation.attributes
        exporter = GraphExporter(_taken_names(module), tensor_sink)
        graph = onnx.GraphProto(name=_string(attrs, "onnx.graph_name", "main_graph"))
        block = function.regions[0].blocks[0]
        arg_attrs = function.attributes["arg_attrs"] if "arg_attrs" in function.attributes else None
        res_attrs = function.attributes["res_attrs"] if "res_attrs" in function.attributes else None
        for index, argument in enumerate(block.arguments):
            name, params = _io_name(arg_attrs, index, f"input_{index}")
            exporter.names[argument] = name
            exporter.taken.add(name)
            graph.input.append(onnx.helper.make_value_info(name, to_type_proto(argument.type, params)))
        terminator = block.operations[len(block.operations) - 1]
        outputs = [_io_name(res_attrs, i, f"output_{i}") for i in range(len(terminator.operands))]
        exporter.export_block(block, graph, [name for name, _ in outputs])
        for proto, (_, params), value in zip(graph.output, outputs, terminator.operands):
            if params:
                proto.type.CopyFrom(to_type_proto(value.type, params))
        if INPUT_ORDER in attrs:
            _reorder_inputs(graph, [ir.StringAttr(a).value for a in ir.ArrayAttr(attrs[INPUT_ORDER])])
        model = _model(attrs, graph)
        if opset is not None:
            return convert_opset(model, opset, required=True)
        if SOURCE_OPSET in attrs:
            return convert_opset(model, ir.IntegerAttr(attrs[SOURCE_OPSET]).value,
                                 ir.IntegerAttr(attrs[SOURCE_IR_VERSION]).value)
        return model


def _reorder_inputs(graph: onnx.GraphProto, order: list[str]) -> None:
    """Put graph inputs back in their original order (unknown names last)."""
    position = {name: index for index, name in enumerate(order)}
    inputs = sorted(graph.input, key=lambda i: position.get(i.name, len(order)))
    del graph.input[:]
    graph.input.extend(inputs)


def _string(attrs, key: str, default: str = "") -> str:
    return ir.StringAttr(attrs[key]).value if key in attrs else default


def _model(attrs, graph: onnx.GraphProto) -> onnx.ModelProto:
    opsets = []
    if "onnx.opset_import" in attrs:
        for named in ir.DictAttr(attrs["onnx.opset_import"]):
            domain = "" if named.name == DEFAULT_DOMAIN else named.name
            opsets.append(onnx.helper.make_opsetid(domain, ir.IntegerAttr(named.attr).value))
    model = onnx.helper.make_model(graph, opset_imports=opsets)
    if "onnx.ir_version" in attrs:
        model.ir_version = ir.IntegerAttr(attrs["onnx.ir_version"]).value
    for field in ("producer_name", "producer_version", "domain", "doc_string"):
        setattr(model, field, _string(attrs, f"onnx.{field}"))
    if "onnx.model_version" in attrs:
        model.model_version = ir.IntegerAttr(attrs["onnx.model_version"]).value
    if "onnx.metadata_props" in attrs:
        onnx.helper.set_model_props(model, {n.name: ir.StringAttr(n.attr).value
                                            for n in ir.DictAttr(attrs["onnx.metadata_props"])})
    if "onnx.functions" in attrs:
        for encoded in ir.ArrayAttr(attrs["onnx.functions"]):
            model.functions.add().ParseFromString(base64.b64decode(ir.StringAttr(encoded).value))
    return model


def save_model(model: onnx.ModelProto, path: str | Path) -> None:
    """Write an in-memory ModelProto (under 2 GB) to `path` atomically."""
    with _staging(path) as staged:
        onnx.save_model(model, str(staged / Path(path).name))


def write_text_atomically(path: str | Path, text: str) -> None:
    """Write a text file (a plan, a report) atomically: the old file stays until the new one is complete."""
    with _staging(path) as staged:
        (staged / Path(path).name).write_text(text, encoding="utf-8")


def write_bytes_atomically(path: str | Path, data: bytes) -> None:
    """Write bytes (a serialised model) atomically, like write_text_atomically."""
    with _staging(path) as staged:
        (staged / Path(path).name).write_bytes(data)


def save_module(module: ir.Module, path: str | Path, external_data: bool | None = None,
                opset: int | None = None) -> None:
    """Export an onnx-dialect module and write it to `path` atomically.

    external_data: True writes weights to `<name>.data` beside the model,
    False keeps them inside; None (default) uses external data only when the
    weights would exceed protobuf's 2 GB limit. Weights then go straight from
    MLIR to the data file, never through protobuf. `opset` as in export_module.
    """
    path = Path(path)
    if external_data is None:
        external_data = initializer_bytes(module) > EXTERNAL_DATA_THRESHOLD
    if not external_data:
        save_model(export_module(module, opset=opset), path)
        return
    location = f"{path.name}.data"
    with _staging(path, [location]) as staged, open(staged / location, "wb") as data:
        model = export_module(module, ExternalDataWriter(data, location), opset)
        onnx.save_model(model, str(staged / path.name))


@contextlib.contextmanager
def _staging(path: str | Path, companions: list[str] = ()):
    """A temporary folder beside `path`; on success its files replace `path` (and companions)."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise SPAError(f"{path}: directory {parent} does not exist")
    staging = Path(tempfile.mkdtemp(prefix=".spa-", dir=parent))
    try:
        yield staging
        for name in companions:
            os.replace(staging / name, parent / name)
        os.replace(staging / path.name, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
