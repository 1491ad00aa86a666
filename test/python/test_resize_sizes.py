"""Resize to explicit sizes (a static `F.interpolate(size=...)`, as in segmentation heads) keeps the
channels when its channel entry is the input's own count: the channels around it are prunable, and
the written model, verified against the zero-mask oracle on write, keeps the sizes consistent."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
import spa
from helpers import run

torch = pytest.importorskip("torch")


class _Head(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.b = torch.nn.Conv2d(16, 4, 1)

    def forward(self, x):
        features = torch.relu(self.a(x))
        return self.b(torch.nn.functional.interpolate(features, size=(12, 12), mode="bilinear"))


def _export(dynamo: bool, dynamic_batch: bool) -> onnx.ModelProto:
    torch.manual_seed(0)
    net, x = _Head().eval(), torch.randn(1, 3, 12, 12)
    if dynamo:
        shapes = ({0: torch.export.Dim("batch", min=1, max=8)},) if dynamic_batch else None
        return torch.onnx.export(net, (x,), dynamo=True, opset_version=18, input_names=["x"],
                                 dynamic_shapes=shapes, verbose=False).model_proto
    buffer = io.BytesIO()
    torch.onnx.export(net, (x,), buffer, dynamo=False, opset_version=17, input_names=["x"],
                      dynamic_axes={"x": {0: "batch"}} if dynamic_batch else None)
    return onnx.load_from_string(buffer.getvalue())


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("dynamic_batch", [False, True], ids=["batch1", "batch"])
def test_channels_through_a_resize_to_explicit_sizes_are_pruned(dynamo: bool, dynamic_batch: bool) -> None:
    source = _export(dynamo, dynamic_batch)
    assert any(n.op_type == "Resize" and len(n.input) > 3 and n.input[3] for n in source.graph.node)
    model = spa.load(source)
    groups = model.coupling_groups()
    assert [g.prunable for g in groups if any(m.tensor.endswith("a.weight") for m in g.members)] == [True]
    applied = model.prune(model.plan("l2", ratio=0.5, quiet=True))  # verified on write (zero-mask oracle)
    assert sum(map(len, applied.removed.values())) == 8 and not applied.blocked
    feeds = {"x": np.random.default_rng(0).standard_normal((1, 3, 12, 12)).astype(np.float32)}
    assert run(model.to_onnx(), feeds)[0].shape == (1, 4, 12, 12)
