"""Expand operators that are newer than a target opset into their ONNX function bodies.

Some operators are defined by ONNX as functions of older ones (Gelu at opset
20 is Erf arithmetic, LayerNormalization at 17, ...). onnx's version
converter has no "previous version" of them, so a model using Gelu could not
be written at opset 17, which onnx2torch and many runtimes need. Written as
their bodies they can: each such node becomes a call of a model-local
function holding the body ONNX generates for it, and onnx's inliner inlines
those calls.
"""

from __future__ import annotations

import onnx
from onnx import defs, inliner

EXPANDED_DOMAIN = "spa.expanded"  # where the calls wait for the inliner


def expand_newer_functions(model: onnx.ModelProto, current: int, target: int) -> onnx.ModelProto:
    """`model` (unchanged) or a copy whose default-domain nodes that have no schema at opset `target`
    but a function body at `current` are replaced by that body."""
    graph = model.graph
    newer = [node for node in graph.node if node.domain in ("", "ai.onnx") and _missing_at(node.op_type, target)]
    if not newer:
        return model
    expanded = onnx.ModelProto()
    expanded.CopyFrom(model)
    types = _value_types(onnx.shape_inference.infer_shapes(model))
    called = False
    for index, node in enumerate(expanded.graph.node):
        if node.domain not in ("", "ai.onnx") or not _missing_at(node.op_type, target):
            continue
        body = _function_body(node, current, types)
        if body is None:
            continue  # the converter will name the operator it cannot convert
        body.domain, body.name = EXPANDED_DOMAIN, f"{node.op_type}_{index}"
        for entry in body.opset_import:  # the inliner wants the model's; the body's operators mean the same there
            if entry.domain in ("", "ai.onnx"):
                entry.version = current
        expanded.functions.append(body)
        node.domain, node.op_type = EXPANDED_DOMAIN, body.name
        called = True
    if not called:
        return model
    expanded.opset_import.add(domain=EXPANDED_DOMAIN, version=1)
    inlined = inliner.inline_selected_functions(expanded, [(EXPANDED_DOMAIN, f.name) for f in expanded.functions
                                                           if f.domain == EXPANDED_DOMAIN])
    kept = [o for o in inlined.opset_import if o.domain != EXPANDED_DOMAIN]
    del inlined.opset_import[:]
    inlined.opset_import.extend(kept)
    _fold_constant_cast_like(inlined.graph, types)
    return inlined


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


def _missing_at(op_type: str, opset: int) -> bool:
    try:
        defs.get_schema(op_type, opset)
    except defs.SchemaError:
        return True
    return False


def _function_body(node: onnx.NodeProto, opset: int, types: dict[str, onnx.TypeProto]) -> onnx.FunctionProto | None:
    """The FunctionProto ONNX defines for `node` at `opset` (context-dependent ones need its input types)."""
    try:
        schema = defs.get_schema(node.op_type, opset)
    except defs.SchemaError:
        return None
    body = onnx.FunctionProto()
    if schema.has_function:
        version = max((v for v in schema.function_opset_versions if v <= opset), default=None)
        if version is None:
            return None
        body.ParseFromString(schema.get_function_with_opset_version(version))
    elif schema.has_context_dependent_function:
        version = max((v for v in schema.context_dependent_function_opset_versions if v <= opset), default=None)
        if version is None or any(name and name not in types for name in node.input):
            return None
        body.ParseFromString(schema.get_context_dependent_function_with_opset_version(
            version, node.SerializeToString(), [types[name].SerializeToString() for name in node.input if name]))
    else:
        return None
    return body if body.node else None


def _value_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    graph = model.graph
    types = {info.name: info.type for info in [*graph.input, *graph.value_info, *graph.output]}
    for tensor in graph.initializer:
        types.setdefault(tensor.name, onnx.helper.make_tensor_type_proto(tensor.data_type, list(tensor.dims)))
    return types
