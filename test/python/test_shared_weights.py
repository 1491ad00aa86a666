"""Weights a model reads more than once: a layer applied twice is pruned alike (never growing the model),
a protected weight is protected in every use, and uses the plan leaves equal are stored once."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import spa
from helpers import assert_same_outputs, run
from onnx import helper, numpy_helper


def _param_count(model: onnx.ModelProto) -> int:
    return sum(int(np.prod(t.dims)) for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT)


def _block_applied_twice(shared_bias: bool = True) -> onnx.ModelProto:
    """x + block(x), twice, with one block's weights (ALBERT's shared layers in small): MatMul, Add, Relu,
    MatMul. `shared_bias=False` gives the second application a bias of its own (equal values)."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
               for name, shape in (("w_in", (8, 16)), ("w_out", (16, 8)), ("bias", (16,)))]
    if not shared_bias:
        weights.append(numpy_helper.from_array(numpy_helper.to_array(weights[2]), "bias_2"))
    nodes = []
    for step, (source, bias) in enumerate((("x", "bias"), ("z0", "bias" if shared_bias else "bias_2"))):
        nodes += [helper.make_node("MatMul", [source, "w_in"], [f"h{step}"]),
                  helper.make_node("Add", [f"h{step}", bias], [f"a{step}"]),
                  helper.make_node("Relu", [f"a{step}"], [f"r{step}"]),
                  helper.make_node("MatMul", [f"r{step}", "w_out"], [f"o{step}"]),
                  helper.make_node("Add", [source, f"o{step}"], [f"z{step}"])]
    graph = helper.make_graph(nodes, "twice", [helper.make_tensor_value_info("x", 1, ["n", 8])],
                              [helper.make_tensor_value_info("z1", 1, ["n", 8])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _two_layers_sharing_a_bias() -> onnx.ModelProto:
    """Two independent MLPs whose hidden biases are one initializer (as an exporter stores equal tensors)."""
    rng = np.random.default_rng(1)
    names = {"w_a": (8, 16), "v_a": (16, 8), "w_b": (8, 16), "v_b": (16, 8), "bias": (16,)}
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), n) for n, shape in names.items()]
    nodes = []
    for branch in "ab":
        nodes += [helper.make_node("MatMul", ["x", f"w_{branch}"], [f"h_{branch}"]),
                  helper.make_node("Add", [f"h_{branch}", "bias"], [f"s_{branch}"]),
                  helper.make_node("Relu", [f"s_{branch}"], [f"r_{branch}"]),
                  helper.make_node("MatMul", [f"r_{branch}", f"v_{branch}"], [f"y_{branch}"])]
    nodes.append(helper.make_node("Add", ["y_a", "y_b"], ["y"]))
    graph = helper.make_graph(nodes, "shared_bias", [helper.make_tensor_value_info("x", 1, ["n", 8])],
                              [helper.make_tensor_value_info("y", 1, ["n", 8])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("seed", range(4))
def test_a_layer_applied_twice_is_pruned_alike_and_never_grows(seed: int) -> None:
    source = _block_applied_twice()
    model = spa.load(source)
    applied = model.prune(model.plan("random", ratio=0.5, seed=seed, quiet=True))  # verified on write
    pruned = model.to_onnx()
    kept = {t.name: list(t.dims) for t in pruned.graph.initializer}
    assert kept["w_in"] == [8, 8] and kept["w_out"] == [8, 8] and sum(map(len, applied.removed.values())) == 8
    assert _param_count(pruned) < _param_count(source)  # one weight, pruned once: not a copy per use
    biases = [t.name for t in pruned.graph.initializer if t.name.startswith("bias")]
    assert len(biases) == 1 and kept[biases[0]] == [8]  # the bias's per-use copies, sliced alike, stored once
    feeds = {"x": np.random.default_rng(seed).standard_normal((3, 8)).astype(np.float32)}
    assert run(pruned, feeds)[0].shape == (3, 8)


def test_protecting_a_weight_protects_every_use_of_it() -> None:
    source = _two_layers_sharing_a_bias()
    free = spa.load(source)
    assert sum(map(len, free.plan("l2", ratio=0.5, quiet=True).removed.values())) == 16  # both layers prunable
    model = spa.load(source)
    plan = model.plan("l2", ratio=0.5, protect=["bias"], quiet=True)
    protected = [g for g in model.coupling_groups() if any(m.tensor.startswith("bias") for m in g.members)]
    assert len(protected) == 2 and not any(plan.removed.get(g.id) for g in protected)


def test_uses_the_plan_leaves_equal_are_stored_once() -> None:
    """The importer copies the bias per use; pruning nothing of it must not write it twice."""
    source = _two_layers_sharing_a_bias()
    model = spa.load(source)
    model.prune(model.plan("l2", ratio=0.5, protect=["bias"], quiet=True))
    pruned = model.to_onnx()
    assert _param_count(pruned) == _param_count(source) and model.stats().params == spa.load(source).stats().params
    feeds = {"x": np.ones((2, 8), np.float32)}
    assert_same_outputs(run(source, feeds), run(pruned, feeds))


def test_shared_integer_constants_stay_initializers() -> None:
    """An axes constant read by two nodes is copied per use on import; written back it must stay an
    initializer (onnx's converter and shape inference read axes only from constants), not an Identity."""
    rng = np.random.default_rng(2)
    weights = [numpy_helper.from_array(rng.standard_normal((4, 6)).astype(np.float32), "w"),
               numpy_helper.from_array(rng.standard_normal((6, 3)).astype(np.float32), "head"),
               numpy_helper.from_array(np.array([0, 1], np.int64), "axes")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Unsqueeze", ["h", "axes"], ["u"]),
             helper.make_node("Squeeze", ["u", "axes"], ["s"]), helper.make_node("MatMul", ["s", "head"], ["y"])]
    graph = helper.make_graph(nodes, "axes", [helper.make_tensor_value_info("x", 1, ["n", 4])],
                              [helper.make_tensor_value_info("y", 1, ["n", 3])], weights)
    model = spa.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    model.prune(model.plan("l2", ratio=0.5, quiet=True))
    pruned = model.to_onnx()
    integers = {t.name for t in pruned.graph.initializer if t.data_type == onnx.TensorProto.INT64}
    assert not [n for n in pruned.graph.node if n.op_type == "Identity" and n.input[0] in integers]
    assert [list(t.dims) for t in pruned.graph.initializer if t.name == "w"] == [[4, 3]]
