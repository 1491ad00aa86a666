"""The spa CLI: happy paths and clear, single-line errors with no partial output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from helpers import LIGHT_MODELS, assert_same_outputs, random_inputs, run


def spa(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spa", *args], capture_output=True, text=True)


def test_version_and_help() -> None:
    assert spa("--version").stdout.startswith("spa ")
    result = spa("--help")
    assert result.returncode == 0
    assert "import" in result.stdout and "export" in result.stdout


def test_import_then_export_runs_the_same(tmp_path: Path) -> None:
    source = LIGHT_MODELS[0]
    assert spa("import", str(source), "-o", str(tmp_path / "m.mlir")).returncode == 0
    assert spa("export", str(tmp_path / "m.mlir"), "-o", str(tmp_path / "m.onnx")).returncode == 0
    original = onnx.load(source)
    feeds = random_inputs(original)
    assert_same_outputs(run(original, feeds), run(tmp_path / "m.onnx", feeds))


def _tiny_model(opset: int, op: str = "Relu") -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], name="act")], "tiny",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def _complex_factor_model() -> onnx.ModelProto:
    """What TorchScript's exporter writes for a bfloat16 scale: a Cast to complex128 feeding a Mul."""
    nodes = [helper.make_node("Cast", ["x"], ["factor"], to=onnx.TensorProto.COMPLEX128, name="widen"),
             helper.make_node("Mul", ["x", "factor"], ["y"], name="scale")]
    graph = helper.make_graph(nodes, "typed", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=10)


def _write(path: Path, model: onnx.ModelProto) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("case, expected", [
    ("missing", "no such file"),
    ("not_onnx", "not a readable ONNX model"),
    ("invalid", "invalid ONNX model"),
    ("opset_too_new", "opset 30 is newer than the opset SPA supports"),
    ("badly_typed", "not a valid ONNX model: node widen: 'onnx.Cast' op result #0"),
])
def test_import_errors_are_one_clear_line(case: str, expected: str, tmp_path: Path) -> None:
    paths = {
        "missing": tmp_path / "absent.onnx",
        "not_onnx": tmp_path / "text.onnx",
        "invalid": tmp_path / "invalid.onnx",
        "opset_too_new": tmp_path / "new.onnx",
        "badly_typed": tmp_path / "typed.onnx",
    }
    (tmp_path / "text.onnx").write_text("this is not a model")
    _write(paths["invalid"], _tiny_model(17, op="NoSuchOp"))
    _write(paths["opset_too_new"], _tiny_model(30))
    _write(paths["badly_typed"], _complex_factor_model())
    output = tmp_path / "out.mlir"
    result = spa("import", str(paths[case]), "-o", str(output))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(paths[case]) in lines[0]
    assert not output.exists()
    assert list(tmp_path.glob(".*")) == []  # no staging file left behind


def test_export_rejects_bad_mlir_without_output(tmp_path: Path) -> None:
    source = tmp_path / "bad.mlir"
    source.write_text('func.func @main_graph() {\n  %0 = "onnx.Relu"() : () -> tensor<2xf32>\n  return\n}\n')
    output = tmp_path / "out.onnx"
    result = spa("export", str(source), "-o", str(output))
    assert result.returncode == 1
    assert "bad.mlir" in result.stderr and "onnx.Relu" in result.stderr
    assert not output.exists()


def test_usage_error_exits_2() -> None:
    assert spa("import").returncode == 2


@pytest.mark.zoo
def test_demo_runs_with_no_arguments(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "spa", "demo"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.split()}
    accuracy = {key: float(lines[key].split("accuracy")[1].split("%")[0]) for key in ("before", "after")}
    assert accuracy["before"] > 98.0
    assert accuracy["after"] > 95.0  # OBSPA at half the channels, calibrated, with no fine-tuning
    assert "removed" in lines and "speed-up" in lines["removed"]
    assert "batch 256, 1 thread, median of" in result.stdout  # a latency a user can believe says how
    report = tmp_path / "demo-report.html"
    assert f"report: {report}" in result.stdout and report.stat().st_size > 100_000


