"""The zero-mask reference as new initializer values over one serialised original.

Verification runs the original with the plan's channels zeroed. It no longer
copies and serialises a masked model per check: weights that several nodes
share through Identity or Constant nodes get initializers of their own once
(`materialise_constants`), and onnxruntime takes the masked values in place of
the model's own (`masked_initializers`). Oracle: the copy-based `masked_model`.
"""

from __future__ import annotations

import numpy as np
import onnx
import spa
from helpers import run
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper
from spa.groups import Plan, plan_to_dict
from spa.verify.checks import Failure, Runner
from spa.verify.masking import masked_initializers, masked_model, materialise_constants


WIDTH = 96  # w0 and head are over 1 KiB: the trial keeps them in memory, as stubs (InMemoryData)


def _shared_weights_mlp() -> onnx.ModelProto:
    """x -> MatMul+Add -> Relu -> MatMul+Add -> Relu -> MatMul -> y, where both biases are one
    initializer read through Identity nodes (how TorchScript stores equal weights once) and the
    second weight is a Constant node; the last is transposed in the graph (a sub-expression of
    constants, which onnxruntime must not fold with the model's own values)."""
    rng = np.random.default_rng(3)
    w0 = numpy_helper.from_array(rng.standard_normal((4, WIDTH)).astype(np.float32), "w0")
    shared = numpy_helper.from_array(rng.standard_normal(WIDTH).astype(np.float32), "shared_bias")
    head = numpy_helper.from_array(rng.standard_normal((3, WIDTH)).astype(np.float32), "head")
    w1 = numpy_helper.from_array(rng.standard_normal((WIDTH, WIDTH)).astype(np.float32), "w1_value")
    nodes = [helper.make_node("Identity", ["shared_bias"], ["b0"], name="b0_identity"),
             helper.make_node("Identity", ["shared_bias"], ["b1"], name="b1_identity"),
             helper.make_node("Constant", [], ["w1"], value=w1, name="w1_constant"),
             helper.make_node("MatMul", ["x", "w0"], ["m0"], name="mm0"),
             helper.make_node("Add", ["m0", "b0"], ["a0"], name="add0"),
             helper.make_node("Relu", ["a0"], ["r0"], name="relu0"),
             helper.make_node("MatMul", ["r0", "w1"], ["m1"], name="mm1"),
             helper.make_node("Add", ["m1", "b1"], ["a1"], name="add1"),
             helper.make_node("Relu", ["a1"], ["r1"], name="relu1"),
             helper.make_node("Transpose", ["head"], ["head_t"], perm=[1, 0], name="head_transpose"),
             helper.make_node("MatMul", ["r1", "head_t"], ["y"], name="mm2")]
    graph = helper.make_graph(nodes, "shared", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 3])],
                              [w0, shared, head])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


_FEEDS = {"x": np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)}


def _trial_base():
    model = spa.load(_shared_weights_mlp())
    groups = [g for g in model.coupling_groups() if g.prunable]
    return model, groups, model.trial()


def test_shared_weights_get_initializers_of_their_own_and_compute_the_same() -> None:
    original = _shared_weights_mlp()
    copy = onnx.ModelProto()
    copy.CopyFrom(original)
    materialise_constants(copy, ["b0", "b1", "w1", "y"])
    names = {t.name for t in copy.graph.initializer}
    assert {"b0", "b1", "w1"} <= names
    assert not any(n.op_type in ("Identity", "Constant") for n in copy.graph.node)
    onnx.checker.check_model(copy, full_check=True)
    np.testing.assert_array_equal(run(copy, _FEEDS)[0], run(original, _FEEDS)[0])


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_initializer_overrides_equal_the_masked_copy(data) -> None:
    model, groups, trial = _trial_base()
    assert len(groups) == 2
    removed = {g.id: tuple(sorted(data.draw(st.sets(st.integers(0, g.channels - 1), min_size=1,
                                                     max_size=g.channels - 1)))) for g in groups}
    # A corrected head (as OBSPA writes) changes the outputs for sure: a removed channel alone may not
    # (a ReLU dead on every sample).
    updates = {"head": model.weights()["head"] * data.draw(st.sampled_from([0.5, 2.0]))}
    plan = Plan(removed, updates)
    plan_dict = plan_to_dict(plan, groups)
    overrides = masked_initializers(trial.base, plan_dict, updates, trial.memory)
    assert overrides is not None, "every member is an initializer once the trial owns the export"
    assert {"w0", "head"} <= trial.memory.keys()
    fast = trial._base_runner(overrides).run(_FEEDS)
    slow = Runner(masked_model(trial._full_base(), plan_dict, updates)).run(_FEEDS)
    unmasked = trial._base_runner({}).run(_FEEDS)
    assert not isinstance(fast, Failure) and not isinstance(slow, Failure)
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-6, atol=1e-6)
    assert not np.allclose(fast[0], unmasked[0]), "the overrides must change what onnxruntime computes"


def test_a_wrong_shared_bias_is_caught() -> None:
    """A rewrite that changes one user of the shared bias fails the oracle (the overrides path)."""
    from spa.model import Model

    model, groups, trial = _trial_base()
    plan = Plan({groups[0].id: (0,), groups[1].id: (1,)})
    assert not isinstance(trial.run(plan), Failure)
    honest = trial.prune_copy

    def shifted(p: Plan):
        module = honest(p)
        copy = Model(module)
        name = next(n for n in copy.weights() if n.startswith("b1") or n == "b1")
        copy.set_weights({name: copy.weights()[name] + 0.01})
        return module

    trial.prune_copy = shifted
    failure = trial.run(plan)
    assert isinstance(failure, Failure) and failure.check == "zero-mask oracle"


def test_overrides_reach_a_batchnorm_that_onnxruntime_would_fuse_into_its_conv() -> None:
    """onnxruntime folds a BatchNorm into the conv before it from the model's own values: the reference
    session must not (a corrected running mean is one of OBSPA's weight updates)."""
    rng = np.random.default_rng(4)
    arrays = {"w": rng.standard_normal((WIDTH, 3, 1, 1)), "scale": rng.uniform(0.5, 2, WIDTH),
              "bias": rng.standard_normal(WIDTH), "mean": rng.standard_normal(WIDTH),
              "var": rng.uniform(0.5, 2, WIDTH), "w2": rng.standard_normal((2, WIDTH, 1, 1))}
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in arrays.items()]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["b"], name="bn"),
             helper.make_node("Relu", ["b"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["y"], name="conv2")]
    graph = helper.make_graph(nodes, "bn", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2, 4, 4])], inits)
    model = spa.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    trial = model.trial()
    group = next(g for g in model.coupling_groups() if g.prunable)
    updates = {"mean": arrays["mean"].astype(np.float32) + 3}
    plan = Plan({group.id: (0, 5)}, updates)
    plan_dict = plan_to_dict(plan, [group])
    overrides = masked_initializers(trial.base, plan_dict, updates, trial.memory)
    assert overrides is not None and "w" in trial.memory
    feeds = {"x": rng.standard_normal((1, 3, 4, 4)).astype(np.float32)}
    fast = trial._base_runner(overrides).run(feeds)
    slow = Runner(masked_model(trial._full_base(), plan_dict, updates)).run(feeds)
    np.testing.assert_allclose(fast[0], slow[0], rtol=1e-5, atol=1e-5)
    assert not isinstance(trial.run(plan), Failure)
