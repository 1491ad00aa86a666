"""The native side: spa-opt's registrations and SPA's dialects inside the Python bindings."""

from __future__ import annotations

import json
import subprocess

from mlir import ir
from mlir.passmanager import PassManager

import numpy as np
import onnx
from helpers import LIGHT_MODELS
from onnx import helper, numpy_helper
from spa.importer import import_model
from spa.tools import tool_path


def test_spa_opt_lists_onnx_and_spa_dialects() -> None:
    result = subprocess.run([str(tool_path("spa-opt")), "--help"], capture_output=True, text=True, check=True)
    dialects = next(line for line in result.stdout.splitlines() if line.startswith("Available Dialects:"))
    names = {d.strip() for d in dialects.split(":", 1)[1].split(",")}
    assert {"onnx", "spa", "func"} <= names


def test_spa_opt_reads_what_the_importer_writes(tmp_path) -> None:
    from spa.ir.files import write_module

    path = tmp_path / "model.mlir"
    write_module(import_model(LIGHT_MODELS[0]), path)
    result = subprocess.run([str(tool_path("spa-opt")), str(path), "--mlir-print-op-generic"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert '"onnx.Conv"' in result.stdout


def test_in_process_pass_manager_runs_spa_passes_on_an_imported_module(tmp_path) -> None:
    """SPA's passes are registered in the bindings: the coupling analysis runs in-process on an imported
    model and reports the conv's output channels as a group."""
    vector = helper.make_tensor_value_info
    weight = numpy_helper.from_array(np.ones((4, 3, 1, 1), np.float32), "w")
    head = numpy_helper.from_array(np.ones((2, 4, 1, 1), np.float32), "v")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
                               helper.make_node("Conv", ["r", "v"], ["y"])], "convs",
                              [vector("x", onnx.TensorProto.FLOAT, [1, 3, 4, 4])],
                              [vector("y", onnx.TensorProto.FLOAT, [1, 2, 4, 4])], [weight, head])
    module = import_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    report = tmp_path / "groups.json"
    with module.context:
        PassManager.parse(f"builtin.module(spa-channel-coupling{{output={report}}})").run(module.operation)
        assert module.operation.verify()
    groups = json.loads(report.read_text())["groups"]
    hidden = next(g for g in groups if any(m["tensor"] == "w" and m["axis"] == 0 for m in g["members"]))
    assert hidden["channels"] == 4 and hidden["prunable"]
    assert {(m["tensor"], m["axis"]) for m in hidden["members"]} == {("w", 0), ("v", 1)}


def test_onnx_ops_are_registered_in_the_bindings() -> None:
    module = import_model(LIGHT_MODELS[0])
    assert module.context.is_registered_operation("onnx.Conv")
    assert module.context.is_registered_operation("onnx.Custom")
    with module.context:
        assert str(ir.Type.parse("!onnx.seq<tensor<2xf32>>")) == "!onnx.seq<tensor<2xf32>>"
