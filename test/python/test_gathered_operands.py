"""Computed operands of elementwise ops (rotary cos/sin computed from the positions, a relative-position
bias): they vary along the channel axis but carry no channels, so pruning reads their kept positions
through a Gather instead of blocking the group."""

from __future__ import annotations

import numpy as np
import onnx
from helpers import run
from onnx import helper, numpy_helper
from oracle import prune_and_mask

import spa


def _model() -> onnx.ModelProto:
    """x @ w1 -> * cos(angles) -> + sin(angles) -> Relu -> @ w2, where the angles are a second input: both
    computed operands vary along the 8 hidden channels. (A constant there, like `positions @ freq`,
    would be a producer of the group instead.)"""
    rng = np.random.default_rng(0)
    weights = {"w1": (4, 8), "w2": (8, 3)}
    initializers = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
                    for name, shape in weights.items()]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]),
             helper.make_node("Cos", ["angles"], ["cos"]),
             helper.make_node("Mul", ["h", "cos"], ["rotated"]),
             helper.make_node("Sin", ["angles"], ["bias"]),
             helper.make_node("Add", ["rotated", "bias"], ["biased"]),
             helper.make_node("Relu", ["biased"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"])]
    float_input = onnx.TensorProto.FLOAT
    graph = helper.make_graph(nodes, "computed", [helper.make_tensor_value_info("x", float_input, ["n", 4]),
                                                  helper.make_tensor_value_info("angles", float_input, ["n", 8])],
                              [helper.make_tensor_value_info("y", float_input, ["n", 3])], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_computed_operands_are_gathered_and_prune_like_the_oracle() -> None:
    groups = spa.load(_model()).coupling_groups()
    hidden = [g for g in groups if g.channels == 8]
    assert len(hidden) == 1 and hidden[0].prunable, [g.details() for g in groups]
    assert sorted(v for v, _, _ in hidden[0].gathered) == ["bias", "cos"]
    assert "gathered cos axis 1" in hidden[0].details()
    pruned, masked, plan, _ = prune_and_mask(_model(), fraction=0.5)
    assert len(next(g for g in plan["groups"] if g["id"] == hidden[0].id)["removed"]) == 4
    onnx.checker.check_model(pruned, full_check=True)
    assert sum(node.op_type == "Gather" for node in pruned.graph.node) == 2
    rng = np.random.default_rng(1)
    feeds = {"x": rng.standard_normal((5, 4)).astype(np.float32),
             "angles": rng.standard_normal((5, 8)).astype(np.float32)}
    np.testing.assert_allclose(run(pruned, feeds)[0], run(masked, feeds)[0], rtol=1e-5, atol=1e-5)
