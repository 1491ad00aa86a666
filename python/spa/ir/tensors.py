"""Constant tensors: ONNX TensorProto <-> MLIR elements attributes.

Weights become `dense_resource` blobs built straight from a NumPy view of
the protobuf bytes or a memory map of the external data file (no text, no
per-element work); export reads them back through the native extension's
zero-copy view. Must be called with an active MLIR context.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
from spa.ir.bindings import ir
from onnx import numpy_helper
from onnx.external_data_helper import ExternalDataInfo

from spa import _native
from spa.errors import SPAError
from spa.ir.onnx_types import numpy_dtype, onnx_dtype, tensor_type

# ONNX types whose NumPy form is not one element per machine word of the MLIR type.
_PACKED_TYPES = {onnx.TensorProto.INT4, onnx.TensorProto.UINT4, onnx.TensorProto.FLOAT4E2M1,
                 onnx.TensorProto.STRING}


def to_attribute(tensor: onnx.TensorProto, blob_name: str, where: str,
                 base_dir: Path | None = None) -> ir.Attribute:
    """A dense_resource attribute holding `tensor`; `where` names it in errors.

    External data is memory-mapped from `base_dir` (read-only, not copied);
    raw in-file data is viewed, not converted.
    """
    if tensor.data_type in _PACKED_TYPES:
        name = onnx.TensorProto.DataType.Name(tensor.data_type)
        raise SPAError(f"{where}: constant tensors of type {name} are not supported")
    shape = tuple(tensor.dims)
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        array = _map_external(tensor, base_dir, where)
    elif tensor.HasField("raw_data") and sys.byteorder == "little":
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
        array = np.frombuffer(tensor.raw_data, dtype=dtype)
        if array.size != int(np.prod(shape, dtype=np.int64)):
            raise SPAError(f"{where}: holds {array.size} values but its shape {list(shape)} needs "
                           f"{int(np.prod(shape, dtype=np.int64))}")
        array = array.reshape(shape)
    else:
        array = numpy_helper.to_array(tensor)
    if array.dtype == np.bool_:
        array = array.view(np.uint8)  # one byte per i1 element, as MLIR resource blobs expect
    elif array.dtype.char not in np.typecodes["All"]:  # ml_dtypes' bfloat16 and float8s have no buffer format
        array = array.view(np.dtype(f"u{array.dtype.itemsize}"))
    array = np.require(array, requirements="C")  # (ascontiguousarray would make 0-d arrays 1-d)
    mlir_type = tensor_type(tensor.data_type, list(shape), where)
    return ir.DenseResourceElementsAttr.get_from_buffer(memoryview(array.reshape(-1)), blob_name, mlir_type)


def _map_external(tensor: onnx.TensorProto, base_dir: Path | None, where: str) -> np.ndarray:
    if base_dir is None:
        raise SPAError(f"{where}: external data can only be read from a model file")
    info = ExternalDataInfo(tensor)
    path = (base_dir / info.location).resolve()
    if base_dir.resolve() not in path.parents:
        raise SPAError(f"{where}: external data location {info.location!r} is outside the model's folder")
    if not path.is_file():
        raise SPAError(f"{where}: external data file {path} is missing")
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    count = int(np.prod(tensor.dims, dtype=np.int64))
    offset = info.offset or 0
    if info.length and info.length != count * dtype.itemsize:
        raise SPAError(f"{where}: external data length {info.length} does not match its shape {list(tensor.dims)}")
    if offset + count * dtype.itemsize > path.stat().st_size:
        raise SPAError(f"{where}: external data file {path} is too short")
    if count == 0:
        return np.zeros(tuple(tensor.dims), dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=tuple(tensor.dims))


def to_array(attribute: ir.Attribute) -> np.ndarray:
    """NumPy array of a dense or dense_resource elements attribute (a view where possible)."""
    shaped = ir.ShapedType(attribute.type)
    element = shaped.element_type
    dtype = numpy_dtype(element)
    shape = tuple(shaped.shape)
    raw, splat, bit_packed = _native.elements_buffer(attribute)
    if bit_packed:
        count = 1 if splat else int(np.prod(shape))
        bits = np.unpackbits(raw, bitorder="little")[:count].astype(np.bool_)
        return np.broadcast_to(bits[0], shape).copy() if splat else bits.reshape(shape)
    values = raw.view(dtype)
    if splat:  # one value for every element, a scalar's included
        return np.broadcast_to(values[0], shape).copy()
    return values.reshape(shape)


def to_tensor_proto(attribute: ir.Attribute, name: str) -> onnx.TensorProto:
    """TensorProto named `name` holding the attribute's data."""
    array = to_array(attribute)
    proto = numpy_helper.from_array(array, name)
    proto.data_type = onnx_dtype(ir.ShapedType(attribute.type).element_type)
    return proto
