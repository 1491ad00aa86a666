"""Verification on write at work: a group whose rewrite is broken is blocked, and the rest is pruned.

    python examples/self_healing.py

A small MLP is pruned at ratio 0.5 with SPA's rewrite of one group broken on
purpose (its consumer weight keeps one row too many, as a rewrite bug would
leave it). Verification finds that the written model fails onnx's checker,
finds the group responsible by bisection, leaves it unpruned and prunes the
other groups; the CLI prints what it blocked and why, and the plan JSON
records it. Without the injected fault nothing is blocked.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from spa import passes
from spa.cli import main
from spa.ir.bindings import ir
from spa.stats import main_ops

BROKEN_GROUP = 1


def mlp() -> onnx.ModelProto:
    """x[n, 4] -> MatMul(8) -> Tanh -> MatMul(8) -> Tanh -> MatMul(8) -> Tanh -> MatMul -> y[n, 3]."""
    rng = np.random.default_rng(0)
    widths = [4, 8, 8, 8, 3]
    nodes, weights, value = [], [], "x"
    for i, (fan_in, fan_out) in enumerate(zip(widths, widths[1:])):
        weights.append(numpy_helper.from_array(rng.standard_normal((fan_in, fan_out)).astype(np.float32), f"w{i}"))
        nodes.append(helper.make_node("MatMul", [value, f"w{i}"], [f"h{i}"], name=f"layer{i}"))
        value = f"h{i}"
        if i < len(widths) - 2:
            nodes.append(helper.make_node("Tanh", [value], [f"t{i}"], name=f"tanh{i}"))
            value = f"t{i}"
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info(value, onnx.TensorProto.FLOAT, ["n", 3])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def break_rewrite_of(group_id: int, victim: str) -> None:
    """After SPA's real rewrite of `group_id`, give `victim` one row too many."""
    real = passes.apply_plan

    def broken(module, plan, groups, heads="dims"):
        real(module, plan, groups, heads)
        if not plan.removed.get(group_id):
            return
        with module.context, ir.Location.unknown():
            for op in main_ops(module):
                if op.name == "onnx.Initializer" and ir.StringAttr(op.attributes["tensor_name"]).value == victim:
                    rows, columns = ir.RankedTensorType(op.results[0].type).shape
                    kind = ir.RankedTensorType.get([rows + 1, columns], ir.F32Type.get())
                    data = np.zeros((rows + 1, columns), np.float32)
                    op.attributes["value"] = ir.DenseResourceElementsAttr.get_from_buffer(
                        memoryview(data.reshape(-1)), "broken", kind)
                    op.results[0].set_type(kind)

    passes.apply_plan = broken


def run() -> int:
    with tempfile.TemporaryDirectory() as folder:
        source, output, plan = (str(Path(folder) / name) for name in ("mlp.onnx", "pruned.onnx", "plan.json"))
        onnx.save(mlp(), source)
        break_rewrite_of(BROKEN_GROUP, victim=f"w{BROKEN_GROUP + 1}")
        code = main(["prune", source, "-o", output, "--ratio", "0.5", "--plan-out", plan])
        if code == 0:
            print("plan.json records:", json.dumps(json.loads(Path(plan).read_text())["blocked"]))
        return code


if __name__ == "__main__":
    sys.exit(run())
