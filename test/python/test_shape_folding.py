"""spa.load folds static shape arithmetic, and nothing else: weights keep their names and their layers."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import spa
import spa.torch
from spa.importer import ImportConfig

F = onnx.TensorProto.FLOAT


def _two_layers_sharing_an_equal_bias() -> onnx.ModelProto:
    """Two hidden layers whose (equal, zero) biases the exporter shares through Identity copies,
    a ConstantOfShape weight placeholder, and a Reshape whose target is computed from Shape."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 6)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal((6, 6)).astype(np.float32), "w2"),
             numpy_helper.from_array(np.zeros(6, np.float32), "bias"),
             numpy_helper.from_array(np.array([6, 3], np.int64), "fill_shape"),
             numpy_helper.from_array(np.array([0], np.int64), "zero"),
             numpy_helper.from_array(np.array([-1], np.int64), "rest")]
    nodes = [
        helper.make_node("Identity", ["bias"], ["bias_a"]),
        helper.make_node("Identity", ["bias"], ["bias_b"]),
        helper.make_node("MatMul", ["x", "w1"], ["h1"]), helper.make_node("Add", ["h1", "bias_a"], ["a1"]),
        helper.make_node("Relu", ["a1"], ["r1"]),
        helper.make_node("MatMul", ["r1", "w2"], ["h2"]), helper.make_node("Add", ["h2", "bias_b"], ["a2"]),
        helper.make_node("Relu", ["a2"], ["r2"]),
        helper.make_node("ConstantOfShape", ["fill_shape"], ["w3"],
                         value=numpy_helper.from_array(np.array([0.5], np.float32))),
        helper.make_node("MatMul", ["r2", "w3"], ["h3"]),
        # target = Concat(Shape(h3)[0:1], [-1]): computed, but static here
        helper.make_node("Shape", ["h3"], ["s"]), helper.make_node("Gather", ["s", "zero"], ["batch"], axis=0),
        helper.make_node("Concat", ["batch", "rest"], ["target"], axis=0),
        helper.make_node("Reshape", ["h3", "target"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "shared", [helper.make_tensor_value_info("x", F, [2, 4])],
                              [helper.make_tensor_value_info("y", F, [2, 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_weights_shared_by_value_keep_their_own_layers_and_placeholders_stay() -> None:
    model = spa.load(_two_layers_sharing_an_equal_bias())
    hidden = [g for g in model.coupling_groups() if g.channels == 6]
    assert len(hidden) == 2, [g.details() for g in hidden]  # not merged into one through the shared bias
    assert all(g.prunable for g in hidden)
    exported = model.to_onnx()
    ops = [n.op_type for n in exported.graph.node]
    assert "ConstantOfShape" in ops  # a float fill is a weight, never folded
    assert not {"Shape", "Gather", "Concat"} & set(ops)  # the static target was folded, and its arithmetic dropped
    used = {name for node in exported.graph.node for name in node.input}
    assert all(t.name in used for t in exported.graph.initializer)
    assert {"w1", "w2", "bias"} <= {t.name for t in exported.graph.initializer}


def test_a_plain_import_keeps_the_shape_arithmetic() -> None:
    exported = spa.load(_two_layers_sharing_an_equal_bias(), ImportConfig()).to_onnx()
    assert "Shape" in [n.op_type for n in exported.graph.node]


def test_big_integer_initializers_are_left_alone() -> None:
    """An integer table (an attention's relative position index) is detached during import;
    folding must not read it."""
    index = numpy_helper.from_array(np.arange(2048, dtype=np.int64) % 4, "index")
    table = numpy_helper.from_array(np.linspace(0, 1, 4, dtype=np.float32), "table")
    nodes = [helper.make_node("Gather", ["table", "index"], ["bias"], axis=0),
             helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Reshape", ["x", "s"], ["x2"]),
             helper.make_node("Add", ["x2", "bias"], ["y"])]
    graph = helper.make_graph(nodes, "tables", [helper.make_tensor_value_info("x", F, [2, 2048])],
                              [helper.make_tensor_value_info("y", F, [2, 2048])], [index, table])
    model = spa.load(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    exported = {t.name: numpy_helper.to_array(t) for t in model.to_onnx().graph.initializer}
    np.testing.assert_array_equal(exported["index"], np.arange(2048) % 4)


def test_patch_tokens_and_a_class_token_on_a_dynamic_batch_are_prunable() -> None:
    """timm's patch embedding, `conv(x).flatten(2).transpose(1, 2)`, reads (batch, C) from Shape with a
    dynamic batch, and `cls_token.expand(batch, -1, -1)` exports as Where(Equal(target, -1), 1, target):
    the static entries become constants, the channels one prunable group, and the pruned model
    matches the zero-mask oracle."""
    torch = pytest.importorskip("torch")
    from helpers import run
    from oracle import masked_model, random_plan
    from spa.groups import plan_to_dict

    class Tokens(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Conv2d(3, 8, 4, stride=4)
            self.cls_token = torch.nn.Parameter(torch.randn(1, 1, 8))
            self.head = torch.nn.Linear(8, 3)

        def forward(self, x):
            tokens = self.proj(x).flatten(2).transpose(1, 2)
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
            return self.head(tokens.relu())

    torch.manual_seed(0)
    net = Tokens().eval()
    model = spa.load(spa.torch.export(net, torch.randn(2, 3, 8, 8)))
    channels = next(g for g in model.coupling_groups() if g.channels == 8)
    assert channels.prunable, channels.details()
    assert {"proj.weight", "cls_token", "head.weight"} <= {m.tensor for m in channels.members}
    plan = random_plan(model.coupling_groups(), 0.5)
    masked = masked_model(model.to_onnx(), plan_to_dict(plan, model.coupling_groups()))
    model.prune(plan)
    feeds = {"input_0": np.random.default_rng(1).standard_normal((3, 3, 8, 8)).astype(np.float32)}
    np.testing.assert_allclose(run(model.to_onnx(), feeds)[0], run(masked, feeds)[0], rtol=1e-5, atol=1e-5)


def test_spatial_axes_merged_on_a_dynamic_batch_prune_like_the_oracle() -> None:
    """PVT-style `y.reshape(x.shape[0], H * W, -1)` on a dynamic batch: the batch is a common prefix, the
    spatial axes regroup in front of the channels, and pruning them matches the zero-mask oracle."""
    torch = pytest.importorskip("torch")
    from helpers import run
    from oracle import prune_and_mask

    class Tokens(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Linear(3, 8)
            self.head = torch.nn.Linear(8, 2)

        def forward(self, x):
            return self.head(self.embed(x).relu().reshape(x.shape[0], 16, -1))

    torch.manual_seed(0)
    source = spa.torch.export(Tokens().eval(), torch.randn(2, 4, 4, 3))
    assert next(g for g in spa.load(source).coupling_groups() if g.channels == 8).prunable
    pruned, masked, plan, _ = prune_and_mask(source, 0.5)
    assert plan["groups"] and plan["groups"][0]["removed"]
    feeds = {"input_0": np.random.default_rng(0).standard_normal((3, 4, 4, 3)).astype(np.float32)}
    np.testing.assert_allclose(run(pruned, feeds)[0], run(masked, feeds)[0], rtol=1e-5, atol=1e-5)


def test_pads_computed_from_constants_are_folded_on_a_fixed_batch() -> None:
    """TorchScript writes F.pad's pads as Concat/Reshape/Slice/Transpose of constants; with a fixed batch
    there is no Shape in the graph, yet they must still fold so the channels around the Pad stay prunable."""
    import io

    torch = pytest.importorskip("torch")

    class Stem(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 4, 2)

        def forward(self, x):
            return self.b(torch.nn.functional.pad(torch.relu(self.a(x)), (0, 1, 0, 1)))

    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.onnx.export(Stem().eval(), (torch.randn(1, 3, 10, 10),), buffer, dynamo=False, opset_version=17,
                      input_names=["x"])
    source = onnx.load_from_string(buffer.getvalue())
    pad = next(n for n in source.graph.node if n.op_type == "Pad")
    assert pad.input[1] not in {t.name for t in source.graph.initializer} and not any(
        n.op_type == "Shape" for n in source.graph.node)  # computed pads, no shape read
    model = spa.load(source)
    assert [g.prunable for g in model.coupling_groups() if any(m.tensor == "a.weight" for m in g.members)] == [True]
    applied = model.prune(model.plan("l2", ratio=0.5, quiet=True))  # verified on write
    assert sum(map(len, applied.removed.values())) == 4 and not applied.blocked
