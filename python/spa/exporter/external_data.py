"""Writing initializers straight to an ONNX external data file.

Used for models over protobuf's 2 GB limit (and on request): each tensor's
bytes go from the MLIR blob to the file without passing through protobuf;
the TensorProto only records location, offset and length.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
import onnx
from spa.ir.bindings import ir

from spa.ir import tensors
from spa.ir.onnx_types import onnx_dtype

_ALIGNMENT = 64  # bytes; keeps every tensor's offset aligned for memory mapping
_INLINE_BYTES = 1024  # smaller tensors stay inside the model file


class ExternalDataWriter:
    """A tensor sink (see GraphExporter) that appends tensor data to `stream`.

    `location` is the data file's name as the model will refer to it.
    """

    def __init__(self, stream: BinaryIO, location: str):
        self.stream = stream
        self.location = location
        self.offset = 0

    def __call__(self, attribute: ir.Attribute, name: str) -> onnx.TensorProto:
        array = tensors.to_array(attribute)
        if array.nbytes <= _INLINE_BYTES:
            return tensors.to_tensor_proto(attribute, name)
        padding = -self.offset % _ALIGNMENT
        self.stream.write(b"\0" * padding)
        self.offset += padding
        self.stream.write(memoryview(np.ascontiguousarray(array)).cast("B"))
        proto = onnx.TensorProto(name=name, dims=array.shape,
                                 data_type=onnx_dtype(ir.ShapedType(attribute.type).element_type),
                                 data_location=onnx.TensorProto.EXTERNAL)
        for key, value in (("location", self.location), ("offset", str(self.offset)), ("length", str(array.nbytes))):
            proto.external_data.add(key=key, value=value)
        self.offset += array.nbytes
        return proto


class InMemoryData:
    """A tensor sink that leaves weights where they are: each TensorProto over 1 KiB is an
    external-data stub, and `arrays` maps its name to the module's own array (a view of the MLIR
    blob, no copy), for onnxruntime to take with SessionOptions.add_external_initializers. The
    model is then small to copy and serialise; onnx's checker cannot read it (use `inlined`)."""

    LOCATION = "spa-in-memory"

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def __call__(self, attribute: ir.Attribute, name: str) -> onnx.TensorProto:
        array = tensors.to_array(attribute)
        if array.nbytes <= _INLINE_BYTES:
            return tensors.to_tensor_proto(attribute, name)
        self.arrays[name] = array
        proto = onnx.TensorProto(name=name, dims=array.shape,
                                 data_type=onnx_dtype(ir.ShapedType(attribute.type).element_type),
                                 data_location=onnx.TensorProto.EXTERNAL)
        for key, value in (("location", self.LOCATION), ("offset", "0"), ("length", str(array.nbytes))):
            proto.external_data.add(key=key, value=value)
        return proto


def inlined(model: onnx.ModelProto, arrays: dict[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of `model` whose in-memory stubs (InMemoryData) hold their arrays."""
    from onnx import numpy_helper

    result = onnx.ModelProto()
    result.CopyFrom(model)
    for index, tensor in enumerate(result.graph.initializer):
        if tensor.name in arrays and tensor.data_location == onnx.TensorProto.EXTERNAL:
            proto = numpy_helper.from_array(np.ascontiguousarray(arrays[tensor.name]), tensor.name)
            proto.data_type = tensor.data_type
            result.graph.initializer[index].CopyFrom(proto)
    return result


def initializer_bytes(module: ir.Module) -> int:
    """Total size of the module's initializers, from their types alone."""
    total = 0

    def visit(op: ir.Operation) -> ir.WalkResult:
        nonlocal total
        if op.name == "onnx.Initializer":
            shaped = ir.ShapedType(op.result.type)
            bits = 8 if str(shaped.element_type) == "i1" else tensors.numpy_dtype(shaped.element_type).itemsize * 8
            total += int(np.prod(shaped.shape, dtype=np.int64)) * bits // 8
        return ir.WalkResult.ADVANCE

    with module.context:
        module.operation.walk(visit)
    return total
