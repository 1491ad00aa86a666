"""Round trip oracle: ONNX -> MLIR -> ONNX must compute the same outputs.

Every light_*.onnx graph shipped with onnx, and PyTorch exports (both
exporters) of models with residual adds, concat, grouped and depthwise
convs, attention and LayerNorm, go through import, MLIR text or bytecode on
disk, and export; the result must pass the full onnx checker, keep names and
give the same outputs in onnxruntime.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import pytest

from helpers import LIGHT_MODELS, assert_same_outputs, random_inputs, run
from spa.errors import SPAWarning
from spa.exporter import export_module
from spa.importer import import_model
from spa.ir.files import read_module, write_module


def roundtrip(model: onnx.ModelProto | Path, through: Path) -> onnx.ModelProto:
    write_module(import_model(model), through)
    exported = export_module(read_module(through))
    onnx.checker.check_model(exported, full_check=True)
    return exported


def assert_names_kept(original: onnx.ModelProto, exported: onnx.ModelProto) -> None:
    assert [i.name for i in exported.graph.input] == [i.name for i in original.graph.input]
    assert [o.name for o in exported.graph.output] == [o.name for o in original.graph.output]
    assert {t.name for t in exported.graph.initializer} >= {t.name for t in original.graph.initializer}
    assert {n.name for n in original.graph.node} - {n.name for n in exported.graph.node} <= {""}


@pytest.mark.zoo
@pytest.mark.parametrize("path", LIGHT_MODELS, ids=lambda p: p.stem)
def test_light_model_round_trips(path: Path, tmp_path: Path) -> None:
    original = onnx.load(path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SPAWarning)
        exported = roundtrip(path, tmp_path / "model.mlir")
    assert_names_kept(original, exported)
    # back at its own opset (Dropout's ratio input written back as an attribute where it came as one)
    opsets = {(o.domain, o.version) for o in exported.opset_import}
    said = [str(w.message) for w in caught if issubclass(w.category, SPAWarning)]
    assert opsets == {(o.domain, o.version) for o in original.opset_import} and not said, (opsets, said)
    ratios = [[(a.name, a.f) for a in n.attribute] for m in (original, exported) for n in m.graph.node
              if n.op_type == "Dropout"]
    assert ratios[:len(ratios) // 2] == ratios[len(ratios) // 2:]  # each Dropout with its ratio attribute
    assert exported.producer_name == original.producer_name
    feeds = random_inputs(original)
    assert_same_outputs(run(original, feeds), run(exported, feeds))



@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name", ["residual", "concat", "grouped_conv", "depthwise_residual", "attention"])
def test_pytorch_export_round_trips(name: str, dynamo: bool, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import torch_zoo

    original = torch_zoo.export(name, dynamo)
    original.metadata_props.add(key="origin", value=name)
    exported = roundtrip(original, tmp_path / "model.mlirbc")
    assert_names_kept(original, exported)
    assert {p.key: p.value for p in exported.metadata_props} == {"origin": name}
    feeds = random_inputs(original)
    assert_same_outputs(run(original, feeds), run(exported, feeds))
