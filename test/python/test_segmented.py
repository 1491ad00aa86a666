"""Running a model piece by piece (for level-by-level refits) computes what whole runs compute."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
from spa.providers.overridable import OverridableModel
from spa.providers.segmented import SegmentedModel

torch = pytest.importorskip("torch")


class _Residual(torch.nn.Module):
    """Convolutions with a residual join, a branch read twice, and a head after the last target."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.norm = torch.nn.BatchNorm2d(8)
        self.body = torch.nn.Conv2d(8, 8, 3, padding=1)
        self.side = torch.nn.Conv2d(8, 8, 1)
        self.tail = torch.nn.Conv2d(8, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x):
        h = torch.relu(self.norm(self.stem(x)))
        joined = torch.relu(self.body(h)) + self.side(h)
        return self.head(self.tail(joined).mean((2, 3)))


def _model() -> onnx.ModelProto:
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.onnx.export(_Residual().eval(), (torch.zeros(1, 3, 6, 6),), buffer, dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "n"}}, do_constant_folding=False)
    return onnx.load_from_string(buffer.getvalue())


def test_pieces_give_what_whole_runs_give_as_weights_change_between_levels() -> None:
    model = _model()
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    levels = [[convs[0].input[0]], [convs[1].input[0], convs[2].input[0]], [convs[3].input[0]]]
    names = [node.input[1] for node in convs] + ["norm.running_mean"]
    rng = np.random.default_rng(0)
    batches = [{"x": rng.standard_normal((4, 3, 6, 6)).astype(np.float32)} for _ in range(3)]
    whole = OverridableModel(model, names, [t for level in levels for t in level])
    pieces = SegmentedModel(model, names, batches)
    overrides = {name: value * 0.5 for name, value in whole.values.items() if name == "norm.running_mean"}
    for number, level in enumerate(levels):
        dense, pruned = pieces.advance(level, overrides)
        for got, want in ((dense, whole.run(batches, None, level)), (pruned, whole.run(batches, overrides, level))):
            for a, b in zip(got, want):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        # a refit of this level's layers changes weights that only later pieces read
        for conv in convs[sum(map(len, levels[:number + 1])) - len(level):][:len(level)]:
            overrides[conv.input[1]] = whole.values[conv.input[1]] * rng.uniform(0.5, 1.5)
    assert pieces.done and len(pieces.done) < len(model.graph.node)  # the head after the last target never ran


def test_a_run_from_the_first_changed_node_gives_what_whole_runs_give() -> None:
    from spa.providers.overridable import with_overridable
    from spa.providers.pieces import GraphPieces
    from spa.providers.suffix import SuffixRun, first_reader

    model = _model()
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    names = [node.input[1] for node in convs] + ["norm.running_mean", "head.weight"]
    pieces = GraphPieces(with_overridable(model, names))
    outputs = [o.name for o in model.graph.output]
    rng = np.random.default_rng(1)
    batches = [{"x": rng.standard_normal((4, 3, 6, 6)).astype(np.float32)} for _ in range(2)]
    whole = OverridableModel(model, names)
    cuts = []
    # each changed set alone: the stem (nothing before it), the side branch (the skip from the stem's
    # output crosses the cut), the tail, and the head after every conv
    for changed in ([convs[0].input[1]], [convs[2].input[1]], [convs[3].input[1]], ["head.weight"]):
        rest = SuffixRun(pieces, outputs, changed, batches)
        cuts.append(first_reader(pieces, changed))
        overrides = {name: whole.values[name] * rng.uniform(0.5, 1.5, whole.values[name].shape).astype(np.float32)
                     for name in changed}
        for a, b in zip(rest.run(overrides), whole.run(batches, overrides)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert cuts[0] < cuts[1] < cuts[2] < cuts[3]  # later changes run less of the model
    dense = SuffixRun(pieces, outputs, [], batches)  # nothing changed: every node before the (empty) rest
    for a, b in zip(dense.run({}), whole.run(batches, {})):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_outputs_made_before_the_cut_given_or_constant_come_through() -> None:
    from onnx import TensorProto, helper, numpy_helper
    from spa.providers.overridable import with_overridable
    from spa.providers.pieces import GraphPieces
    from spa.providers.suffix import SuffixRun

    rng = np.random.default_rng(2)
    first, second = rng.standard_normal((4, 5)).astype(np.float32), rng.standard_normal((5, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "first"], ["h"]), helper.make_node("Relu", ["h"], ["early"]),
         helper.make_node("MatMul", ["early", "second"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in ("y", "early", "scale", "x")],
        [numpy_helper.from_array(first, "first"), numpy_helper.from_array(second, "second"),
         numpy_helper.from_array(np.float32([2.0]), "scale")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    names = ["first", "second"]
    batches = [{"x": rng.standard_normal((3, 4)).astype(np.float32)} for _ in range(2)]
    rest = SuffixRun(GraphPieces(with_overridable(model, names)), ["y", "early", "scale", "x"], ["second"], batches)
    assert rest.failure is None and rest.late == ["y"]  # only the last MatMul runs per measurement
    overrides = {"second": second * 0.5}
    got = rest.run(overrides)
    x = np.concatenate([b["x"] for b in batches])
    early = np.maximum(x @ first, 0)
    joined = np.float32([2.0, 2.0])  # every output is joined along the batches, a constant one too
    for a, b, c in zip(got, [early @ (second * 0.5), early, joined, x], OverridableModel(model, names).run(
            batches, overrides)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a, c, rtol=1e-5, atol=1e-6)  # as the whole model's run gives them