def test_analyze_summarises_and_lists_members(tmp_path: Path) -> None:
    from spa.data import demo_model_path

    summary = spa("analyze", str(demo_model_path()))
    assert summary.returncode == 0, summary.stderr
    assert "4 channel groups, 3 prunable" in summary.stdout
    assert "graph output" in summary.stdout
    listing = spa("analyze", str(demo_model_path()), "--json")
    groups = __import__("json").loads(listing.stdout)["groups"]
    flatten_consumer = [m for g in groups for m in g["members"] if m["tensor"] == "classifier.0.weight" and m["axis"] == 1]
    assert len(flatten_consumer) == 1 and len(flatten_consumer[0]["channel_of_position"]) == 64 * 7 * 7


def test_prune_writes_a_smaller_valid_model_and_plan(tmp_path: Path) -> None:
    from spa.data import demo_model_path, load_demo_images

    output, plan = tmp_path / "pruned.onnx", tmp_path / "plan.json"
    result = spa("prune", str(demo_model_path()), "-o", str(output), "--criterion", "l2", "--ratio", "0.5",
                 "--round-to", "8", "--protect", "features.0.weight", "--plan-out", str(plan))
    assert result.returncode == 0, result.stderr
    assert "removed" in result.stdout and "MACs" in result.stdout
    model = onnx.load(output)
    onnx.checker.check_model(model, full_check=True)
    shapes = {t.name: list(t.dims) for t in model.graph.initializer}
    assert shapes["features.0.weight"][0] == 32  # protected
    assert shapes["features.3.weight"][0] == 32  # half of 64, a multiple of 8
    assert shapes["classifier.0.weight"] == [64, 32 * 7 * 7]
    entries = __import__("json").loads(plan.read_text())["groups"]
    assert {e["id"] for e in entries} == {1, 2}
    images, labels = load_demo_images()
    (logits,) = run(output, {"image": images[:20]})
    assert logits.shape == (20, 10)


def test_prune_reports_unknown_protected_name(tmp_path: Path) -> None:
    from spa.data import demo_model_path

    result = spa("prune", str(demo_model_path()), "-o", str(tmp_path / "x.onnx"), "--protect", "no.such.weight")
    assert result.returncode == 1 and "no.such.weight" in result.stderr
    assert not (tmp_path / "x.onnx").exists()


def test_custom_op_blocks_its_channels_and_pruning_stays_valid(tmp_path: Path) -> None:
    # A com.microsoft op (which onnxruntime runs) sits between two MatMuls: the
    # channels it reads must not be pruned, the others may be.
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
               for n, s in (("w1", (6, 8)), ("w2", (8, 8)), ("w3", (8, 4)))]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["a"]), helper.make_node("Relu", ["a"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["b"]),
             helper.make_node("Gelu", ["b"], ["g"], domain="com.microsoft"),
             helper.make_node("MatMul", ["g", "w3"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 6])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, 4])], weights)
    source = _write(tmp_path / "custom.onnx", helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)], ir_version=10))
    analysis = __import__("json").loads(spa("analyze", str(source), "--json").stdout)["groups"]
    blocked = [g for g in analysis if "opaque op onnx.Custom" in g["reasons"]]
    assert blocked and not blocked[0]["prunable"]
    output = tmp_path / "pruned.onnx"
    assert spa("prune", str(source), "-o", str(output), "--ratio", "0.5").returncode == 0
    shapes = {t.name: list(t.dims) for t in onnx.load(output).graph.initializer}
    assert shapes == {"w1": [6, 4], "w2": [4, 8], "w3": [8, 4]}
    (y,) = run(output, {"x": rng.standard_normal((2, 6)).astype(np.float32)})
    assert y.shape == (2, 4)


@pytest.mark.parametrize("option, measure", [("--target-flops", "macs"), ("--target-params", "params")])
def test_prune_targets_are_met_as_measured(option: str, measure: str, tmp_path: Path) -> None:
    import spa
    from spa.data import demo_model_path

    output = tmp_path / "pruned.onnx"
    assert spa_cli_ok("prune", str(demo_model_path()), "-o", str(output), option, "0.4")
    before = getattr(spa.load(demo_model_path()).stats(), measure)
    after = getattr(spa.load(output).stats(), measure)
    assert 0.4 <= 1 - after / before <= 0.5


