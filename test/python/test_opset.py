"""Pruned models keep the opset they came with (SPA converts to its own opset on import, and back on export)."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
import spa
from helpers import random_inputs, run
from onnx import helper, numpy_helper
from oracle import masked_model, random_plan
from spa.cli import main
from spa.ir.names import SPA_OPSET
from spa.ir.onnx_model import is_big
from spa.groups import plan_to_dict
from spa.errors import SPAError, SPAWarning
from spa.groups import plan_to_dict


def _conv_net(opset: int, split: bool = False) -> onnx.ModelProto:
    """Conv -> Relu -> ReduceMean (axes an attribute before opset 18, an input after) -> Gemm,
    or with `split`, Conv -> Split of the dynamic height into two equal halves -> Concat (from opset 13
    with no sizes, which onnx's up-converter turns into Split 18's num_outputs; SPA gives a Split explicit
    sizes where the axis has a known size, and Split has no down-converter from 18 otherwise)."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "conv.weight"),
               numpy_helper.from_array(rng.standard_normal((5, 8)).astype(np.float32), "fc.weight")]
    nodes = [helper.make_node("Conv", ["x", "conv.weight"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"])]
    if split:
        if opset >= 13:
            nodes.append(helper.make_node("Split", ["r"], ["a", "b"], axis=2))
        else:
            nodes.append(helper.make_node("Split", ["r"], ["a", "b"], axis=2, split=[3, 3]))
        nodes.append(helper.make_node("Concat", ["b", "a"], ["r2"], axis=2))
    else:
        nodes.append(helper.make_node("Identity", ["r"], ["r2"]))
    nodes += [helper.make_node("ReduceMean", ["r2"], ["m"], axes=[2, 3], keepdims=0),
              helper.make_node("Gemm", ["m", "fc.weight"], ["y"], transB=1)]
    height = "h" if split and opset >= 13 else 6
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, height, 6])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 5])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def _opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def test_a_pruned_model_is_written_at_the_opset_it_came_with() -> None:
    source = _conv_net(13)
    model = spa.load(source)
    plan = random_plan(model.coupling_groups(), 0.5)
    masked = masked_model(model.to_onnx(), plan_to_dict(plan, model.coupling_groups()))
    model.prune(plan)
    pruned = model.to_onnx()
    assert (_opset(pruned), pruned.ir_version) == (13, 7)
    reduce_mean = next(n for n in pruned.graph.node if n.op_type == "ReduceMean")
    assert [a.name for a in reduce_mean.attribute if a.name == "axes"] == ["axes"]  # opset 13's form
    onnx.checker.check_model(pruned)
    feeds = random_inputs(source)
    np.testing.assert_allclose(run(pruned, feeds)[0], run(masked, feeds)[0], rtol=1e-5, atol=1e-5)


def test_an_opset_asked_for_is_written() -> None:
    model = spa.load(_conv_net(13))
    assert _opset(model.to_onnx(opset=SPA_OPSET)) == SPA_OPSET
    assert _opset(model.to_onnx(opset=15)) == 15


def test_an_opset_onnx_cannot_convert_back_to_keeps_spas_and_says_why() -> None:
    model = spa.load(_conv_net(13, split=True))
    with pytest.warns(SPAWarning, match="cannot write the model at opset 13.*Split.*keeps opset"):
        exported = model.to_onnx()
    assert _opset(exported) == SPA_OPSET
    onnx.checker.check_model(exported)
    with pytest.raises(SPAError, match="cannot write the model at opset 13"):
        model.to_onnx(opset=13)


def test_cli_opset_option_and_warning(tmp_path, capsys) -> None:
    source = tmp_path / "split.onnx"
    onnx.save(_conv_net(13, split=True), source)
    out = tmp_path / "pruned.onnx"
    assert main(["prune", str(source), "-o", str(out)]) == 0
    assert "spa: warning: onnx's version converter cannot write the model at opset 13" in capsys.readouterr().err
    assert _opset(onnx.load(out)) == SPA_OPSET
    refused = tmp_path / "refused.onnx"
    assert main(["prune", str(source), "-o", str(refused), "--opset", "13"]) == 1
    assert "Split" in capsys.readouterr().err and not refused.exists()
    plain = tmp_path / "plain.onnx"
    onnx.save(_conv_net(13), plain)
    assert main(["prune", str(plain), "-o", str(out), "--opset", "16"]) == 0
    assert _opset(onnx.load(out)) == 16


