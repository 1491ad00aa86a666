"""The zero-mask oracle over groups that are not function-preserving (spa.verify.emulation).

A hidden size that runs through a LayerNorm, an RMSNorm's ReduceMean or a
Softmax changes the function when channels go, so zeroing weights is not a
reference for it. The reference model computes those ops over the kept
channels only; the pruned model must then equal it, and a rewrite that gets
one kept weight wrong must be caught (before, such groups were only checked
for loading and output shapes).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import spa
from helpers import scaling_rewrite
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper
from spa.groups import Plan
from spa.model import Model
from spa.verify.checks import Failure


def _model(kind: str) -> onnx.ModelProto:
    """x[n, 4] -> MatMul(w0) -> <kind> over the 6 hidden channels -> MatMul(head) -> y[n, 3]."""
    rng = np.random.default_rng(7)

    def weight(name, *shape):
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)

    inits = [weight("w0", 4, 6), weight("head", 6, 3), weight("gamma", 6), weight("beta", 6)]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["h"], name="mm0")]
    if kind == "layernorm":
        nodes.append(helper.make_node("LayerNormalization", ["h", "gamma", "beta"], ["n"], axis=-1, name="ln"))
    elif kind in ("rmsnorm", "rmsnorm_opset17"):  # how torch exporters write an RMSNorm
        inits += [numpy_helper.from_array(np.array([-1], np.int64), "axes"),
                  numpy_helper.from_array(np.float32(2), "two"), numpy_helper.from_array(np.float32(1e-6), "eps")]
        mean = (helper.make_node("ReduceMean", ["sq"], ["ms"], axes=[-1], keepdims=1, name="mean")
                if kind == "rmsnorm_opset17" else  # axes were an attribute before opset 18
                helper.make_node("ReduceMean", ["sq", "axes"], ["ms"], keepdims=1, name="mean"))
        nodes += [helper.make_node("Pow", ["h", "two"], ["sq"], name="pow"), mean,
                  helper.make_node("Add", ["ms", "eps"], ["mse"], name="add_eps"),
                  helper.make_node("Sqrt", ["mse"], ["rms"], name="sqrt"),
                  helper.make_node("Div", ["h", "rms"], ["hn"], name="div"),
                  helper.make_node("Mul", ["hn", "gamma"], ["n"], name="scale")]
    elif kind == "centred":  # h minus its mean over every axis (a ReduceMean with no axes)
        nodes += [helper.make_node("ReduceMean", ["h"], ["m"], keepdims=1, name="mean"),
                  helper.make_node("Sub", ["h", "m"], ["n"], name="centre")]
    else:
        nodes.append(helper.make_node("Softmax", ["h"], ["n"], axis=-1, name="softmax"))
    nodes.append(helper.make_node("MatMul", ["n", "head"], ["y"], name="mm1"))
    graph = helper.make_graph(nodes, kind, [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 3])], inits)
    opset = 17 if kind == "rmsnorm_opset17" else 18
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


KINDS = ("layernorm", "rmsnorm", "rmsnorm_opset17", "centred", "softmax")


def _hidden_group(model: Model):
    groups = [g for g in model.coupling_groups() if g.prunable]
    assert len(groups) == 1 and not groups[0].function_preserving and groups[0].non_preserving
    return groups[0]


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=10, deadline=None)
@given(removed=st.sets(st.integers(0, 5), min_size=1, max_size=5))
def test_the_pruned_model_equals_the_masked_reference(kind: str, removed: set[int]) -> None:
    model = spa.load(_model(kind))
    group = _hidden_group(model)
    trial = model.trial()
    assert trial.emulation.groups == {group.id}
    plan = Plan({group.id: tuple(sorted(removed))})
    assert not isinstance(trial.run(plan), Failure)
    assert "whose normalisations were masked" in trial.oracle_line(plan)


@pytest.mark.parametrize("kind", KINDS)
def test_a_wrong_kept_weight_is_caught(kind: str) -> None:
    model = spa.load(_model(kind))
    group = _hidden_group(model)
    trial = model.trial()
    plan = Plan({group.id: (1, 4)})
    trial.prune_copy = scaling_rewrite(trial.prune_copy, "head")  # a kept weight of the group, 1 % off
    failure = trial.run(plan)
    assert isinstance(failure, Failure) and failure.check == "zero-mask oracle", failure


def test_a_group_with_an_op_that_has_no_masked_form_falls_back_to_the_second_prune() -> None:
    """LRN has no masked form: its group is compared through a prune of the other groups alone."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 3, 1, 1)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal((2, 4, 1, 1)).astype(np.float32), "w2")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], name="conv1"),
             helper.make_node("LRN", ["c"], ["l"], size=3, name="lrn"),
             helper.make_node("Conv", ["l", "w2"], ["y"], name="conv2")]
    graph = helper.make_graph(nodes, "lrn", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 4, 4])], inits)
    model = spa.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    group = _hidden_group(model)
    trial = model.trial()
    assert not trial.emulation.groups
    plan = Plan({group.id: (0,)})
    assert not isinstance(trial.run(plan), Failure)
    assert trial.oracle_line(plan) is None


@pytest.mark.parametrize("kind", ["layernorm", "softmax"])
def test_a_removed_channel_that_becomes_infinite_does_not_poison_the_masked_reference(kind: str) -> None:
    """Log(|h|) before the normalisation: in the zero-mask reference a removed channel is log(0) = -inf.
    The pruned model has no such channel, and the masked reference must agree rather than turn
    -inf * 0 into NaN everywhere."""
    source = _model(kind)
    for node in source.graph.node:
        if node.name != "mm0":
            node.input[:] = ["logged" if name == "h" else name for name in node.input]
    source.graph.node.insert(1, helper.make_node("Abs", ["h"], ["magnitude"], name="abs"))
    source.graph.node.insert(2, helper.make_node("Log", ["magnitude"], ["logged"], name="log"))
    model = spa.load(source)
    group = _hidden_group(model)
    trial = model.trial()
    assert trial.emulation.groups == {group.id}
    assert not isinstance(trial.run(Plan({group.id: (2,)})), Failure)
