"""Mapping between ONNX types, MLIR types and NumPy dtypes.

Signed ONNX integers become signless MLIR integers, unsigned ones unsigned
MLIR integers, bool becomes i1. Sequences, optionals and maps become the onnx
dialect's own types. Must be called with an active MLIR context.
"""

from __future__ import annotations

import numpy as np
import onnx
from spa.ir.bindings import ir

from spa.errors import SPAError

TP = onnx.TensorProto

_ELEMENT_BUILDERS = {
    TP.FLOAT: ir.F32Type.get, TP.DOUBLE: ir.F64Type.get, TP.FLOAT16: ir.F16Type.get,
    TP.BFLOAT16: ir.BF16Type.get,
    TP.INT8: lambda: ir.IntegerType.get_signless(8), TP.INT16: lambda: ir.IntegerType.get_signless(16),
    TP.INT32: lambda: ir.IntegerType.get_signless(32), TP.INT64: lambda: ir.IntegerType.get_signless(64),
    TP.UINT8: lambda: ir.IntegerType.get_unsigned(8), TP.UINT16: lambda: ir.IntegerType.get_unsigned(16),
    TP.UINT32: lambda: ir.IntegerType.get_unsigned(32), TP.UINT64: lambda: ir.IntegerType.get_unsigned(64),
    TP.BOOL: lambda: ir.IntegerType.get_signless(1),
    TP.COMPLEX64: lambda: ir.ComplexType.get(ir.F32Type.get()),
    TP.COMPLEX128: lambda: ir.ComplexType.get(ir.F64Type.get()),
    TP.FLOAT8E4M3FN: ir.Float8E4M3FNType.get, TP.FLOAT8E4M3FNUZ: ir.Float8E4M3FNUZType.get,
    TP.FLOAT8E5M2: ir.Float8E5M2Type.get, TP.FLOAT8E5M2FNUZ: ir.Float8E5M2FNUZType.get,
    TP.STRING: lambda: ir.Type.parse("!onnx.string"),
}


def element_type(onnx_dtype: int, where: str) -> ir.Type:
    """MLIR element type for an ONNX TensorProto data type; `where` names the value for errors."""
    builder = _ELEMENT_BUILDERS.get(onnx_dtype)
    if builder is None:
        name = TP.DataType.Name(onnx_dtype) if onnx_dtype in TP.DataType.values() else onnx_dtype
        raise SPAError(f"{where}: element type {name} is not supported")
    return builder()


def onnx_dtype(element: ir.Type) -> int:
    """ONNX TensorProto data type of an MLIR element type."""
    text = str(element)
    for dtype, builder in _ELEMENT_BUILDERS.items():
        if str(builder()) == text:
            return dtype
    raise SPAError(f"MLIR element type {text} has no ONNX equivalent")


def numpy_dtype(element: ir.Type) -> np.dtype:
    """NumPy dtype holding one MLIR element (bool for i1)."""
    return onnx.helper.tensor_dtype_to_np_dtype(onnx_dtype(element))


def tensor_type(onnx_dtype_: int, dims: list[int] | None, where: str) -> ir.Type:
    """Ranked tensor type (-1 for an unknown dim), or unranked when dims is None."""
    element = element_type(onnx_dtype_, where)
    if dims is None:
        return ir.UnrankedTensorType.get(element)
    dynamic = ir.ShapedType.get_dynamic_size()
    return ir.RankedTensorType.get([d if d >= 0 else dynamic for d in dims], element)


def from_type_proto(proto: onnx.TypeProto, where: str) -> tuple[ir.Type, list[str]]:
    """MLIR type of an ONNX TypeProto, plus the tensor's symbolic dim names ('' where none)."""
    kind = proto.WhichOneof("value")
    if kind == "tensor_type" or kind == "sparse_tensor_type":
        tensor = getattr(proto, kind)
        if not tensor.HasField("shape"):
            return tensor_type(tensor.elem_type, None, where), []
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        params = [d.dim_param for d in tensor.shape.dim]
        return tensor_type(tensor.elem_type, dims, where), params
    if kind == "sequence_type":
        inner, _ = from_type_proto(proto.sequence_type.elem_type, where)
        return ir.Type.parse(f"!onnx.seq<{inner}>"), []
    if kind == "optional_type":
        inner, _ = from_type_proto(proto.optional_type.elem_type, where)
        return ir.Type.parse(f"!onnx.opt<{inner}>"), []
    if kind == "map_type":
        key = element_type(proto.map_type.key_type, where)
        value, _ = from_type_proto(proto.map_type.value_type, where)
        return ir.Type.parse(f"!onnx.map<{key}, {value}>"), []
    raise SPAError(f"{where}: value has no type information")


def to_type_proto(mlir_type: ir.Type, dim_params: list[str] | None = None) -> onnx.TypeProto:
    """ONNX TypeProto of an MLIR type; dim_params name dynamic dims where given."""
    if isinstance(mlir_type, ir.RankedTensorType):
        ranked = ir.RankedTensorType(mlir_type)
        params = dim_params or [""] * ranked.rank
        shape = [param if param else (None if ranked.is_dynamic_dim(i) else ranked.get_dim_size(i))
                 for i, param in enumerate(params)]
        return onnx.helper.make_tensor_type_proto(onnx_dtype(ranked.element_type), shape)
    if isinstance(mlir_type, ir.UnrankedTensorType):
        element = ir.UnrankedTensorType(mlir_type).element_type
        return onnx.helper.make_tensor_type_proto(onnx_dtype(element), None)
    text = str(mlir_type)
    for prefix, maker in (("!onnx.seq<", onnx.helper.make_sequence_type_proto),
                          ("!onnx.opt<", onnx.helper.make_optional_type_proto)):
        if text.startswith(prefix):
            return maker(to_type_proto(ir.Type.parse(text[len(prefix):-1])))
    raise SPAError(f"MLIR type {text} has no ONNX equivalent")
