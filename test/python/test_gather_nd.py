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


def _picking_model(indices: np.ndarray) -> onnx.ModelProto:
    """x -> MatMul(w: 4 -> 6) -> Gather(axis -1, constant indices) -> MatMul(head) or ReduceSum -> y."""
    rng = np.random.default_rng(1)
    weights = [numpy_helper.from_array(rng.standard_normal((4, 6)).astype(np.float32), "w"),
               numpy_helper.from_array(indices, "picked")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Gather", ["h", "picked"], ["g"], axis=-1)]
    if indices.ndim == 1:
        weights.append(numpy_helper.from_array(rng.standard_normal((len(indices), 3)).astype(np.float32), "head"))
        nodes.append(helper.make_node("MatMul", ["g", "head"], ["y"]))
        out = helper.make_tensor_value_info("y", 1, ["n", 3])
    else:
        nodes.append(helper.make_node("Neg", ["g"], ["y"]))
        out = helper.make_tensor_value_info("y", 1, ["n"])
    graph = helper.make_graph(nodes, "pick", [helper.make_tensor_value_info("x", 1, ["n", 4])], [out], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_gather_of_constant_channels_is_renumbered_when_channels_go() -> None:
    model = spa.load(_picking_model(np.array([5, 0, 3, 2], np.int64)))
    group = next(g for g in model.coupling_groups() if any(m.tensor == "w" for m in g.members))
    assert group.prunable
    applied = model.prune(model.plan("l2", ratio=0.5, quiet=True))  # verified on write (zero-mask oracle)
    assert len(applied.removed[group.id]) == 3 and not applied.blocked
    written = model.to_onnx()
    assert run(written, {"x": np.ones((2, 4), np.float32)})[0].shape == (2, 3)


def test_a_channel_picked_by_a_scalar_index_is_kept() -> None:
    model = spa.load(_picking_model(np.array(4, np.int64)))
    group = next(g for g in model.coupling_groups() if any(m.tensor == "w" for m in g.members))
    applied = model.prune(model.plan("l2", ratio=0.9, quiet=True))  # verified on write
    assert 4 not in applied.removed[group.id] and len(applied.removed[group.id]) >= 4 and not applied.blocked
    assert run(model.to_onnx(), {"x": np.ones((2, 4), np.float32)})[0].shape == (2,)