def test_operators_whose_defaults_changed_are_converted_not_carried_over() -> None:
    """Softmax's axis defaults to 1 before opset 13 and to -1 from 13: the down-conversion must
    write the old default explicitly, or the model computes something else."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((4, 3, 1, 1)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("Softmax", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "softmax", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 2, 2])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4, 2, 2])], [weight])
    source = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    source.ir_version = 7
    exported = spa.load(source).to_onnx(opset=11)
    assert _opset(exported) == 11
    feeds = random_inputs(source)
    np.testing.assert_allclose(run(exported, feeds)[0], run(source, feeds)[0], rtol=1e-6, atol=1e-6)


def test_operators_that_only_gained_attributes_are_carried_back() -> None:
    """onnx has no down-adapters for Reshape 14 (allowzero), BatchNormalization 14/15 (training_mode, types)
    or Split 18 (num_outputs); nodes that leave the new attributes unset mean the same at opset 13."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((4, 3, 1, 1)).astype(np.float32), "w"),
               *(numpy_helper.from_array(v.astype(np.float32), n) for n, v in
                 (("scale", rng.uniform(0.5, 1.5, 4)), ("bias", rng.standard_normal(4)),
                  ("mean", rng.standard_normal(4)), ("var", rng.uniform(0.5, 2, 4)))),
               numpy_helper.from_array(np.array([2, 2], np.int64), "sizes"),
               numpy_helper.from_array(np.array([1, -1], np.int64), "flat")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["n"]),
             helper.make_node("Split", ["n", "sizes"], ["a", "b"], axis=1),
             helper.make_node("Concat", ["b", "a"], ["s"], axis=1),
             helper.make_node("Reshape", ["s", "flat"], ["y"])]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 2, 2])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 16])], weights)
    source = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    source.ir_version = 7
    with warnings.catch_warnings():
        warnings.simplefilter("error", SPAWarning)
        exported = spa.load(source).to_onnx()
    assert _opset(exported) == 13
    assert [n.op_type for n in exported.graph.node] == [n.op_type for n in nodes]
    onnx.checker.check_model(exported, full_check=True)
    feeds = random_inputs(source)
    np.testing.assert_allclose(run(exported, feeds)[0], run(source, feeds)[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("target", [17, 13])
def test_operators_newer_than_the_target_are_written_as_their_function_bodies(target: int) -> None:
    """Gelu exists from opset 20; ONNX defines it as a function of Erf, so an opset-20 model can still be
    written at 17 (onnx2torch) or 13, with its constant casts folded (CastLike is from 15). The weight is big
    enough to be left out of the copy the converter and inliner see."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((16, 3, 3, 3)).astype(np.float32), "w")
    assert is_big(weight)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Gelu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "gelu", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 2, 2])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 16, 2, 2])], [weight])
    source = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", SPAWarning)
        exported = spa.load(source).to_onnx(opset=target)
    assert _opset(exported) == target
    ops = {n.op_type for n in exported.graph.node}
    assert "Erf" in ops and not {"Gelu", "CastLike"} & ops
    onnx.checker.check_model(exported, full_check=True)
    feeds = random_inputs(source)
    np.testing.assert_allclose(run(exported, feeds)[0], run(source, feeds)[0], rtol=1e-5, atol=1e-6)


def test_a_node_setting_an_attribute_the_target_lacks_is_not_carried_back() -> None:
    """Reshape's allowzero=1 (opset 14) keeps a 0 in the target as a zero-size dim; opset 13 would copy the
    input dim instead, so the node cannot go back unchanged and onnx has no adapter: SPA's opset stays."""
    weights = [numpy_helper.from_array(np.array([0, 4], np.int64), "target")]
    nodes = [helper.make_node("Reshape", ["x", "target"], ["y"], allowzero=1)]
    graph = helper.make_graph(nodes, "allowzero", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [0, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [0, 4])], weights)
    model = spa.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]))
    with pytest.raises(SPAError, match="cannot write the model at opset 13"):
        model.to_onnx(opset=13)


@pytest.mark.parametrize("softmax_axis", [2, -1])
def test_dropout_and_last_axis_softmax_are_written_in_their_older_forms(softmax_axis: int) -> None:
    """onnx converts Dropout's ratio attribute (before opset 12) to an input and a Softmax (before 13) to
    Flatten/Softmax/Reshape, but has no working way back; SPA writes both in their opset-11 forms."""
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Dropout", ["h"], ["d"], ratio=0.3),
             helper.make_node("Softmax", ["d"], ["y"], axis=softmax_axis)]
    weight = numpy_helper.from_array(np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32), "w")
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 3, 6])], [weight])
    original = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", SPAWarning)
        exported = spa.load(original).to_onnx()
    assert [(o.domain, o.version) for o in exported.opset_import] == [("", 11)]
    onnx.checker.check_model(exported, full_check=True)
    dropout = next(n for n in exported.graph.node if n.op_type == "Dropout")
    assert len(dropout.input) == 1 and helper.get_attribute_value(dropout.attribute[0]) == pytest.approx(0.3)
    feeds = random_inputs(original)
    np.testing.assert_allclose(run(exported, feeds)[0], run(original, feeds)[0], rtol=1e-5, atol=1e-6)


def test_equal_split_of_channels_gets_sizes_prunes_and_converts_back() -> None:
    """Split into equal halves of the channels (num_outputs after up-conversion) gets explicit sizes on
    load: its channels become prunable and the pruned model converts back to its opset 13."""
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Split", ["c"], ["a", "b"], axis=1),
             helper.make_node("Add", ["a", "b"], ["s"]),
             helper.make_node("Conv", ["s", "w2"], ["y"])]
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
               numpy_helper.from_array(rng.standard_normal((2, 4, 1, 1)).astype(np.float32), "w2")]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 6, 6])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 6, 6])], weights)
    source = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    source.ir_version = 7
    model = spa.load(source)
    base = model.to_onnx()
    groups = model.coupling_groups()
    halves = [g for g in groups if g.channels == 4]
    assert len(halves) == 1 and halves[0].prunable, [g.details() for g in groups]
    plan = random_plan(groups, fraction=0.5)
    model.prune(plan)
    pruned = model.to_onnx()
    assert _opset(pruned) == 13
    feeds = {"x": np.random.default_rng(1).standard_normal((1, 3, 6, 6)).astype(np.float32)}
    masked = masked_model(base, plan_to_dict(plan, groups))
    np.testing.assert_allclose(run(pruned, feeds)[0], run(masked, feeds)[0], rtol=1e-5, atol=1e-5)
