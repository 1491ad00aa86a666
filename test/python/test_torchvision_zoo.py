"""The torchvision architectures of the zoo: each prunes at ratio 0.3 into a valid
model that matches the zero-mask oracle (random weights; TorchScript export, and
the dynamo exporter for a few).

The slowest exports are marked slow; `pytest -m slow` runs them.
"""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest

from helpers import random_inputs, run
from oracle import prune_and_mask

pytestmark = pytest.mark.zoo  # the full tier only (see pyproject's markers)

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

FAST = ["resnet18", "resnet50", "resnext50_32x4d", "densenet121", "squeezenet1_1", "googlenet", "inception_v3",
        "mobilenet_v2", "mobilenet_v3_large", "mnasnet1_0", "shufflenet_v2_x1_0", "efficientnet_b0",
        "regnet_y_400mf", "convnext_tiny"]
SLOW = ["alexnet", "vgg16_bn", "vit_b_16", "swin_t", "maxvit_t"]


DYNAMO_FAST = ["resnet18", "shufflenet_v2_x1_0"]
DYNAMO_SLOW = ["densenet121", "efficientnet_b0", "vit_b_16"]


def export(name: str, dynamo: bool = False) -> onnx.ModelProto:
    torch.manual_seed(0)
    options = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
    module = getattr(torchvision.models, name)(weights=None, **options).eval()
    size = 299 if name == "inception_v3" else 224
    example = (torch.randn(1, 3, size, size),)
    if dynamo:
        return torch.onnx.export(module, example, dynamo=True, verbose=False).model_proto
    buffer = io.BytesIO()
    torch.onnx.export(module, example, buffer, dynamo=False)
    return onnx.load_from_string(buffer.getvalue())


def check(name: str, dynamo: bool = False) -> None:
    original = export(name, dynamo)
    pruned, masked, plan, groups = prune_and_mask(original)
    onnx.checker.check_model(pruned, full_check=True)
    assert sum(len(g["removed"]) for g in plan["groups"]) > 0
    feeds = random_inputs(original)
    want, got = run(masked, feeds), run(pruned, feeds)
    assert [w.shape for w in want] == [o.shape for o in run(original, feeds)]
    for expected, actual in zip(want, got):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(expected).max())))


@pytest.mark.parametrize("name", FAST)
def test_torchvision_model_prunes_like_the_oracle(name: str) -> None:
    check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_large_torchvision_model_prunes_like_the_oracle(name: str) -> None:
    check(name)


@pytest.mark.parametrize("name", DYNAMO_FAST)
def test_dynamo_export_prunes_like_the_oracle(name: str) -> None:
    check(name, dynamo=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", DYNAMO_SLOW)
def test_large_dynamo_export_prunes_like_the_oracle(name: str) -> None:
    check(name, dynamo=True)
