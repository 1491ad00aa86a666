"""GatherND that picks slices by leading axes (the dynamo exporter's key/value heads of a fused QKV) carries
the channels after them: they prune, and the written model passes verification on write."""

from __future__ import annotations

import numpy as np
import onnx
import spa
from helpers import run
from onnx import helper, numpy_helper


def test_channels_after_the_axes_a_gather_nd_picks_are_pruned() -> None:
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32), "w"),
               numpy_helper.from_array(rng.standard_normal((8, 3)).astype(np.float32), "head"),
               numpy_helper.from_array(np.array([[1]], np.int64), "second")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),  # [2, n, 8]: two stacked sequences
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("GatherND", ["r", "second"], ["picked"]),  # [1, n, 8]: the second one
             helper.make_node("MatMul", ["picked", "head"], ["y"])]
    graph = helper.make_graph(nodes, "gather_nd", [helper.make_tensor_value_info("x", 1, [2, "n", 4])],
                              [helper.make_tensor_value_info("y", 1, [1, "n", 3])], weights)
    model = spa.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert [g.prunable for g in model.coupling_groups() if any(m.tensor == "head" and m.axis == 0 for m in g.members)] == [True]
    applied = model.prune(model.plan("l2", ratio=0.5, quiet=True))  # verified on write
    assert sum(map(len, applied.removed.values())) == 4 and not applied.blocked
    written = model.to_onnx()
    assert run(written, {"x": np.ones((2, 5, 4), np.float32)})[0].shape == (1, 5, 3)
