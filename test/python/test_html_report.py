"""`spa report`: the layer graph it draws, the figures it shows, and the page in headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from browser import parsed, rendered_dom, screenshot
from onnx import TensorProto, helper, numpy_helper

import spa
from spa.cli import main
from spa.data import demo_model_path, load_demo_images
from spa.groups import plan_to_dict
from spa.html_report.contents import Side, removed_by_shapes, report_contents
from spa.html_report.layer_graph import layer_graph
from spa.latency import attribute_to, node_latencies
from spa.verify.inputs import generated_inputs

pytestmark = pytest.mark.zoo  # the full tier only (see pyproject's markers)


def _residual_graph() -> onnx.ModelProto:
    """conv_a -> relu -> conv_b, a residual add of both, then conv_c; a Reshape fed by shape arithmetic."""
    rng = np.random.default_rng(0)
    weights = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name)
               for name, shape in (("wa", (4, 3, 1, 1)), ("wb", (4, 4, 1, 1)), ("wc", (2, 4, 1, 1)))]
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], name="conv_a"),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "wb"], ["b"], name="conv_b"),
             helper.make_node("Add", ["r", "b"], ["s"], name="add"),
             helper.make_node("Shape", ["s"], ["shape"], name="shape"),
             helper.make_node("Reshape", ["s", "shape"], ["same"], name="reshape"),
             helper.make_node("Conv", ["same", "wc"], ["y"], name="conv_c")]
    graph = helper.make_graph(nodes, "residual", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_layer_graph_draws_layers_and_junctions_and_passes_through_the_rest() -> None:
    graph = layer_graph(_residual_graph())
    assert [layer.id for layer in graph.layers] == ["conv_a", "conv_b", "conv_c"]
    assert graph.junctions == [("add", "Add")]  # the Reshape's second input is shape arithmetic, not data
    assert set(graph.edges) == {("input:x", "conv_a"), ("conv_a", "conv_b"), ("conv_a", "add"), ("conv_b", "add"),
                                ("add", "conv_c"), ("conv_c", "output:y")}


def _demo_plan(ratio: float = 0.4):
    original = spa.load(demo_model_path())
    plan = original.plan(criterion="l1", ratio=ratio)
    pruned = spa.load(demo_model_path())
    pruned.prune(plan)
    return original, pruned, plan


def test_figures_are_those_of_the_pruned_model() -> None:
    original, pruned, plan = _demo_plan()
    groups = original.coupling_groups()
    before, after = Side.of(original), Side.of(pruned)
    contents = report_contents("mnist", groups, before, after, plan_to_dict(plan, groups))
    weights = pruned.weights()
    for row in contents["layers"]:
        assert row["shape_after"] == list(weights[row["weight"]].shape)
        assert row["params_after"] <= row["params_before"]
    assert sum(row["macs_after"] for row in contents["layers"]) == pruned.stats().macs
    assert contents["totals"]["after"]["params"] == pruned.stats().params
    shown = {entry["id"]: entry["removed"] or 0 for entry in contents["groups"]}
    assert shown == {group.id: len(plan.removed.get(group.id, ())) for group in groups}
    # --pruned without a plan reads the same counts back from the shapes
    assert {g: n for g, n in removed_by_shapes(groups, before, after).items()} == shown


def test_layer_latency_comes_from_the_profiler_under_the_layers_names() -> None:
    model = onnx.load(demo_model_path())
    profile = node_latencies(model, generated_inputs(model), repeats=5)
    layers = {layer.id: (layer.op, *layer.weights) for layer in layer_graph(model).layers}
    owned, other = attribute_to(profile, model.graph, layers)
    # onnxruntime fuses Conv+Relu into NCHWc convolutions named after the Relu's output, and Gemm+Relu
    # into "fused NAME"; the pooling, flatten and input scaling stay the other nodes' time
    assert set(owned) == set(layers) and all(t > 0 for t in owned.values())
    assert 0 < other < sum(profile.times.values())
    assert sum(owned.values()) + other == pytest.approx(sum(profile.times.values()))


def _torchvision(name: str, folder: Path) -> Path:
    """torchvision's `name` (random weights: the report is about structure) exported to ONNX."""
    torch = pytest.importorskip("torch")
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    path = folder / f"{name}.onnx"
    torch.onnx.export(getattr(torchvision.models, name)(weights=None).eval(), (torch.randn(1, 3, 224, 224),),
                      str(path), dynamo=False, input_names=["image"], output_names=["logits"])
    return path


def _blank(path: Path) -> bool:
    from PIL import Image

    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    return pixels.std() < 10 or len(np.unique(pixels.reshape(-1, 3)[::7], axis=0)) < 50


