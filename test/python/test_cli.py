"""The spa CLI: happy paths and clear, single-line errors with no partial output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import helper

from conftest import LIGHT_MODELS, assert_same_outputs, random_inputs, run


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


def _write(path: Path, model: onnx.ModelProto) -> Path:
    path.write_bytes(model.SerializeToString())
    return path


@pytest.mark.parametrize("case, expected", [
    ("missing", "no such file"),
    ("not_onnx", "not a readable ONNX model"),
    ("invalid", "invalid ONNX model"),
    ("opset_too_new", "opset 30 is newer than the opset SPA supports"),
])
def test_import_errors_are_one_clear_line(case: str, expected: str, tmp_path: Path) -> None:
    paths = {
        "missing": tmp_path / "absent.onnx",
        "not_onnx": tmp_path / "text.onnx",
        "invalid": tmp_path / "invalid.onnx",
        "opset_too_new": tmp_path / "new.onnx",
    }
    (tmp_path / "text.onnx").write_text("this is not a model")
    _write(paths["invalid"], _tiny_model(17, op="NoSuchOp"))
    _write(paths["opset_too_new"], _tiny_model(30))
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


def test_demo_runs_with_no_arguments() -> None:
    result = spa("demo")
    assert result.returncode == 0, result.stderr
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.split()}
    accuracy = {key: float(lines[key].split("accuracy")[1].split("%")[0]) for key in ("before", "after")}
    assert accuracy["before"] > 98.0
    assert accuracy["after"] > 80.0  # L1 at ratio 0.3 with no fine-tuning keeps most accuracy
    assert "removed" in lines
