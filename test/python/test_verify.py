"""Verify on write: checks that can fail, healing by bisection, `spa verify`, and generated inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import spa
from helpers import run, scaling_rewrite
from onnx import helper, numpy_helper
from spa import passes
from spa.cli import main
from spa.errors import SPAError
from spa.model import Model
from spa.stats import main_ops
from spa.groups import Plan
from spa.verify import Trial, generated_inputs, parse_input_shapes, verified_prune
from spa.verify.checks import Failure, check_equal
from spa.verify.inputs import index_bounds


def _mlp(hidden: int = 6, layers: int = 3, seed: int = 0) -> onnx.ModelProto:
    """x[n, 4] -> (MatMul, Tanh) x layers -> MatMul -> y[n, 3]: one prunable group per hidden layer."""
    rng = np.random.default_rng(seed)
    nodes, inits, previous, width = [], [], "x", 4
    for i in range(layers):
        inits.append(numpy_helper.from_array(rng.standard_normal((width, hidden)).astype(np.float32), f"w{i}"))
        nodes += [helper.make_node("MatMul", [previous, f"w{i}"], [f"h{i}"], name=f"mm{i}"),
                  helper.make_node("Tanh", [f"h{i}"], [f"r{i}"], name=f"tanh{i}")]
        previous, width = f"r{i}", hidden
    inits.append(numpy_helper.from_array(rng.standard_normal((width, 3)).astype(np.float32), "out"))
    nodes.append(helper.make_node("MatMul", [previous, "out"], ["y"], name="head"))
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _break_group(monkeypatch, model: Model, group_id: int) -> str:
    """Make SPA's rewrite of `group_id` leave a consumer weight one row too long (a stand-in for a
    rewrite bug that onnx's checker and onnxruntime reject); returns that weight's name."""
    from spa.ir.bindings import ir

    group = next(g for g in model.coupling_groups() if g.id == group_id)
    victim = next(m.tensor for m in group.members if m.role == "consumer")
    real = passes.apply_plan

    def faulty(module, plan, groups, heads="dims"):
        real(module, plan, groups, heads)
        if not plan.removed.get(group_id):
            return
        with module.context, ir.Location.unknown():
            for op in main_ops(module):
                if op.name == "onnx.Initializer" and ir.StringAttr(op.attributes["tensor_name"]).value == victim:
                    rows, columns = ir.RankedTensorType(op.results[0].type).shape
                    kind = ir.RankedTensorType.get([rows + 1, columns], ir.F32Type.get())
                    bad = np.zeros((rows + 1, columns), np.float32)
                    op.attributes["value"] = ir.DenseResourceElementsAttr.get_from_buffer(
                        memoryview(bad.reshape(-1)), "broken", kind)
                    op.results[0].set_type(kind)

    monkeypatch.setattr(passes, "apply_plan", faulty)
    return victim


def test_a_broken_group_is_blocked_and_the_rest_pruned(monkeypatch) -> None:
    model = spa.load(_mlp())
    plan = model.plan("l2", ratio=0.5)
    assert sorted(plan.removed) == [0, 1, 2]
    _break_group(monkeypatch, model, 1)
    applied = model.prune(plan)
    assert list(applied.blocked) == [1] and "failed" in applied.blocked[1]
    assert sorted(applied.removed) == [0, 2]
    written = model.to_onnx()
    onnx.checker.check_model(written, full_check=True)
    feeds = {"x": np.ones((2, 4), np.float32)}
    assert run(written, feeds)[0].shape == (2, 3)
    assert model.verification.blocked == applied.blocked and model.verification.trials > 1


def test_without_verification_the_broken_model_is_what_you_get(monkeypatch) -> None:
    model = spa.load(_mlp())
    plan = model.plan("l2", ratio=0.5)
    _break_group(monkeypatch, model, 1)
    model.prune(plan, verify=False)
    with pytest.raises(Exception):  # noqa: B017 - the checker's or onnxruntime's own error
        run(model.to_onnx(), {"x": np.ones((2, 4), np.float32)})


class _FakeTrial:
    """Trial stand-in: a plan fails when it holds a group of `bad`, or all of a pair in `conflicts`."""

    def __init__(self, bad=(), conflicts=(), unpruned_fails: bool = False) -> None:
        self.bad, self.conflicts, self.unpruned_fails = set(bad), [set(c) for c in conflicts], unpruned_fails
        self.label, self.count, self.full_check, self.runnable, self.skipped = "m.onnx", 0, True, False, []
        self.groups = {}

    def run(self, plan: Plan):
        self.count += 1
        ids = {g for g, c in plan.removed.items() if c}
        if (not ids and self.unpruned_fails) or ids & self.bad or any(c <= ids for c in self.conflicts):
            return Failure("onnxruntime load", f"fails with {sorted(ids)}")
        return type("Pruned", (), {"module": None, "model": None, "warnings": []})()


@pytest.mark.parametrize("bad, conflicts, blocked", [
    ((), (), []),
    ((3,), (), [3]),
    ((0, 7, 15), (), [0, 7, 15]),
    ((), ((2, 9),), [9]),  # only the pair fails: the later one is blocked
])
def test_bisection_blocks_exactly_the_culprits(bad, conflicts, blocked) -> None:
    trial = _FakeTrial(bad, conflicts)
    plan = Plan({g: (0,) for g in range(16)})
    _, applied, report = verified_prune(trial, plan)
    assert sorted(applied.blocked) == blocked == sorted(report.blocked)
    assert sorted(applied.removed) == sorted(set(range(16)) - set(blocked))
    if len(blocked) == 1:
        assert trial.count <= 2 + 2 * 4 + 1  # whole, unpruned, ~2 log2(16) halves, the healed plan


def test_healing_refits_the_weight_updates_of_the_plan_it_keeps() -> None:
    seen = []
    plan = Plan({0: (0,), 1: (0,)}, {"w": np.zeros(2)}, refit=lambda removed: seen.append(dict(removed)) or {})
    _, applied, _ = verified_prune(_FakeTrial(bad=(1,)), plan)
    assert seen == [{0: (0,)}] and applied.weight_updates == {}


def test_nothing_valid_is_one_clear_error() -> None:
    with pytest.raises(SPAError, match="even with nothing pruned"):
        verified_prune(_FakeTrial(unpruned_fails=True, bad=(0,)), Plan({0: (0,)}))
    with pytest.raises(SPAError, match="blocked every group of the plan"):
        verified_prune(_FakeTrial(bad=(0, 1)), Plan({0: (0,), 1: (1,)}))


def test_the_zero_mask_check_catches_a_wrong_weight() -> None:
    model = spa.load(_mlp())
    plan = model.plan("l1", ratio=0.5)
    trial = model.trial()
    assert not isinstance(trial.run(plan), Failure)
    trial.prune_copy = scaling_rewrite(trial.prune_copy, "w1")  # a kept weight 1 % off
    failure = trial.run(plan)
    assert isinstance(failure, Failure) and failure.check == "zero-mask oracle"


def test_check_equal_is_relative_to_the_output_scale() -> None:
    big = [np.array([1000.0, 0.0], np.float32)]
    assert check_equal(big, [np.array([1000.05, 0.05], np.float32)], ["y"]) is None
    assert check_equal(big, [np.array([1000.0, 0.2], np.float32)], ["y"]) is not None
    assert check_equal([np.array([np.nan])], [np.array([np.nan])], ["y"]) is None
    # float16 outputs are held to a few of their own roundings (a fused LayerNorm kernel against separate
    # ops differs by one), float32 ones to 1e-4
    half = [np.array([1.0, 0.5], np.float16)]
    assert check_equal(half, [np.array([1.0, 0.5005], np.float16)], ["y"]) is None
    assert check_equal(half, [np.array([1.0, 0.51], np.float16)], ["y"]) is not None
    assert check_equal([np.array([1.0, 0.5], np.float32)], [np.array([1.0, 0.5005], np.float32)], ["y"]) is not None
    assert check_equal([np.array([np.nan])], [np.array([0.0])], ["y"]) is not None


def test_generated_inputs_respect_tables_masks_and_symbols() -> None:
    table = numpy_helper.from_array(np.zeros((50, 4), np.float32), "embedding")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["embedding", "ids"], ["e"]), helper.make_node("Cast", ["mask"], ["m"], to=1),
         helper.make_node("Unsqueeze", ["m", "axes"], ["m3"]), helper.make_node("Mul", ["e", "m3"], ["y"])],
        "g", [helper.make_tensor_value_info("ids", onnx.TensorProto.INT64, ["batch", "length"]),
              helper.make_tensor_value_info("mask", onnx.TensorProto.INT64, ["batch", "length"])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["batch", "length", 4])],
        [table, numpy_helper.from_array(np.array([2], np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    assert index_bounds(model) == {"ids": 50}
    feeds = generated_inputs(model, {"ids": (3, 7)})
    assert feeds["ids"].shape == feeds["mask"].shape == (3, 7)  # the symbols take the given sizes
    assert feeds["ids"].max() < 50 and feeds["ids"].max() > 0 and (feeds["mask"] == 1).all()
    assert run(model, feeds)[0].shape == (3, 7, 4)
    with pytest.raises(SPAError, match="no input named nope"):
        generated_inputs(model, {"nope": (1,)})
    with pytest.raises(SPAError, match="NAME:DIMS"):
        parse_input_shapes(["x:1x3xa"])


# -- the CLI -----------------------------------------------------------------------


def _write(tmp_path: Path, model: onnx.ModelProto, name: str = "model.onnx") -> str:
    path = tmp_path / name
    onnx.save(model, path)
    return str(path)


def test_spa_verify_accepts_spa_s_output_and_rejects_tampering(tmp_path: Path, capsys) -> None:
    source = _write(tmp_path, _mlp())
    pruned, plan = str(tmp_path / "p.onnx"), str(tmp_path / "plan.json")
    assert main(["prune", source, "-o", pruned, "--criterion", "obspa", "--ratio", "0.5", "--plan-out", plan]) == 0
    assert "verified: onnx checker (full)" in capsys.readouterr().out
    assert json.loads(Path(plan).read_text())["corrected"]
    assert main(["verify", source, pruned, "--plan", plan]) == 0
    assert "zero-mask oracle" in capsys.readouterr().out
    for name, check in (("w0", "same as the plan's prune"), ("w1", "digest differs")):
        model = onnx.load(pruned)
        tensor = next(t for t in model.graph.initializer if t.name == name)
        array = numpy_helper.to_array(tensor).copy()
        array[0, 0] += 0.5
        tensor.CopyFrom(numpy_helper.from_array(array, name))
        tampered = _write(tmp_path, model, f"tampered_{name}.onnx")
        assert main(["verify", source, tampered, "--plan", plan]) == 1
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and check in error[0], error


def test_spa_verify_rejects_changed_outputs(tmp_path: Path, capsys) -> None:
    source = _write(tmp_path, _mlp())
    other = _mlp()
    other.graph.initializer[-1].CopyFrom(numpy_helper.from_array(np.ones((6, 5), np.float32), "out"))
    other.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 5
    assert main(["verify", source, _write(tmp_path, other, "other.onnx")]) == 1
    assert "output 'y' is float32[2, 5], the original's is float32[2, 3]" in capsys.readouterr().err


def test_an_internal_error_is_one_line_naming_the_stage(tmp_path: Path, capsys, monkeypatch) -> None:
    source = _write(tmp_path, _mlp())
    output = tmp_path / "out.onnx"
    monkeypatch.setattr(Model, "stats", lambda self: 1 / 0)
    assert main(["prune", source, "-o", str(output)]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and source in error[0] and "analysis failed: ZeroDivisionError" in error[0]
    assert "--debug" in error[0] and not output.exists()
    with pytest.raises(ZeroDivisionError):
        main(["--debug", "prune", source, "-o", str(output)])


def test_cli_prints_blocked_groups_and_records_them_in_the_plan(tmp_path: Path, capsys, monkeypatch) -> None:
    source = _write(tmp_path, _mlp())
    model = spa.load(source)
    _break_group(monkeypatch, model, 2)
    plan = tmp_path / "plan.json"
    assert main(["prune", source, "-o", str(tmp_path / "p.onnx"), "--ratio", "0.5", "--plan-out", str(plan)]) == 0
    out = capsys.readouterr().out
    assert "blocked group 2:" in out and "removed 6 channels from 2 of 3" in out
    entries = json.loads(plan.read_text())
    assert [b["id"] for b in entries["blocked"]] == [2] and [g["id"] for g in entries["groups"]] == [0, 1]


def test_bfloat16_models_import_and_get_generated_inputs() -> None:
    """bfloat16 (an ml_dtypes type NumPy sees as opaque) weights import and export unchanged, and a bfloat16
    input gets Gaussian feeds like any float."""
    bfloat16 = helper.tensor_dtype_to_np_dtype(onnx.TensorProto.BFLOAT16)
    weight = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3).astype(bfloat16), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "bf16",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.BFLOAT16, [None, 2])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.BFLOAT16, [None, 3])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    feeds = generated_inputs(model, {"x": (4, 2)})
    assert feeds["x"].shape == (4, 2) and feeds["x"].dtype.name == "bfloat16" and np.any(feeds["x"] != 0)
    written = spa.load(model).to_onnx()
    np.testing.assert_array_equal(numpy_helper.to_array(written.graph.initializer[0]).astype(np.float32),
                                  np.arange(6, dtype=np.float32).reshape(2, 3))


def test_big_models_are_checked_as_stubs_over_the_module_arrays(monkeypatch, tmp_path: Path) -> None:
    """Over IN_MEMORY_BYTES (64 MB; 0 here) the pruned model is checked with its weights left in the
    module (protobuf cannot hold over 2 GB) and written by a fresh export, and the state each trial
    copies is a file; a broken group is still blocked (the checker's shape inference over the stubs'
    declared shapes), after trials parsed from that file."""
    from spa.verify import trial as trial_module

    monkeypatch.setattr(trial_module, "IN_MEMORY_BYTES", 0)
    monkeypatch.setattr(spa.model, "LARGE_MODEL_BYTES", 0)  # the state to restore and copy goes to a file
    source = _mlp(hidden=96)  # weights over 1 KiB become stubs
    model = spa.load(source)
    plan = model.plan("l2", ratio=0.5)
    made = model.trial().run(plan)
    assert not isinstance(made, Failure) and {"w1", "w2"} <= made.memory.keys()
    assert all(t.data_location == onnx.TensorProto.EXTERNAL for t in made.model.graph.initializer
               if t.name in made.memory)
    feeds = {"x": np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)}
    expected = made.runner().run(feeds)
    _break_group(monkeypatch, model, 1)
    applied = model.prune(plan)
    assert list(applied.blocked) == [1] and "onnx checker" in applied.blocked[1]
    model.save(tmp_path / "p.onnx")
    written = onnx.load(tmp_path / "p.onnx")
    onnx.checker.check_model(written, full_check=True)
    assert run(written, feeds)[0].shape == expected[0].shape == (3, 3)


@pytest.mark.parametrize("stubs", [False, True])
def test_bfloat16_weights_reach_onnxruntime_in_place(monkeypatch, stubs: bool) -> None:
    """bfloat16 weights (cast to float32 where used) go to onnxruntime as raw bits with their ONNX type,
    as overrides of the reference and as in-memory stubs of a big model (NumPy's dtype alone is refused)."""
    from spa.verify import trial as trial_module

    if stubs:
        monkeypatch.setattr(trial_module, "IN_MEMORY_BYTES", 0)
    bfloat16 = helper.tensor_dtype_to_np_dtype(onnx.TensorProto.BFLOAT16)
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32).astype(bfloat16), name)
             for name, shape in (("w0", (16, 96)), ("w1", (96, 8)))]  # over 1 KiB each
    nodes = [helper.make_node("Cast", ["w0"], ["w0f"], to=onnx.TensorProto.FLOAT),
             helper.make_node("Cast", ["w1"], ["w1f"], to=onnx.TensorProto.FLOAT),
             helper.make_node("MatMul", ["x", "w0f"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w1f"], ["y"])]
    graph = helper.make_graph(nodes, "bf16_weights", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                                                                    ["n", 16])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 8])], inits)
    model = spa.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]))
    plan = model.plan("l2", ratio=0.5)
    trial = model.trial()
    assert {"w0", "w1"} <= trial.memory.keys()
    made = trial.run(plan)
    assert not isinstance(made, Failure), made
    assert bool(made.memory) == stubs
    assert trial.oracle_line(plan).startswith("zero-mask oracle over 1 function-preserving groups")
