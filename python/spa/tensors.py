"""Constant tensors: ONNX TensorProto <-> MLIR elements attributes.

Weights become `dense_resource` blobs built straight from the NumPy buffer
(no text, no per-element work); export reads them back through the native
extension's zero-copy view. Must be called with an active MLIR context.
"""

from __future__ import annotations

import numpy as np
import onnx
from mlir import ir
from onnx import numpy_helper

from spa import _native
from spa.errors import SPAError
from spa.onnx_types import numpy_dtype, onnx_dtype, tensor_type

# ONNX types whose NumPy form is not one element per machine word of the MLIR type.
_PACKED_TYPES = {onnx.TensorProto.INT4, onnx.TensorProto.UINT4, onnx.TensorProto.FLOAT4E2M1,
                 onnx.TensorProto.STRING}


def to_attribute(tensor: onnx.TensorProto, blob_name: str, where: str) -> ir.Attribute:
    """A dense_resource attribute holding `tensor`; `where` names it in errors."""
    if tensor.data_type in _PACKED_TYPES:
        name = onnx.TensorProto.DataType.Name(tensor.data_type)
        raise SPAError(f"{where}: constant tensors of type {name} are not supported")
    if tensor.HasField("data_location") and tensor.data_location == onnx.TensorProto.EXTERNAL:
        raise SPAError(f"{where}: external data was not loaded (keep the data file next to the model)")
    array = numpy_helper.to_array(tensor)
    if array.dtype == np.bool_:
        array = array.view(np.uint8)  # one byte per i1 element, as MLIR resource blobs expect
    array = np.require(array, requirements="C")  # (ascontiguousarray would make 0-d arrays 1-d)
    mlir_type = tensor_type(tensor.data_type, list(array.shape), where)
    return ir.DenseResourceElementsAttr.get_from_buffer(memoryview(array.reshape(-1)), blob_name, mlir_type)


def to_array(attribute: ir.Attribute) -> np.ndarray:
    """NumPy array of a dense or dense_resource elements attribute (a view where possible)."""
    shaped = ir.ShapedType(attribute.type)
    element = shaped.element_type
    dtype = numpy_dtype(element)
    shape = tuple(shaped.shape)
    raw, splat = _native.elements_buffer(attribute)
    if str(element) == "i1" and not isinstance(attribute, ir.DenseResourceElementsAttr):
        count = 1 if splat else int(np.prod(shape))
        bits = np.unpackbits(raw, bitorder="little")[:count].astype(np.bool_)
        return np.broadcast_to(bits, shape).copy() if splat else bits.reshape(shape)
    values = raw.view(dtype)
    if splat:
        return np.broadcast_to(values[:1], shape).copy()
    return values.reshape(shape)


def to_tensor_proto(attribute: ir.Attribute, name: str) -> onnx.TensorProto:
    """TensorProto named `name` holding the attribute's data."""
    array = to_array(attribute)
    proto = numpy_helper.from_array(array, name)
    proto.data_type = onnx_dtype(ir.ShapedType(attribute.type).element_type)
    return proto
