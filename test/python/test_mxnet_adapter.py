"""spa.mxnet.prune: the pruned Gluon block matches the pruned ONNX model and the zero-mask oracle.

MXNet 1.9.1 needs NumPy < 1.24, so these tests run in the MXNet environment
the README describes (`.venv-mxnet/bin/python -m pytest test/python/test_mxnet_adapter.py`)
and are skipped where MXNet is not installed.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

mx = pytest.importorskip("mxnet")

import spa
import spa.mxnet
from mxnet.gluon import nn
from oracle import masked_model
from spa.errors import SPAError
from spa.groups import plan_to_dict

pytestmark = pytest.mark.zoo  # the full tier only (see pyproject's markers)


class ResidualBlock(nn.HybridBlock):
    """Conv + BatchNorm, a depthwise/pointwise residual branch and two Dense layers."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.conv = nn.Conv2D(16, 3, padding=1)
            self.bn = nn.BatchNorm()
            self.depthwise = nn.Conv2D(16, 3, padding=1, groups=16)
            self.pointwise = nn.Conv2D(16, 1)
            self.pool = nn.GlobalAvgPool2D()
            self.hidden = nn.Dense(24, activation="relu")
            self.head = nn.Dense(5)

    def hybrid_forward(self, F, x):
        x = F.relu(self.bn(self.conv(x)))
        x = x + self.pointwise(F.relu(self.depthwise(x)))
        return self.head(self.hidden(self.pool(x)))


def _block() -> ResidualBlock:
    mx.random.seed(0)
    block = ResidualBlock()
    block.initialize(mx.init.Xavier())
    block(mx.nd.zeros((1, 3, 12, 12)))
    rng = np.random.default_rng(0)  # statistics unlike the defaults, so BatchNorm slicing is visible
    block.bn.running_mean.set_data(mx.nd.array(rng.uniform(-0.5, 0.5, 16)))
    block.bn.running_var.set_data(mx.nd.array(rng.uniform(0.5, 2.0, 16)))
    return block


def _run(model, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input_0": x})[0]


def test_pruned_block_matches_onnx_and_the_zero_mask_oracle() -> None:
    block = _block()
    sample = np.random.default_rng(1).standard_normal((2, 3, 12, 12)).astype(np.float32)
    result = spa.mxnet.prune(block, sample, criterion="l1", ratio=0.3)
    pruned = result.block
    assert type(pruned) is ResidualBlock
    assert (pruned.conv._channels, pruned.depthwise._kwargs["num_group"], pruned.hidden._units) == (12, 12, 17)
    assert block.conv._channels == 16 and block.conv.weight.shape[0] == 16  # the original is left alone
    fresh = np.random.default_rng(2).standard_normal((3, 3, 12, 12)).astype(np.float32)  # another batch size
    got = pruned(mx.nd.array(fresh)).asnumpy()
    np.testing.assert_allclose(got, _run(result.onnx_model, fresh), rtol=1e-4, atol=1e-5)
    base = spa.load(spa.mxnet.export(block, (sample,)))
    masked = masked_model(base.to_onnx(), plan_to_dict(result.plan, base.coupling_groups()))
    np.testing.assert_allclose(got, _run(masked, fresh), rtol=1e-4, atol=1e-5)


def test_pruned_block_trains_with_gluon() -> None:
    pruned = spa.mxnet.prune(_block(), np.ones((2, 3, 12, 12), np.float32), ratio=0.5).block
    trainer = mx.gluon.Trainer(pruned.collect_params(), "sgd", {"learning_rate": 0.1})
    x, y = mx.nd.random.uniform(shape=(4, 3, 12, 12)), mx.nd.zeros((4, 5))
    losses = []
    for _ in range(3):
        with mx.autograd.record():
            loss = ((pruned(x) - y) ** 2).mean()
        loss.backward()
        trainer.step(4)
        losses.append(float(loss.asscalar()))
    assert losses[-1] < losses[0]


def test_hard_coded_width_is_refused() -> None:
    """A block whose forward reshapes to a fixed channel count cannot take pruned widths: SPAError, not a
    silently wrong block."""

    class FixedReshape(nn.HybridBlock):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            with self.name_scope():
                self.conv = nn.Conv2D(8, 1)
                self.head = nn.Dense(3)

        def hybrid_forward(self, F, x):
            return self.head(F.reshape(self.conv(x), shape=(-1, 8, 16)))

    block = FixedReshape()
    block.initialize()
    sample = np.ones((1, 3, 4, 4), np.float32)
    block(mx.nd.array(sample))
    with pytest.raises(SPAError, match="MXNet adapter"):
        spa.mxnet.prune(block, sample, ratio=0.5)


def test_example_runs(capsys) -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "mxnet_prune_block.py"
    spec = importlib.util.spec_from_file_location("mxnet_prune_block", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.main()
    printed = capsys.readouterr().out
    assert "stem channels 16 -> 8" in printed and "fine-tuned three epochs" in printed


def test_depthwise_with_a_channel_multiplier_keeps_its_groups() -> None:
    """Only a depthwise conv with groups == in == out changes its group count when pruned."""
    net = nn.HybridSequential()
    with net.name_scope():
        net.add(nn.Conv2D(4, 3, padding=1, activation="relu"), nn.Conv2D(8, 3, padding=1, groups=4),
                nn.Conv2D(8, 1, groups=2), nn.GlobalAvgPool2D(), nn.Dense(3))
    net.initialize(mx.init.Xavier())
    sample = np.random.default_rng(3).standard_normal((2, 3, 8, 8)).astype(np.float32)
    net(mx.nd.array(sample))
    result = spa.mxnet.prune(net, sample, criterion="l1", ratio=0.5)
    depthwise, grouped = result.block[1], result.block[2]
    assert (depthwise._kwargs["num_group"], grouped._kwargs["num_group"]) == (4, 2)
    assert depthwise._channels < 8
    assert net[1]._active is False  # the block's own hybridize setting is left alone


def test_a_plain_block_is_refused() -> None:
    class Plain(nn.Block):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            with self.name_scope():
                self.dense = nn.Dense(3)

        def forward(self, x):
            return self.dense(x)

    block = Plain()
    block.initialize()
    with pytest.raises(SPAError, match="not a HybridBlock"):
        spa.mxnet.prune(block, np.ones((1, 4), np.float32))
