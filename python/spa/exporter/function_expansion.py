"""Expand operators that are newer than a target opset into their ONNX function bodies.

Some operators are defined by ONNX as functions of older ones (Gelu at opset
20 is Erf arithmetic). onnx's version converter has no "previous version" of
them, so a model using Gelu could not be written at opset 17, which
onnx2torch and many runtimes need. onnx's inliner writes such nodes as their
bodies; the constants those bodies cast with CastLike (opset 15) are then
cast here, where the type is known, so older targets work too.
"""

from __future__ import annotations

import onnx
from onnx import defs, inliner


def expand_newer_functions(model: onnx.ModelProto, target: int) -> onnx.ModelProto:
    """`model` (unchanged) or a copy whose default-domain operators without a schema at opset `target`
    are replaced by their function bodies where ONNX defines one."""
    newer = {node.op_type for node in model.graph.node
             if node.domain in ("", "ai.onnx") and _missing_at(node.op_type, target)}
    if not newer:
        return model
    expanded = inliner.inline_selected_functions(model, [("", op) for op in sorted(newer)],
                                                 inline_schema_functions=True)
    _fold_constant_cast_like(expanded.graph, _value_types(onnx.shape_inference.infer_shapes(model)))
    return expanded


def _missing_at(op_type: str, opset: int) -> bool:
    try:
        defs.get_schema(op_type, opset)
    except defs.SchemaError:
        return True
    return False


def _fold_constant_cast_like(graph: onnx.GraphProto, types: dict[str, onnx.TypeProto]) -> None:
    """Function bodies cast their constants with CastLike (opset 15), which older runtimes and onnx2torch
    lack; where the target type is known the cast constant is written directly."""
    constants = {n.output[0]: n.attribute[0].t for n in graph.node
                 if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"}
    for node in graph.node:
        like = types.get(node.input[1]) if node.op_type == "CastLike" and len(node.input) == 2 else None
        if like is None or node.input[0] not in constants or not like.tensor_type.elem_type:
            continue
        dtype = onnx.helper.tensor_dtype_to_np_dtype(like.tensor_type.elem_type)
        value = onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(constants[node.input[0]]).astype(dtype))
        node.CopyFrom(onnx.helper.make_node("Constant", [], [node.output[0]], name=node.name, value=value))


def _value_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    graph = model.graph
    types = {info.name: info.type for info in [*graph.input, *graph.value_info, *graph.output]}
    for tensor in graph.initializer:
        types.setdefault(tensor.name, onnx.helper.make_tensor_type_proto(tensor.data_type, list(tensor.dims)))
    return types
