"""Sub-graphs: the channels inside an If's branches are analysed and pruned with the graph around them
(each branch's output i and the If's result i are the same channels); Loop and Scan bodies stay opaque
and say so. A real model with a recurrent layer, Silero VAD, prunes validly."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import run
from onnx import TensorProto, helper, numpy_helper
from oracle import prune_and_mask

import spa


def _conv(name: str, source: str, out: str, cin: int, cout: int, rng) -> tuple[onnx.NodeProto, list]:
    weight = numpy_helper.from_array(rng.standard_normal((cout, cin, 3, 3)).astype(np.float32), f"{name}.w")
    bias = numpy_helper.from_array(rng.standard_normal(cout).astype(np.float32), f"{name}.b")
    node = helper.make_node("Conv", [source, weight.name, bias.name], [out], pads=[1, 1, 1, 1], name=name)
    return node, [weight, bias]


def _branchy(else_yields_constant: bool = False, inner_weights: bool = False) -> onnx.ModelProto:
    """conv1 -> If(flag: relu(conv_a) + conv1 output | sigmoid(conv_b)) -> conv2. The branches capture
    outer initializers, or with `inner_weights` each branch declares its own under the same names (so
    that moving them to the main graph must rename one pair)."""
    rng = np.random.default_rng(0)
    conv1, w1 = _conv("conv1", "x", "h", 3, 8, rng)
    conv_a, wa = _conv("conv_a", "h", "a", 8, 8, rng)
    conv_b, wb = _conv("conv_b", "h", "b", 8, 8, rng)
    conv2, w2 = _conv("conv2", "y", "out", 8, 4, rng)
    feature = [None, 8, 6, 6]
    inner = {}
    if inner_weights:  # each branch declares its conv's weights itself, both as "weight" and "bias"
        for node, tensors in ((conv_a, wa), (conv_b, wb)):
            node.input[1:] = ["weight", "bias"]
            inner[node.name] = [numpy_helper.from_array(numpy_helper.to_array(t), n)
                                for t, n in zip(tensors, node.input[1:])]
        wa, wb = [], []
    then_graph = helper.make_graph(
        [conv_a, helper.make_node("Relu", ["a"], ["ra"]), helper.make_node("Add", ["ra", "h"], ["then_y"])],
        "then", [], [helper.make_tensor_value_info("then_y", TensorProto.FLOAT, feature)],
        inner.get("conv_a", []))
    if else_yields_constant:
        fixed = numpy_helper.from_array(np.ones((1, 8, 6, 6), np.float32))
        else_nodes = [helper.make_node("Constant", [], ["else_y"], value=fixed)]
    else:
        else_nodes = [conv_b, helper.make_node("Sigmoid", ["b"], ["else_y"])]
    else_graph = helper.make_graph(else_nodes, "else", [],
                                   [helper.make_tensor_value_info("else_y", TensorProto.FLOAT, feature)],
                                   inner.get("conv_b", []))
    branch = helper.make_node("If", ["flag"], ["y"], then_branch=then_graph, else_branch=else_graph, name="choose")
    graph = helper.make_graph(
        [conv1, branch, conv2], "branchy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 6, 6]),
         helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 4, 6, 6])], w1 + wa + wb + w2)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def _group_of(groups, tensor: str, axis: int):
    return next(g for g in groups if any(m.tensor == tensor and m.axis == axis for m in g.members))


def test_if_branches_share_channels_with_the_graph_around_them():
    groups = spa.load(_branchy()).coupling_groups()
    # The residual in the then-branch ties conv1's outputs to conv_a's; the else-branch's conv_b outputs
    # are the If's result too, so all of them and conv2's inputs are one group.
    joined = _group_of(groups, "conv1.w", 0)
    assert joined.prunable, joined.details()
    assert {(m.tensor, m.axis) for m in joined.members} >= {("conv_a.w", 0), ("conv_a.w", 1), ("conv_b.w", 0),
                                                            ("conv_b.w", 1), ("conv2.w", 1)}


@pytest.mark.parametrize("flag", [True, False])
@pytest.mark.parametrize("inner_weights", [False, True])
def test_pruned_branches_equal_the_zero_mask_oracle(flag: bool, inner_weights: bool):
    pruned, masked, plan, _ = prune_and_mask(_branchy(inner_weights=inner_weights), fraction=0.5)
    assert plan["groups"], "nothing was pruned"
    onnx.checker.check_model(pruned, full_check=True)
    shapes = {t.name: tuple(t.dims) for t in pruned.graph.initializer}
    names = ("weight", "weight_1") if inner_weights else ("conv_a.w", "conv_b.w")  # one moved out under a fresh name
    assert shapes[names[0]][:2] == shapes[names[1]][:2] == (4, 4)  # both branches lost half their channels
    feeds = {"x": np.random.default_rng(1).standard_normal((2, 3, 6, 6)).astype(np.float32),
             "flag": np.array(flag)}
    np.testing.assert_allclose(run(pruned, feeds)[0], run(masked, feeds)[0], rtol=1e-5, atol=1e-5)
    assert spa.load(pruned).stats().params < spa.load(_branchy()).stats().params


def test_a_branch_yielding_a_fixed_width_blocks_its_channels_with_a_reason():
    groups = spa.load(_branchy(else_yields_constant=True)).coupling_groups()
    result = _group_of(groups, "conv_a.w", 0)
    assert not result.prunable
    assert any("branch whose output 0 does not carry these channels" in r for r in result.reasons)


def test_loop_bodies_stay_opaque_and_say_so():
    rng = np.random.default_rng(0)
    conv1, w1 = _conv("conv1", "x", "h", 3, 8, rng)
    body = helper.make_graph(
        [helper.make_node("Relu", ["carried"], ["next"]), helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("carried", TensorProto.FLOAT, [None, 8, 6, 6])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("next", TensorProto.FLOAT, [None, 8, 6, 6])])
    loop = helper.make_node("Loop", ["trips", "", "h"], ["y"], body=body)
    conv2, w2 = _conv("conv2", "y", "out", 8, 4, rng)
    trips = numpy_helper.from_array(np.array(2, np.int64), "trips")
    graph = helper.make_graph([conv1, loop, conv2], "looped",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3, 6, 6])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 4, 6, 6])],
                              w1 + w2 + [trips])
    model = onnx.shape_inference.infer_shapes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    blocked = _group_of(spa.load(model).coupling_groups(), "conv1.w", 0)
    assert not blocked.prunable
    assert any("has sub-graphs SPA does not analyse" in r for r in blocked.reasons)


def _silero_vad() -> Path:
    spec = importlib.util.find_spec("faster_whisper")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("faster-whisper (which ships Silero VAD) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "assets" / "silero_vad_v6.onnx"


def test_silero_vad_prunes_its_convolutions_and_keeps_its_state_interface():
    path = _silero_vad()
    groups = spa.load(path).coupling_groups()
    assert sum(g.prunable for g in groups) >= 5, "\n".join(g.details() for g in groups)
    # The LSTM's hidden units are the h/c state the caller feeds back: a graph interface, kept.
    state = _group_of(groups, "decoder.conv1d.weight", 1)
    assert not state.prunable and any(reason.startswith("graph output '") for reason in state.reasons)
    pruned, masked, plan, _ = prune_and_mask(onnx.load(path), fraction=0.3)
    onnx.checker.check_model(pruned, full_check=True)
    rng = np.random.default_rng(2)
    feeds = {"input": (0.1 * rng.standard_normal((3, 576))).astype(np.float32),
             "h": np.zeros((1, 1, 128), np.float32), "c": np.zeros((1, 1, 128), np.float32)}
    expected, got = run(masked, feeds), run(pruned, feeds)
    for want, have in zip(expected, got):
        np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-5)


def test_a_branch_reading_a_shared_constant_gets_its_own_copy():
    """A bias vector read by the main graph and by a branch is two uses: the branch reads a copy made in
    the main graph (each copy is a constant of its own to the analysis), and the model computes the same."""
    from spa.importer.canonical_forms import COPY_SUFFIX, unshare_constants

    def vector(name):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [4])

    shared = numpy_helper.from_array(np.arange(4, dtype=np.float32), "shift")
    then_graph = helper.make_graph([helper.make_node("Add", ["a", "shift"], ["then_y"])], "then", [],
                                   [vector("then_y")])
    else_graph = helper.make_graph([helper.make_node("Neg", ["a"], ["else_y"])], "else", [], [vector("else_y")])
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "shift"], ["a"]),
         helper.make_node("If", ["flag"], ["y"], then_branch=then_graph, else_branch=else_graph)],
        "shared", [vector("x"), helper.make_tensor_value_info("flag", TensorProto.BOOL, [])], [vector("y")],
        [shared])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = {"x": np.ones(4, np.float32), "flag": np.array(True)}
    before = run(model, feeds)[0]
    assert unshare_constants(model.graph) == 1
    then_branch = next(a.g for a in model.graph.node[-1].attribute if a.name == "then_branch")
    branch_reads = then_branch.node[0].input
    assert branch_reads[1].startswith(f"shift{COPY_SUFFIX}")
    onnx.checker.check_model(model, full_check=True)
    np.testing.assert_array_equal(run(model, feeds)[0], before)


def _if_before_a_classifier() -> onnx.ModelProto:
    """conv1 -> relu -> conv2 -> relu -> If(relu | sigmoid, reading conv2's output from the branches) ->
    global pool -> Gemm: the Gemm's input depends on conv2 only through the If's bodies (found by the
    fuzzer: the sequential refit put the Gemm in conv2's level and lost conv2's input)."""
    rng = np.random.default_rng(2)
    conv1, w1 = _conv("conv1", "x", "h1", 3, 8, rng)
    conv2, w2 = _conv("conv2", "r1", "h2", 8, 8, rng)
    then_graph = helper.make_graph([helper.make_node("Relu", ["r2"], ["t"])], "then", [],
                                   [helper.make_tensor_value_info("t", TensorProto.FLOAT, [None, 8, 6, 6])])
    else_graph = helper.make_graph([helper.make_node("Sigmoid", ["r2"], ["e"])], "else", [],
                                   [helper.make_tensor_value_info("e", TensorProto.FLOAT, [None, 8, 6, 6])])
    weights = w1 + w2 + [numpy_helper.from_array(np.array(True), "flag"),
                         numpy_helper.from_array(rng.standard_normal((5, 8)).astype(np.float32), "fc.w")]
    nodes = [conv1, helper.make_node("Relu", ["h1"], ["r1"]), conv2, helper.make_node("Relu", ["h2"], ["r2"]),
             helper.make_node("If", ["flag"], ["y"], then_branch=then_graph, else_branch=else_graph),
             helper.make_node("GlobalAveragePool", ["y"], ["pooled"]),
             helper.make_node("Flatten", ["pooled"], ["flat"]),
             helper.make_node("Gemm", ["flat", "fc.w"], ["out"], transB=1)]
    graph = helper.make_graph(nodes, "if_classifier",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 6, 6])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 5])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_sequential_refit_levels_follow_values_read_inside_branches():
    from spa.obspa import OBSPAOptions
    from spa.obspa.layers import LinearLayer
    from spa.obspa.sequential import layer_levels

    model = _if_before_a_classifier()
    layers = [LinearLayer("conv2.w", "r1", "conv", False, (0, 8), (0, 8), None, "conv2.b", None),
              LinearLayer("fc.w", "flat", "gemm", False, (0, 8), (0, 5), None, None, None)]
    assert [[layer.weight for layer in level] for level in layer_levels(model, layers)] == [["conv2.w"], ["fc.w"]]
    pruned = spa.load(model)
    plan = pruned.plan("obspa", ratio=0.5, obspa=OBSPAOptions(synthesis_samples=16))
    assert "sequentially" in plan.data_used
    pruned.prune(plan)
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    assert run(pruned.to_onnx(), {"x": x})[0].shape == (2, 5)
