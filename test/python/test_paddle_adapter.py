"""spa.paddle.prune: the pruned Paddle layer matches the pruned ONNX model and the zero-mask oracle."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

paddle = pytest.importorskip("paddle")
pytest.importorskip("paddle2onnx")

import spa
import spa.paddle
from oracle import masked_model
from spa.errors import SPAError
from spa.groups import plan_to_dict

pytestmark = pytest.mark.zoo  # the full tier only (see pyproject's markers)


class ResidualNet(paddle.nn.Layer):
    """Conv + BatchNorm, a depthwise/pointwise residual branch, LayerNorm and two Linears."""

    def __init__(self, layer_norm: bool = True) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 16, 3, padding=1)
        self.bn = paddle.nn.BatchNorm2D(16)
        self.depthwise = paddle.nn.Conv2D(16, 16, 3, padding=1, groups=16)
        self.pointwise = paddle.nn.Conv2D(16, 16, 1)
        self.norm = paddle.nn.LayerNorm(16) if layer_norm else paddle.nn.Identity()
        self.hidden = paddle.nn.Linear(16, 24)
        self.head = paddle.nn.Linear(24, 5)

    def forward(self, x):
        x = paddle.nn.functional.relu(self.bn(self.conv(x)))
        x = x + self.pointwise(paddle.nn.functional.relu(self.depthwise(x)))
        x = paddle.mean(x, axis=[2, 3])
        return self.head(paddle.nn.functional.gelu(self.hidden(self.norm(x))))


def _net(layer_norm: bool = True) -> ResidualNet:
    paddle.seed(0)
    net = ResidualNet(layer_norm)
    rng = np.random.default_rng(0)  # statistics unlike the defaults, so BatchNorm slicing is visible
    net.bn._mean.set_value(rng.uniform(-0.5, 0.5, 16).astype("float32"))
    net.bn._variance.set_value(rng.uniform(0.5, 2.0, 16).astype("float32"))
    return net


def _run(model, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input_0": x})[0]


def test_pruned_paddle_layer_matches_onnx_and_the_zero_mask_oracle() -> None:
    net = _net(layer_norm=False)  # LayerNorm over pruned channels is not function-preserving
    sample = np.random.default_rng(1).standard_normal((2, 3, 12, 12)).astype(np.float32)
    result = spa.paddle.prune(net, sample, criterion="l1", ratio=0.3)
    pruned = result.layer
    assert type(pruned) is ResidualNet
    widths = (pruned.conv._out_channels, pruned.depthwise._groups, pruned.pointwise._out_channels,
              pruned.hidden.weight.shape[1], pruned.head.weight.shape[1])
    assert widths == (12, 12, 12, 17, 5)
    assert net.conv.weight.shape[0] == 16  # the original is left alone
    fresh = np.random.default_rng(2).standard_normal((3, 3, 12, 12)).astype(np.float32)
    pruned.eval()
    got = pruned(paddle.to_tensor(fresh)).numpy()
    np.testing.assert_allclose(got, _run(result.onnx_model, fresh), rtol=1e-4, atol=1e-5)
    base = spa.load(spa.paddle.export(net, (sample,)))
    masked = masked_model(base.to_onnx(), plan_to_dict(result.plan, base.coupling_groups()))
    np.testing.assert_allclose(got, _run(masked, fresh), rtol=1e-4, atol=1e-5)


def test_pruned_paddle_layer_trains_and_exports_again() -> None:
    pruned = spa.paddle.prune(_net(), np.ones((2, 3, 8, 8), np.float32), criterion="l2", ratio=0.5).layer
    pruned.train()
    optimizer = paddle.optimizer.SGD(learning_rate=0.1, parameters=pruned.parameters())
    x = paddle.to_tensor(np.random.default_rng(3).standard_normal((8, 3, 8, 8)).astype(np.float32))
    losses = []
    for _ in range(3):
        loss = (pruned(x) ** 2).mean()
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    sample = (np.ones((1, 3, 8, 8), np.float32),)
    assert pruned.norm._normalized_shape == [8]
    assert spa.load(spa.paddle.export(pruned, sample)).stats().params < \
        spa.load(spa.paddle.export(_net(), sample)).stats().params


class HardCodedWidth(paddle.nn.Layer):
    """forward reshapes to a fixed width, which pruning the conv would break."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 8, 1)
        self.head = paddle.nn.Linear(8 * 4 * 4, 2)

    def forward(self, x):
        return self.head(paddle.reshape(self.conv(x), [-1, 8 * 4 * 4]))


def test_a_layer_spa_cannot_patch_raises_instead_of_returning_a_wrong_model() -> None:
    """SPA rewrites the ONNX Reshape target, but the Paddle forward keeps its literal 128."""
    with pytest.raises(SPAError, match="Paddle adapter: the pruned layer fails on the example inputs"):
        spa.paddle.prune(HardCodedWidth(), np.ones((1, 3, 4, 4), np.float32), ratio=0.5)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_paddle_vision_models_prune_like_the_oracle(name: str) -> None:
    paddle.seed(0)
    net = getattr(paddle.vision.models, name)(pretrained=False)
    net.eval()
    sample = np.random.default_rng(8).standard_normal((1, 3, 64, 64)).astype(np.float32)
    result = spa.paddle.prune(net, sample, criterion="l1", ratio=0.3)
    assert type(result.layer) is type(net)
    count = lambda layer: sum(int(np.prod(p.shape)) for p in layer.parameters())  # noqa: E731
    assert count(result.layer) < 0.8 * count(net)
    fresh = np.random.default_rng(9).standard_normal((2, 3, 64, 64)).astype(np.float32)
    result.layer.eval()
    got = result.layer(paddle.to_tensor(fresh)).numpy()
    base = spa.load(spa.paddle.export(net, (sample,)))
    masked = masked_model(base.to_onnx(), plan_to_dict(result.plan, base.coupling_groups()))
    want = _run(masked, fresh)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(want).max())))