def test_report_of_a_real_model_in_headless_chromium(tmp_path: Path) -> None:
    source = _torchvision("resnet18", tmp_path)
    report, plan_path = tmp_path / "report.html", tmp_path / "plan.json"
    assert main(["--quiet", "prune", str(source), "-o", str(tmp_path / "pruned.onnx"), "--ratio", "0.3",
                 "--plan-out", str(plan_path), "--report", str(report)]) == 0
    groups = spa.load(source).coupling_groups()
    blocked = next(group for group in groups if not group.prunable)
    page = parsed(rendered_dom(f"{report.as_uri()}#group={blocked.id}"))
    assert page.body.get("data-ready") == "true", page.body
    assert not [key for key in page.body if key.endswith("-error")], page.body
    assert int(page.body["data-groups"]) == len(groups)
    assert int(page.body["data-layers"]) == 21  # 20 convolutions and the classifier
    assert page.body["data-selected-group"] == str(blocked.id)
    assert blocked.reasons[0] in page.text_by_id["selection"]  # "graph output 'logits'"
    assert "graph output 'logits'" in page.text_by_id["selection"]
    plan = json.loads(plan_path.read_text())
    pruned = spa.load(tmp_path / "pruned.onnx").weights()
    first = next(row for name, row in page.rows.items() if name.endswith("conv1/Conv") and "layer1.0" in name)
    layer = next(layer for layer in layer_graph(spa.load(source).to_onnx()).layers if layer.id.endswith("layer1.0/conv1/Conv"))
    assert first[3:5] == ["64", str(pruned[layer.main_weight].shape[0])] and first[4] != "64"
    assert plan["groups"], "nothing was pruned"
    shot = screenshot(report.as_uri(), tmp_path / "report.png")
    assert not _blank(shot)


def test_sensitivity_curves_are_drawn(tmp_path: Path) -> None:
    images, _ = load_demo_images()
    np.savez(tmp_path / "calibration.npz", image=images[:64])
    report, plan_path = tmp_path / "report.html", tmp_path / "plan.json"
    assert main(["--quiet", "prune", str(demo_model_path()), "-o", str(tmp_path / "pruned.onnx"),
                 "--target-flops", "0.4", "--allocation", "sensitivity", "--calibration",
                 str(tmp_path / "calibration.npz"), "--plan-out", str(plan_path)]) == 0
    table = json.loads(plan_path.read_text())["sensitivity"]
    assert table and all(len(entry["counts"]) == len(entry["damages"]) > 1 for entry in table.values())
    assert main(["report", str(demo_model_path()), "--plan", str(plan_path), "-o", str(report), "--no-latency"]) == 0
    page = parsed(rendered_dom(report.as_uri()))
    assert page.body.get("data-curves") == str(len(table))
    assert "sensitivity table" in page.text_by_id["data-used"]


def test_report_of_a_pruned_file_and_bad_input(tmp_path: Path, capsys) -> None:
    original, pruned, _ = _demo_plan()
    pruned.save(tmp_path / "pruned.onnx")
    assert main(["report", str(demo_model_path()), "--pruned", str(tmp_path / "pruned.onnx"),
                 "-o", str(tmp_path / "r.html")]) == 0
    assert parsed((tmp_path / "r.html").read_text(encoding="utf-8")).fetches == []  # scripts and styles inline
    page = parsed(rendered_dom((tmp_path / "r.html").as_uri()))
    weights = pruned.weights()
    assert {name: cells[4] for name, cells in page.rows.items()} == \
        {layer.id: str(weights[layer.main_weight].shape[layer.out_axis]) for layer in layer_graph(onnx.load(
            demo_model_path())).layers}
    (tmp_path / "other.json").write_text(json.dumps({"groups": [{"id": 0, "channels": 999, "removed": [1]}]}))
    capsys.readouterr()
    assert main(["report", str(demo_model_path()), "--plan", str(tmp_path / "other.json"),
                 "-o", str(tmp_path / "bad.html")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "other.json" in error and "another model" in error
    assert not (tmp_path / "bad.html").exists()


@pytest.mark.slow
def test_report_of_a_vision_transformer_is_drawn_whole(tmp_path: Path) -> None:
    source = _torchvision("vit_b_16", tmp_path)
    report = tmp_path / "vit.html"
    assert main(["--quiet", "prune", str(source), "-o", str(tmp_path / "pruned.onnx"), "--ratio", "0.3",
                 "--report", str(report)]) == 0
    page = parsed(rendered_dom(report.as_uri()))
    assert page.body.get("data-ready") == "true" and not [k for k in page.body if k.endswith("-error")]
    assert int(page.body["data-layers"]) == 52 and int(page.body["data-nodes"]) > 100  # layers and junctions
    assert not _blank(screenshot(report.as_uri(), tmp_path / "vit.png"))
