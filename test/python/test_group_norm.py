"""torch's GroupNorm: fused to GroupNormalization on import (channels followed, the same positions removed in
every group), written back as torch's primitives below opset 21, and patched back into the torch module."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from helpers import random_inputs, run

torch = pytest.importorskip("torch")

import spa
import spa.torch


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.gn = torch.nn.GroupNorm(4, 16)
        self.c2 = torch.nn.Conv2d(16, 16, 3, padding=1)
        self.gn2 = torch.nn.GroupNorm(1, 16)
        self.head = torch.nn.Linear(16, 5)

    def forward(self, x):
        y = torch.relu(self.gn(self.c1(x)))
        y = y + torch.relu(self.gn2(self.c2(y)))
        return self.head(y.mean((2, 3)))


def _net() -> Net:
    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():  # affine parameters that matter, and distinct (torch would share equal ones)
        for norm in (net.gn, net.gn2):
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
    return net


def test_group_norm_is_one_node_whose_groups_keep_their_structure() -> None:
    model = spa.load(spa.torch.export(_net(), torch.randn(2, 3, 8, 8)))
    assert str(model.module).count('"onnx.GroupNormalization"') == 2
    groups = {g.id: g for g in model.coupling_groups()}
    blocked = [g.details().splitlines()[0] for g in groups.values() if not g.prunable]
    assert len(blocked) == 1 and "graph output" in blocked[0], blocked
    # GroupNorm(4, 16) makes channel j of each group one unit: 4 units of 4 positions
    grouped = next(g for g in groups.values() if "c1.weight" in g.details())
    assert grouped.channels == 4 and "16 positions (4 per channel)" in grouped.details()
    assert not grouped.function_preserving  # the statistics change with the channels


@pytest.mark.parametrize("opset", [17, 20, 21])
def test_round_trip_writes_torchs_primitives_below_opset_21(opset: int) -> None:
    source = spa.torch.export(_net(), torch.randn(2, 3, 8, 8))
    exported = spa.load(source).to_onnx(opset=opset)
    onnx.checker.check_model(exported, full_check=True)
    kinds = {n.op_type for n in exported.graph.node}
    assert ("GroupNormalization" in kinds) == (opset >= 21)
    feeds = random_inputs(source)
    np.testing.assert_allclose(run(exported, feeds)[0], run(source, feeds)[0], rtol=1e-5, atol=1e-5)


def test_pruned_group_norms_come_back_as_torch_group_norms() -> None:
    net = _net()
    x = torch.randn(2, 3, 8, 8)
    result = spa.torch.prune(net, x, criterion="l1", ratio=0.5)
    pruned = result.module
    assert result.patched and result.onnx_model.opset_import[0].version == 20  # torch's own opset
    assert (pruned.gn.num_groups, pruned.gn.num_channels, pruned.gn2.num_groups, pruned.gn2.num_channels) == (4, 8, 1, 8)
    # the same positions left every group of gn: kept rows of c1 are j + 4 g for the same j in each g
    kept = [next(i for i in range(16) if torch.equal(row, net.c1.weight[i])) for row in pruned.c1.weight]
    within = [sorted(k % 4 for k in kept if k // 4 == g) for g in range(4)]
    assert all(w == within[0] for w in within) and len(within[0]) == 2
    fresh = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        got = pruned(fresh).numpy()
    want = run(result.onnx_model, {"input_0": fresh.numpy()})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # torch's GroupNorm on the kept channels is an independent reference for the pruned ONNX model
    reference = Net().eval()
    reference.c1, reference.c2, reference.head = pruned.c1, pruned.c2, pruned.head
    reference.gn = torch.nn.GroupNorm(4, 8).eval()
    reference.gn2 = torch.nn.GroupNorm(1, 8).eval()
    with torch.no_grad():
        for mine, theirs in ((reference.gn, net.gn), (reference.gn2, net.gn2)):
            mine.weight.copy_(theirs.weight[kept])
            mine.bias.copy_(theirs.bias[kept])
        np.testing.assert_allclose(reference(fresh).numpy(), want, rtol=1e-4, atol=1e-5)
