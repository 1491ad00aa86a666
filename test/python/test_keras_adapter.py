"""spa.keras.prune on Keras 3 (torch backend): the rebuilt Keras model matches the pruned ONNX model."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import onnxruntime as ort
import pytest

keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("Keras was imported with another backend", allow_module_level=True)

import spa
import spa.keras
import torch
from oracle import masked_model
from spa.frameworks.torch_adapter import export
from spa.groups import plan_to_dict

pytestmark = pytest.mark.zoo  # the full tier only (see pyproject's markers)


def _mlp():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((12,))
    hidden = keras.layers.Dense(32, activation="relu", name="hidden")(inputs)
    wide = keras.layers.Dense(24, activation="tanh", name="wide")(hidden)
    outputs = keras.layers.Dense(5, name="out")(wide)
    return keras.Model(inputs, outputs)


def _run(model, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input_0": x})[0]


def test_pruned_keras_model_matches_onnx_and_the_zero_mask_oracle() -> None:
    model = _mlp()
    x = np.random.default_rng(0).standard_normal((4, 12)).astype(np.float32)
    model(x)
    result = spa.keras.prune(model, x, criterion="l2", ratio=0.5)
    pruned = result.model
    assert type(pruned) is type(model)
    assert [pruned.get_layer(n).units for n in ("hidden", "wide", "out")] == [16, 12, 5]
    assert model.get_layer("hidden").units == 32  # the original is left alone
    fresh = np.random.default_rng(1).standard_normal((6, 12)).astype(np.float32)
    got = np.asarray(pruned(fresh).detach().numpy())
    np.testing.assert_allclose(got, _run(result.onnx_model, fresh), rtol=1e-4, atol=1e-5)
    base = spa.load(export(model, (torch.as_tensor(x),)))
    masked = masked_model(base.to_onnx(), plan_to_dict(result.plan, base.coupling_groups()))
    np.testing.assert_allclose(got, _run(masked, fresh), rtol=1e-4, atol=1e-5)


def test_pruned_keras_model_trains() -> None:
    model = _mlp()
    x = np.random.default_rng(2).standard_normal((32, 12)).astype(np.float32)
    model(x)
    pruned = spa.keras.prune(model, x, criterion="l1", ratio=0.3).model
    pruned.compile(optimizer="sgd", loss="mse")
    history = pruned.fit(x, np.zeros((32, 5), np.float32), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2


def test_batchnorm_conv_model_prunes_through_its_run_time_arithmetic() -> None:
    """Keras' export computes BatchNorm as (x - mean) * gamma / sqrt(var + eps) + beta from the
    variables at run time; every variable is followed and sliced."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="conv")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn")(x))
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(16, activation="relu", name="dense")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(x))
    sample = np.random.default_rng(3).standard_normal((2, 6, 6, 3)).astype(np.float32)
    model(sample)
    rng = np.random.default_rng(4)
    bn = model.get_layer("bn")
    bn.moving_mean.assign(rng.uniform(-0.5, 0.5, 8).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, 8).astype("float32"))
    bn.gamma.assign(rng.uniform(0.5, 1.5, 8).astype("float32"))
    result = spa.keras.prune(model, sample, criterion="l1", ratio=0.5)
    assert (result.model.get_layer("conv").filters, result.model.get_layer("dense").units) == (4, 8)
    assert all(tuple(w.shape) == (4,) for w in result.model.get_layer("bn").weights)
    fresh = np.random.default_rng(5).standard_normal((3, 6, 6, 3)).astype(np.float32)
    got = np.asarray(result.model(fresh).detach().numpy())
    base = spa.load(export(model, (torch.as_tensor(sample),)))
    masked = masked_model(base.to_onnx(), plan_to_dict(result.plan, base.coupling_groups()))
    np.testing.assert_allclose(got, _run(masked, fresh), rtol=1e-4, atol=1e-5)


def test_residual_conv_model_prunes_its_filters() -> None:
    """Conv kernels reach the graph through Transpose and biases through a broadcasting Reshape;
    both are followed to the Keras variables."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inputs)
    y = keras.layers.Conv2D(8, 3, padding="same", name="c2")(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([x, y]))
    model = keras.Model(inputs, keras.layers.Dense(4, name="head")(x))
    sample = np.random.default_rng(4).standard_normal((2, 8, 8, 3)).astype(np.float32)
    model(sample)
    result = spa.keras.prune(model, sample, criterion="random", ratio=0.5)
    assert (result.model.get_layer("c1").filters, result.model.get_layer("c2").filters) == (4, 4)
    fresh = np.random.default_rng(5).standard_normal((3, 8, 8, 3)).astype(np.float32)
    got = np.asarray(result.model(fresh).detach().numpy())
    base = spa.load(export(model, (torch.as_tensor(sample),)))
    masked = masked_model(base.to_onnx(), plan_to_dict(result.plan, base.coupling_groups()))
    np.testing.assert_allclose(got, _run(masked, fresh), rtol=1e-4, atol=1e-5)


def test_depthwise_and_flatten_prune_through_their_computed_shapes() -> None:
    """Keras' export reshapes the depthwise kernel (3, 3, C, 1) -> (3, 3, 1, C), reads the bias
    width from Shape and flattens to [batch, -1]; all three are followed and pruned."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.Conv2D(8, 1, activation="relu", name="pw")(x)
    model = keras.Model(inputs, keras.layers.Dense(4, name="head")(keras.layers.Flatten()(x)))
    sample = np.random.default_rng(6).standard_normal((2, 8, 8, 3)).astype(np.float32)
    model(sample)
    result = spa.keras.prune(model, sample, criterion="l1", ratio=0.5)
    pruned = result.model
    assert (pruned.get_layer("c1").filters, pruned.get_layer("pw").filters) == (4, 4)
    assert tuple(pruned.get_layer("dw").kernel.shape) == (3, 3, 4, 1)
    assert tuple(pruned.get_layer("head").kernel.shape) == (8 * 8 * 4, 4)
    fresh = np.random.default_rng(7).standard_normal((3, 8, 8, 3)).astype(np.float32)
    got = np.asarray(pruned(fresh).detach().numpy())
    base = spa.load(export(model, (torch.as_tensor(sample),)))
    masked = masked_model(base.to_onnx(), plan_to_dict(result.plan, base.coupling_groups()))
    np.testing.assert_allclose(got, _run(masked, fresh), rtol=1e-4, atol=1e-5)
