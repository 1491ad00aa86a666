"""Facts about an ONNX ModelProto that the importer, the exporter and verification share."""

from __future__ import annotations

import numpy as np
import onnx

from spa.errors import SPAError
from spa.ir.names import SPA_OPSET

_DETACH_BYTES = 1024  # initializers larger than this are kept away from onnx's tools


def default_opset(model: onnx.ModelProto) -> int:
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            return opset.version
    return 1 if model.graph.node else SPA_OPSET


def check_structure(proto: onnx.ModelProto, label: str, full_check: bool = False) -> None:
    """onnx.checker on the graph's structure, with big initializers standing in as inputs.

    Checking the weights' bytes too would cost more than loading the model;
    their sizes are checked when they are read (spa.ir.tensors). `full_check`
    adds strict shape and type inference.
    """
    stubs = [t for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    structure = onnx.ModelProto()
    structure.CopyFrom(proto)
    if stubs:
        kept = [t for t in structure.graph.initializer if t.data_location != onnx.TensorProto.EXTERNAL]
        del structure.graph.initializer[:]
        structure.graph.initializer.extend(kept)
        listed = {i.name for i in structure.graph.input}
        structure.graph.input.extend(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                                     for t in stubs if t.name not in listed)
    try:
        onnx.checker.check_model(structure, full_check=full_check)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError, ValueError) as error:
        raise SPAError(f"{label}: invalid ONNX model: {first_line(error)}") from None


def _nbytes(tensor: onnx.TensorProto) -> int:
    """Size estimate from dims and type: cheaper than ByteSize(), which serialises."""
    try:
        itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    except (KeyError, TypeError, ValueError):
        return 0
    return int(np.prod(tensor.dims, dtype=np.int64)) * itemsize


def is_big(tensor: onnx.TensorProto) -> bool:
    """An in-file initializer worth keeping away from onnx's checker, converter and shape inference."""
    return tensor.data_location != onnx.TensorProto.EXTERNAL and _nbytes(tensor) > _DETACH_BYTES


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def initializers_of_their_own(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy in which each Identity of an initializer is an initializer of its own: converters such as
    onnx2torch read a layer's weight and a BatchNorm's statistics only as initializers."""
    from onnx import numpy_helper

    result = onnx.ModelProto()
    result.CopyFrom(model)
    tensors = {t.name: t for t in result.graph.initializer}
    nodes = []
    for node in result.graph.node:
        if node.op_type == "Identity" and node.input and node.input[0] in tensors:
            result.graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(tensors[node.input[0]]),
                                                                    node.output[0]))
        else:
            nodes.append(node)
    del result.graph.node[:]
    result.graph.node.extend(nodes)
    return result
