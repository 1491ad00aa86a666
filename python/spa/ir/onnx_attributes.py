"""Node attributes: ONNX AttributeProto <-> MLIR attributes.

One table per direction says, for each ONNX attribute type, how to convert
it. Graph attributes are not here: they become regions (see the importer).
Ops of the default domain use the ODS attribute kinds (I64Attr, F32Attr,
I64ArrayAttr, ...); attributes of custom-domain nodes use typed dense arrays
for INTS/FLOATS so that an empty list keeps its type through a round trip.
Must be called with an active MLIR context.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from spa.ir.bindings import ir

from spa.ir import tensors
from spa.errors import SPAError
from spa.ir.onnx_types import from_type_proto, to_type_proto

AP = onnx.AttributeProto


def _i64(value: int) -> ir.Attribute:
    return ir.IntegerAttr.get(ir.IntegerType.get_signless(64), value)


def _f32(value: float) -> ir.Attribute:
    return ir.FloatAttr.get_f32(value)


def _string(value: bytes, where: str) -> ir.Attribute:
    try:
        return ir.StringAttr.get(value.decode("utf-8"))
    except UnicodeDecodeError:
        raise SPAError(f"{where}: string attribute is not UTF-8") from None


def to_mlir(attr: AP, where: str, owner: str, custom: bool = False) -> ir.Attribute:
    """MLIR attribute for a non-graph ONNX attribute of node `owner` (names its blobs).

    `where` labels errors; `custom` selects typed lists (custom-domain nodes).
    """
    kind = attr.type
    label = f"{where}: attribute '{attr.name}'"
    if kind == AP.INT:
        return _i64(attr.i)
    if kind == AP.FLOAT:
        return _f32(attr.f)
    if kind == AP.STRING:
        return _string(attr.s, label)
    if kind == AP.INTS:
        if custom:
            return ir.DenseI64ArrayAttr.get(list(attr.ints))
        return ir.ArrayAttr.get([_i64(v) for v in attr.ints])
    if kind == AP.FLOATS:
        if custom:
            return ir.DenseF32ArrayAttr.get(list(attr.floats))
        return ir.ArrayAttr.get([_f32(v) for v in attr.floats])
    if kind == AP.STRINGS:
        return ir.ArrayAttr.get([_string(v, label) for v in attr.strings])
    if kind == AP.TENSOR:
        return tensors.to_attribute(attr.t, f"{owner}.{attr.name}", label)
    if kind == AP.TENSORS:
        return ir.ArrayAttr.get([tensors.to_attribute(t, f"{owner}.{attr.name}.{i}", label)
                                 for i, t in enumerate(attr.tensors)])
    if kind == AP.TYPE_PROTO:
        return ir.TypeAttr.get(from_type_proto(attr.tp, label)[0])
    raise SPAError(f"{label} has type {AP.AttributeType.Name(kind)}, which SPA does not support")


def _ints(attr: ir.Attribute) -> list[int]:
    if isinstance(attr, ir.DenseI64ArrayAttr):
        return list(ir.DenseI64ArrayAttr(attr))
    return [ir.IntegerAttr(a).value for a in ir.ArrayAttr(attr)]


def _floats(attr: ir.Attribute) -> list[float]:
    if isinstance(attr, ir.DenseF32ArrayAttr):
        return list(ir.DenseF32ArrayAttr(attr))
    return [ir.FloatAttr(a).value for a in ir.ArrayAttr(attr)]


def _strings(attr: ir.Attribute) -> list[str]:
    return [ir.StringAttr(a).value for a in ir.ArrayAttr(attr)]


_TO_ONNX: dict[int, Callable[[str, ir.Attribute], AP]] = {
    AP.INT: lambda n, a: onnx.helper.make_attribute(n, ir.IntegerAttr(a).value, attr_type=AP.INT),
    AP.FLOAT: lambda n, a: onnx.helper.make_attribute(n, ir.FloatAttr(a).value, attr_type=AP.FLOAT),
    AP.STRING: lambda n, a: onnx.helper.make_attribute(n, ir.StringAttr(a).value, attr_type=AP.STRING),
    AP.INTS: lambda n, a: onnx.helper.make_attribute(n, _ints(a), attr_type=AP.INTS),
    AP.FLOATS: lambda n, a: onnx.helper.make_attribute(n, _floats(a), attr_type=AP.FLOATS),
    AP.STRINGS: lambda n, a: onnx.helper.make_attribute(n, _strings(a), attr_type=AP.STRINGS),
    AP.TENSOR: lambda n, a: onnx.helper.make_attribute(n, tensors.to_tensor_proto(a, ""), attr_type=AP.TENSOR),
    AP.TENSORS: lambda n, a: onnx.helper.make_attribute(
        n, [tensors.to_tensor_proto(t, "") for t in ir.ArrayAttr(a)], attr_type=AP.TENSORS),
    AP.TYPE_PROTO: lambda n, a: onnx.helper.make_attribute(
        n, to_type_proto(ir.TypeAttr(a).value), attr_type=AP.TYPE_PROTO),
}


def guess_type(attr: ir.Attribute) -> int:
    """ONNX attribute type of an MLIR attribute when no schema says (custom-domain nodes)."""
    if isinstance(attr, ir.IntegerAttr):
        return AP.INT
    if isinstance(attr, ir.FloatAttr):
        return AP.FLOAT
    if isinstance(attr, ir.StringAttr):
        return AP.STRING
    if isinstance(attr, ir.DenseI64ArrayAttr):
        return AP.INTS
    if isinstance(attr, ir.DenseF32ArrayAttr):
        return AP.FLOATS
    if isinstance(attr, ir.TypeAttr):
        return AP.TYPE_PROTO
    if isinstance(attr, ir.ArrayAttr):
        items = list(ir.ArrayAttr(attr))
        if items and isinstance(items[0], ir.StringAttr):
            return AP.STRINGS
        if items and isinstance(items[0], ir.IntegerAttr):
            return AP.INTS
        if items and isinstance(items[0], ir.FloatAttr):
            return AP.FLOATS
        if items:
            return AP.TENSORS
        return AP.STRINGS
    return AP.TENSOR


def to_onnx(name: str, attr: ir.Attribute, kind: int | None = None) -> AP:
    """ONNX AttributeProto named `name`; `kind` is the schema's type, else guessed."""
    return _TO_ONNX[guess_type(attr) if kind is None else kind](name, attr)


def equals_default(proto: AP, default: AP) -> bool:
    """True when an exported attribute equals the schema's default value."""
    if not default.name or proto.type != default.type:
        return False
    if proto.type == AP.FLOAT:
        return np.float32(proto.f) == np.float32(default.f)
    field = {AP.INT: "i", AP.STRING: "s", AP.INTS: "ints", AP.FLOATS: "floats", AP.STRINGS: "strings"}.get(proto.type)
    return field is not None and getattr(proto, field) == getattr(default, field)
