"""Parameter and MAC counts of an onnx-dialect module, read from its types."""

from __future__ import annotations

import dataclasses

import numpy as np
from spa.ir.bindings import ir

from spa.ir.names import MAIN_FUNCTION


@dataclasses.dataclass(frozen=True)
class ModelStats:
    """params: elements of all float constants (initializers, Constant nodes, ConstantOfShape fills); macs: multiply-accumulates of
    Conv/ConvTranspose/Gemm/MatMul for one sample (dynamic dims count as 1)."""

    params: int
    macs: int


def _shape(value: ir.Value) -> list[int] | None:
    if not isinstance(value.type, ir.RankedTensorType):
        return None
    return [d if d >= 0 else 1 for d in value.type.shape]


def _macs(op: ir.Operation) -> int:
    name = op.name
    if name in ("onnx.Conv", "onnx.ConvTranspose"):
        out, weight = _shape(op.results[0]), _shape(op.operands[1])
        if out is None or weight is None:
            return 0
        per_output = int(np.prod(weight[1:]))  # Conv: (in/groups) x kernel
        if name == "onnx.ConvTranspose":
            per_output = weight[0] * int(np.prod(weight[2:])) // max(out[1], 1)
        return int(np.prod(out)) * per_output
    if name in ("onnx.Gemm", "onnx.MatMul"):
        out, lhs = _shape(op.results[0]), _shape(op.operands[0])
        if out is None or lhs is None:
            return 0
        transposed = name == "onnx.Gemm" and "transA" in op.attributes and ir.IntegerAttr(op.attributes["transA"]).value
        inner = lhs[0] if transposed else lhs[-1]
        return int(np.prod(out)) * inner
    return 0


def macs_per_weight(module: ir.Module) -> dict[str, int]:
    """MACs of the Conv/Gemm/MatMul ops, keyed by the name of their weight initializer."""
    result: dict[str, int] = {}
    with module.context:
        for op in main_ops(module):
            if op.name in ("onnx.Conv", "onnx.ConvTranspose", "onnx.Gemm", "onnx.MatMul"):
                name = constant_name(op.operands[1])
                if name is not None:
                    result[name] = result.get(name, 0) + _macs(op.operation)
    return result


def constant_name(value: ir.Value) -> str | None:
    """The ONNX name of the constant behind `value` (initializer, Constant, ConstantOfShape
    or Identity of one), as the coupling analysis names members; None if computed."""
    producer = value.owner
    if isinstance(producer, ir.Block):
        return None
    if producer.name == "onnx.Initializer":
        return ir.StringAttr(producer.attributes["tensor_name"]).value
    if producer.name in ("onnx.Constant", "onnx.ConstantOfShape", "onnx.Identity") \
            and "onnx.output_names" in producer.attributes:
        if producer.name == "onnx.Identity" and constant_name(producer.operands[0]) is None:
            return None
        return ir.StringAttr(ir.ArrayAttr(producer.attributes["onnx.output_names"])[0]).value
    return None


def main_ops(module: ir.Module) -> list:
    """The ops of `func.func @main_graph`, in order (call with the module's context active)."""
    for function in module.body.operations:
        if ir.StringAttr(function.attributes["sym_name"]).value == MAIN_FUNCTION:
            return list(function.regions[0].blocks[0].operations)
    return []


def module_stats(module: ir.Module) -> ModelStats:
    """Count parameters and MACs of the main function of `module`."""
    params = macs = 0
    with module.context:
        for op in main_ops(module):
            # paddle2onnx stores weights as Constant nodes; light graphs fill them at run time (ConstantOfShape)
            if op.name in ("onnx.Initializer", "onnx.Constant", "onnx.ConstantOfShape"):
                shaped = op.results[0].type
                if not shaped.has_static_shape:
                    continue
                if isinstance(shaped.element_type, ir.FloatType):
                    params += int(np.prod(shaped.shape))
            else:
                macs += _macs(op.operation)
    return ModelStats(params, macs)
