"""spa.Target: how much `Model.plan` removes, as one value instead of four exclusive keywords."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import spa
from onnx import helper, numpy_helper
from helpers import LIGHT_MODELS
from spa.errors import SPAError
from spa.groups import plan_to_dict

MODEL = LIGHT_MODELS[0]


@pytest.mark.parametrize("target, shorthand", [
    (spa.Target.channels(0.3), {"ratio": 0.3}),
    (spa.Target.params(0.2), {"target_params": 0.2}),
    (spa.Target.macs(0.25), {"target_flops": 0.25}),
])
def test_a_target_plans_what_its_shorthand_plans(target: spa.Target, shorthand: dict) -> None:
    model = spa.load(MODEL)
    groups = model.coupling_groups()
    by_target = plan_to_dict(model.plan("l2", target=target, quiet=True), groups)
    by_keyword = plan_to_dict(model.plan("l2", quiet=True, **shorthand), groups)
    assert by_target == by_keyword and any(group["removed"] for group in by_target["groups"])


@pytest.mark.parametrize("arguments, message", [
    ({}, "give exactly one target"),
    ({"target": spa.Target.macs(0.2), "ratio": 0.3}, "give exactly one target"),
    ({"ratio": 0.2, "target_flops": 0.3}, "give exactly one target"),
    ({"target": 0.3}, "target must be a spa.Target"),
])
def test_plan_needs_exactly_one_target(arguments: dict, message: str) -> None:
    with pytest.raises(SPAError, match=message):
        spa.load(MODEL).plan("l2", quiet=True, **arguments)


@pytest.mark.parametrize("measure, fraction, message", [
    ("flops", 0.3, "a target measures one of channels, params, macs, latency"),
    ("macs", 1.0, r"a fraction in \[0, 1\)"),
    ("params", -0.1, r"a fraction in \[0, 1\)"),
    ("params", "0.1", r"a fraction in \[0, 1\)"),
])
def test_targets_reject_unknown_measures_and_fractions_outside_zero_to_one(measure, fraction, message) -> None:
    with pytest.raises(SPAError, match=message):
        spa.Target(measure, fraction)


def test_importing_spa_for_its_target_loads_no_mlir() -> None:
    import subprocess
    import sys

    code = "import sys, spa; spa.Target.macs(0.1); print(any(m == 'mlir' or m.startswith('mlir.') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def _attention(sequence: int = 64) -> onnx.ModelProto:
    """One attention head of fixed length: its score MatMul (most of the MACs at this length) reads no
    weight, so per-weight costs miss what removing a query/key dim saves."""
    rng = np.random.default_rng(0)
    shapes = {"wq": (16, 8), "wk": (16, 8), "wv": (16, 16), "wo": (16, 16)}
    weights = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n) for n, s in shapes.items()]
    nodes = [helper.make_node("MatMul", ["x", "wq"], ["q"]), helper.make_node("MatMul", ["x", "wk"], ["k"]),
             helper.make_node("MatMul", ["x", "wv"], ["v"]),
             helper.make_node("Transpose", ["k"], ["kt"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["q", "kt"], ["s"]), helper.make_node("Softmax", ["s"], ["p"], axis=-1),
             helper.make_node("MatMul", ["p", "v"], ["o"]), helper.make_node("MatMul", ["o", "wo"], ["y"])]
    graph = helper.make_graph(nodes, "attention", [helper.make_tensor_value_info("x", 1, [1, sequence, 16])],
                              [helper.make_tensor_value_info("y", 1, [1, sequence, 16])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("allocation", ["global", "sensitivity"])
def test_a_macs_target_is_met_closely_when_weights_miss_attention_scores(allocation: str) -> None:
    model = spa.load(_attention())
    before = model.stats().macs
    model.prune(model.plan("l2", target=spa.Target.macs(0.2), allocation=allocation, quiet=True))
    removed = 1 - model.stats().macs / before
    assert 0.2 <= removed <= 0.3, removed
