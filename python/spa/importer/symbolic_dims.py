"""Reshape sizes that only a symbolic shape inference can prove.

With a dynamic batch and sequence, ONNX's shape inference names every dim it
cannot compute with a fresh symbol, so two reads of the sequence length look
unrelated: `x.reshape(b, -1, t, d)` after attention leaves the heads entry
unknown, and SPA cannot tell that the channel axis passes through unchanged.
onnxruntime's symbolic shape inference carries one symbol per dim through the
graph and cancels them; where it proves a Reshape output dim constant, the dim
is recorded (callers run ONNX's inference again to propagate it).
"""

from __future__ import annotations

import onnx

MAX_NODES = 20000  # sympy on a graph this size takes seconds; larger graphs keep ONNX's shapes


def _unknown_reshape_dims(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    infos = {i.name: i for i in model.graph.value_info}
    unknown = {}
    for node in model.graph.node:
        info = infos.get(node.output[0]) if node.op_type == "Reshape" else None
        if info is not None and any(not d.HasField("dim_value") for d in info.type.tensor_type.shape.dim):
            unknown[node.output[0]] = info
    return unknown


def prove_reshape_sizes(model: onnx.ModelProto) -> bool:
    """Fill Reshape output dims that onnxruntime's symbolic inference proves constant (in place);
    True if any changed. Any failure of that inference leaves the model as it was."""
    unknown = _unknown_reshape_dims(model)
    if not unknown or len(model.graph.node) > MAX_NODES:
        return False
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        inferred = SymbolicShapeInference.infer_shapes(model, auto_merge=True, guess_output_rank=False)
    except Exception:  # noqa: BLE001 - an op it does not know, a custom domain ...: keep ONNX's shapes
        return False
    if inferred is None:
        return False
    proven = {i.name: i for i in inferred.graph.value_info if i.name in unknown}
    changed = False
    for name, info in unknown.items():
        dims = proven.get(name)
        if dims is None or len(dims.type.tensor_type.shape.dim) != len(info.type.tensor_type.shape.dim):
            continue
        for mine, theirs in zip(info.type.tensor_type.shape.dim, dims.type.tensor_type.shape.dim):
            if not mine.HasField("dim_value") and theirs.HasField("dim_value"):
                mine.Clear()
                mine.dim_value = theirs.dim_value
                changed = True
    return changed
