"""The native side: spa-opt's registrations and SPA's dialects inside the Python bindings."""

from __future__ import annotations

import subprocess

from mlir import ir
from mlir.passmanager import PassManager

from conftest import LIGHT_MODELS
from spa.importer import import_model
from spa.tools import tool_path


def test_spa_opt_lists_onnx_and_spa_dialects() -> None:
    result = subprocess.run([str(tool_path("spa-opt")), "--help"], capture_output=True, text=True, check=True)
    dialects = next(line for line in result.stdout.splitlines() if line.startswith("Available Dialects:"))
    names = {d.strip() for d in dialects.split(":", 1)[1].split(",")}
    assert {"onnx", "spa", "func"} <= names


def test_spa_opt_reads_what_the_importer_writes(tmp_path) -> None:
    from spa.mlir_files import write_module

    path = tmp_path / "model.mlir"
    write_module(import_model(LIGHT_MODELS[0]), path)
    result = subprocess.run([str(tool_path("spa-opt")), str(path), "--mlir-print-op-generic"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert '"onnx.Conv"' in result.stdout


def test_in_process_pass_manager_runs_on_imported_module() -> None:
    module = import_model(LIGHT_MODELS[0])
    with module.context:
        count_before = len(module.body.operations[0].regions[0].blocks[0].operations)
        PassManager.parse("builtin.module(func.func(cse))").run(module.operation)
        assert module.operation.verify()
        assert len(module.body.operations[0].regions[0].blocks[0].operations) <= count_before


def test_onnx_ops_are_registered_in_the_bindings() -> None:
    module = import_model(LIGHT_MODELS[0])
    assert module.context.is_registered_operation("onnx.Conv")
    assert module.context.is_registered_operation("onnx.Custom")
    with module.context:
        assert str(ir.Type.parse("!onnx.seq<tensor<2xf32>>")) == "!onnx.seq<tensor<2xf32>>"
