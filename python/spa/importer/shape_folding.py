"""Fold the shape arithmetic exporters leave in graphs into constants.

PyTorch's exporter computes Reshape and Expand targets at run time from
`Shape` (torch's MultiheadAttention splits its packed q/k/v projection with
`Concat(Shape(x)[:-1], [3, E], ...)`, a class token is expanded by a
`Where(Equal(...))` of constants; the attention scale is `1 / sqrt(Shape(q)[-1])`).
SPA can only follow and rewrite targets it can read, and a scale read from a
pruned axis would silently change after pruning; folding the parts that are
static makes both constants. onnxscript's constant folder does the work;
`should_fold` keeps it to integer shape arithmetic and scalars, so no weight
is ever folded into an anonymous constant (adapters find weights by name).
"""

from __future__ import annotations

import onnx

SHAPE_OPS = {"Shape", "Size"}
MAX_INTEGER_ELEMENTS = 4096  # shape-like integer tensors are tiny; anything larger is data


def has_shape_arithmetic(graph: onnx.GraphProto) -> bool:
    """Whether any node reads a shape (only then is folding worth importing onnxscript)."""
    return any(node.op_type in SHAPE_OPS and node.domain in ("", "ai.onnx") for node in graph.node)


def fold_shape_arithmetic(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with its static shape computations folded to constants (a new ModelProto)."""
    import onnx_ir as ir
    from onnxscript.optimizer import fold_constants

    def should_fold(node: ir.Node) -> bool:
        if node.op_type == "ConstantOfShape":  # a float fill is a weight placeholder, not a shape
            value = node.attributes.get("value")
            return value is None or value.as_tensor().dtype.is_integer()
        for value in node.inputs:
            tensor = None if value is None else value.const_value
            if tensor is None:
                continue
            if isinstance(tensor, ir.ExternalTensor):
                return False
            if tensor.dtype.is_floating_point() and tensor.size > 1:
                return False
            if tensor.size > MAX_INTEGER_ELEMENTS:
                return False
        return True

    ir_model = ir.serde.deserialize_model(model)
    fold_constants(ir_model, should_fold=should_fold)
    return ir.serde.serialize_model(ir_model)
