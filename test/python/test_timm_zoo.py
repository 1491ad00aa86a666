"""timm architectures exported with a dynamic batch (as spa.torch exports): every group but the classifier
output is prunable, and a random plan prunes like the zero-mask oracle (random weights, no download).

Which timm models still have blocked groups, and why, is measured by benchmarks/timm_coverage.py.
"""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest

from helpers import run
from oracle import prune_and_mask

torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

import spa.torch

pytestmark = pytest.mark.zoo  # the full tier only (see pyproject's markers)

FULLY_PRUNABLE = ["resnet18", "efficientnet_b0", "mobilenetv3_small_100", "convnext_atto", "regnetx_002",
                  "ghostnet_100", "deit_tiny_patch16_224", "dla34", "resnest14d", "poolformer_s12"]


@pytest.mark.parametrize("name", FULLY_PRUNABLE)
def test_timm_model_is_prunable_and_prunes_like_the_oracle(name: str) -> None:
    torch.manual_seed(0)
    net = timm.create_model(name, pretrained=False, num_classes=10).eval()
    size = net.default_cfg.get("input_size", (3, 224, 224))
    original = spa.torch.export(net, torch.randn(1, *size))
    blocked = [g.details().splitlines()[0] for g in spa.load(original).coupling_groups() if not g.prunable]
    assert len(blocked) == 1 and "graph output" in blocked[0], blocked
    pruned, masked, plan, _ = prune_and_mask(original)
    onnx.checker.check_model(pruned, full_check=True)
    assert sum(len(g["removed"]) for g in plan["groups"]) > 0
    feeds = {"input_0": np.random.default_rng(1).standard_normal((2, *size)).astype(np.float32)}
    want, got = run(masked, feeds), run(pruned, feeds)
    for expected, actual in zip(want, got):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(expected).max())))


def test_static_batch_levit_prunes_through_folded_shape_constants() -> None:
    """With a static batch, LeViT's reshape targets fold to Constants written with value_ints; they are
    constant targets like any other (3 of 51 groups were prunable before), and pruning matches the oracle."""
    torch.manual_seed(0)
    net = timm.create_model("levit_128s", pretrained=False, num_classes=10).eval()
    buffer = io.BytesIO()
    torch.onnx.export(net, torch.randn(1, 3, 224, 224), buffer, dynamo=False, do_constant_folding=False)
    original = onnx.load_from_string(buffer.getvalue())
    blocked = [g.details().splitlines()[0] for g in spa.load(original).coupling_groups() if not g.prunable]
    assert len(blocked) == 1 and "graph output" in blocked[0], blocked
    pruned, masked, plan, _ = prune_and_mask(original)
    assert sum(len(g["removed"]) for g in plan["groups"]) > 0
    feeds = {original.graph.input[0].name: np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)}
    want, got = run(masked, feeds), run(pruned, feeds)
    for expected, actual in zip(want, got):  # LeViT's random-weight outputs are ~1e-5: scale-relative
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))


def test_static_batch_swin_prunes_like_the_oracle() -> None:
    """Swin adds a relative-position bias (a constant view with heads on axis 1) to the attention scores, so
    attn @ v would carry the bias's heads and v's head dims on two axes; both are blocked rather than one
    dropped (which left proj out of the head-dim group and pruned Swin into an inconsistent model)."""
    torch.manual_seed(0)
    net = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, num_classes=10).eval()
    buffer = io.BytesIO()
    torch.onnx.export(net, torch.randn(1, 3, 224, 224), buffer, dynamo=False, do_constant_folding=False)
    original = onnx.load_from_string(buffer.getvalue())
    pruned, masked, plan, _ = prune_and_mask(original)
    assert sum(len(g["removed"]) for g in plan["groups"]) > 0  # the MLPs and embedding widths still prune
    feeds = {original.graph.input[0].name: np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)}
    for expected, actual in zip(run(masked, feeds), run(pruned, feeds)):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * float(np.abs(expected).max()))
