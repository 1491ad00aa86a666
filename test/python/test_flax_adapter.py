"""spa.flax.prune on Flax NNX modules exported with jax2onnx: the pruned module matches the pruned ONNX
model and the zero-mask oracle."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

nnx = pytest.importorskip("flax.nnx")
pytest.importorskip("jax2onnx")

import spa
import spa.flax
from oracle import masked_model
from spa.frameworks.flax_adapter import _export
from spa.groups import plan_to_dict

pytestmark = pytest.mark.zoo  # the full tier only (see pyproject's markers)


class ConvNet(nnx.Module):
    """Conv -> BatchNorm -> ReLU -> mean pool -> Linear -> ReLU -> Linear, channels-last as Flax is."""

    def __init__(self, rngs: nnx.Rngs) -> None:
        self.conv = nnx.Conv(3, 8, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.hidden = nnx.Linear(8, 16, rngs=rngs)
        self.out = nnx.Linear(16, 4, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.bn(self.conv(x))).mean(axis=(1, 2))
        return self.out(nnx.relu(self.hidden(x)))


def _net() -> ConvNet:
    net = ConvNet(nnx.Rngs(0))
    rng = np.random.default_rng(1)
    net.bn.mean.value = rng.uniform(-0.5, 0.5, 8).astype(np.float32)
    net.bn.var.value = rng.uniform(0.5, 2.0, 8).astype(np.float32)
    net.bn.scale.value = rng.uniform(0.5, 1.5, 8).astype(np.float32)
    net.eval()
    return net


def _run(model, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_pruned_flax_module_matches_onnx_and_the_zero_mask_oracle() -> None:
    net = _net()
    x = np.random.default_rng(2).standard_normal((2, 8, 8, 3)).astype(np.float32)
    result = spa.flax.prune(net, x, criterion="random", ratio=0.5)
    pruned = result.module
    assert type(pruned) is ConvNet and net.conv.out_features == 8  # the original is left alone
    assert (pruned.conv.out_features, pruned.bn.num_features, pruned.hidden.in_features,
            pruned.hidden.out_features) == (4, 4, 4, 8)
    assert result.params[("conv", "kernel")].shape == (3, 3, 3, 4)
    assert result.params[("out", "kernel")].shape == (8, 4)
    fresh = np.random.default_rng(3).standard_normal((3, 8, 8, 3)).astype(np.float32)
    got = np.asarray(pruned(fresh))
    np.testing.assert_allclose(got, _run(result.onnx_model, fresh), rtol=1e-4, atol=1e-5)
    base = spa.load(_export(net, (x,)))
    masked = masked_model(base.to_onnx(), plan_to_dict(result.plan, base.coupling_groups()))
    np.testing.assert_allclose(got, _run(masked, fresh), rtol=1e-4, atol=1e-5)