def spa_cli_ok(*args: str) -> bool:
    result = spa(*args)
    assert result.returncode == 0, result.stderr
    return True


@pytest.mark.zoo  # calibrated OBSPA on the bundled trained MNIST model: 8-9 s, the full tier
def test_prune_obspa_with_calibration_reports_its_data(tmp_path: Path) -> None:
    from spa.data import demo_model_path, load_demo_images

    images, labels = load_demo_images()
    np.savez(tmp_path / "calibration.npz", image=images[:64])
    out = tmp_path / "pruned.onnx"
    result = spa("prune", str(demo_model_path()), "-o", str(out), "--criterion", "obspa", "--ratio", "0.5",
                 "--calibration", str(tmp_path / "calibration.npz"))
    assert result.returncode == 0, result.stderr
    assert "data used: Hessians from 64 calibration samples" in result.stdout
    assert "corrected" in result.stdout
    predictions = run(out, {"image": images[64:]})[0].argmax(axis=1)
    assert (predictions == labels[64:]).mean() > 0.9


@pytest.mark.parametrize("arguments, expected", [
    (["--criterion", "obspa", "--calibration", "missing.npz"], "missing.npz: calibration file not found"),
    (["--criterion", "obspa", "--calibration", "wrong.npz"], "expected arrays named image"),
    (["--criterion", "l1", "--calibration", "wrong.npz"], "read by --criterion obspa and --allocation sensitivity"),
    (["--criterion", "taylor"], "taylor criterion needs gradients"),
])
def test_prune_criterion_data_errors(arguments: list[str], expected: str, tmp_path: Path) -> None:
    from spa.data import demo_model_path

    np.savez(tmp_path / "wrong.npz", pixels=np.zeros((2, 1, 28, 28), np.float32), extra=np.zeros(2))
    out = tmp_path / "pruned.onnx"
    result = subprocess.run([sys.executable, "-m", "spa", "prune", str(demo_model_path()), "-o", str(out),
                             *arguments], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1
    assert expected in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert not out.exists()


def test_prune_whole_heads_from_the_cli(tmp_path: Path, capsys) -> None:
    """`--heads whole` makes each of the 3 heads a channel; pruning half of them leaves 2 heads
    and a model with the original output shape."""
    pytest.importorskip("torch")
    import json

    import torch_zoo
    from spa.cli import main

    def head_groups(path: Path) -> list[int]:
        assert main(["analyze", str(path), "--heads", "whole", "--json"]) == 0
        groups = json.loads(capsys.readouterr().out)["groups"]
        return [g["channels"] for g in groups if g["prunable"]]  # the model's only prunable group: its heads

    source, target = tmp_path / "heads.onnx", tmp_path / "pruned.onnx"
    onnx.save(torch_zoo.export("einsum_attention", dynamo=False), source)
    assert head_groups(source) == [3]
    assert main(["prune", str(source), "-o", str(target), "--heads", "whole", "--ratio", "0.5"]) == 0
    capsys.readouterr()
    assert head_groups(target) == [2]
    feeds = random_inputs(onnx.load(source))
    assert run(target, feeds)[0].shape == run(source, feeds)[0].shape


def test_groups_too_small_for_the_ratio_are_named(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n)
               for n, s in (("narrow", (4, 2)), ("wide", (4, 10)), ("out_n", (2, 3)), ("out_w", (10, 3)))]
    nodes = [helper.make_node("MatMul", ["x", "narrow"], ["n"]), helper.make_node("MatMul", ["x", "wide"], ["w"]),
             helper.make_node("MatMul", ["n", "out_n"], ["a"]), helper.make_node("MatMul", ["w", "out_w"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, ["n", 4])],
                              [helper.make_tensor_value_info("y", 1, ["n", 3])], weights)
    source = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), source)
    result = spa("prune", str(source), "-o", str(tmp_path / "p.onnx"), "--ratio", "0.3", "--criterion", "l2")
    assert result.returncode == 0, result.stderr
    assert "removed 3 channels from 1 of 2 prunable groups" in result.stdout
    assert "kept whole: 1 prunable groups are too small for --ratio 0.3 to remove a step of them (2 in steps of 1" \
        in result.stdout
