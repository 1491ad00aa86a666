"""spa.keras.prune on subclassed Keras models (torch backend): a copy patched in place, checked with oracles."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("Keras was imported with another backend", allow_module_level=True)

import keras_subclassed_net as net
import spa
import spa.keras
import torch
from oracle import masked_model
from spa.frameworks.torch_adapter import export
from spa.groups import plan_to_dict

pytestmark = pytest.mark.zoo  # the full tier only (see pyproject's markers)


def _run(model, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input_0": x})[0]


def _outputs(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(model(x)))


def test_subclassed_model_is_patched_and_matches_onnx_and_the_zero_mask_oracle() -> None:
    sample = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    model = net.build(sample)
    before = _outputs(model, sample)
    result = spa.keras.prune(model, sample, criterion="l2", ratio=0.5)
    pruned = result.model
    assert type(pruned) is net.ConvNet and not result.rebuilt
    assert net.widths(pruned) == [4, 3, 6] and net.widths(model) == [8, 6, 12]
    assert tuple(pruned.block.depthwise.kernel.shape) == (3, 3, 4, 1)
    assert all(tuple(v.shape) == (4,) for v in pruned.block.norm.weights)
    np.testing.assert_array_equal(_outputs(model, sample), before)  # the original is left alone
    fresh = np.random.default_rng(2).standard_normal((3, 8, 8, 3)).astype(np.float32)
    got = _outputs(pruned, fresh)
    np.testing.assert_allclose(got, _run(result.onnx_model, fresh), rtol=1e-4, atol=1e-5)
    base = spa.load(export(model, (torch.as_tensor(sample),)))
    masked = masked_model(base.to_onnx(), plan_to_dict(result.plan, base.coupling_groups()))
    np.testing.assert_allclose(got, _run(masked, fresh), rtol=1e-4, atol=1e-5)


def test_patched_model_trains_and_prunes_again() -> None:
    """The new variables are the ones Keras trains and torch sees; a second round starts from them."""
    sample = np.random.default_rng(3).standard_normal((16, 8, 8, 3)).astype(np.float32)
    pruned = spa.keras.prune(net.build(sample), sample, criterion="l1", ratio=0.5).model
    # torch sees exactly the new variables (no stale unpruned parameter left behind)
    assert sorted(tuple(p.shape) for p in pruned.parameters()) == sorted(tuple(v.shape) for v in pruned.weights)
    assert {(3, 3, 3, 4), (1, 1, 4, 3), (3, 6)} <= {tuple(v.shape) for v in pruned.weights}
    layout = [(v.name, len(v.shape)) for v in pruned.weights]
    assert layout == [(v.name, len(v.shape)) for v in net.build(sample).weights]  # same variables, same order
    pruned.compile(optimizer="adam", loss="mse")
    kernel = np.array(keras.ops.convert_to_numpy(pruned.block.conv.kernel))
    losses = pruned.fit(sample, np.zeros((16, 4), np.float32), epochs=3, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
    assert not np.allclose(keras.ops.convert_to_numpy(pruned.block.conv.kernel), kernel)
    again = spa.keras.prune(pruned, sample, criterion="l1", ratio=0.5)  # from a compiled, trained model
    assert net.widths(again.model) == [2, 2, 3] and net.widths(pruned) == [4, 3, 6]
    np.testing.assert_allclose(_outputs(again.model, sample), _run(again.onnx_model, sample), rtol=1e-4, atol=1e-5)
    again.model.compile(optimizer="adam", loss="mse")
    assert np.isfinite(again.model.fit(sample, np.zeros((16, 4), np.float32), verbose=0).history["loss"]).all()


def test_frozen_and_regularized_layers_keep_their_settings() -> None:
    """A layer frozen after construction stays frozen in the copy, and a replaced kernel keeps its
    regularizer (its loss is still counted)."""

    class Net(keras.Model):
        def __init__(self, **kwargs) -> None:
            super().__init__(**kwargs)
            self.hidden = keras.layers.Dense(8, activation="relu", kernel_regularizer="l2")
            self.middle = keras.layers.Dense(6, activation="relu")
            self.out = keras.layers.Dense(3)

        def call(self, x):
            return self.out(self.middle(self.hidden(x)))

    keras.utils.set_random_seed(0)
    model = Net()
    x = np.random.default_rng(7).standard_normal((4, 5)).astype(np.float32)
    model(x)
    model.middle.trainable = False
    result = spa.keras.prune(model, x, criterion="l1", ratio=0.5)
    pruned = result.model
    assert (pruned.hidden.units, pruned.middle.units) == (4, 3)
    assert not pruned.middle.trainable and pruned.hidden.trainable
    assert all(not v.trainable for v in pruned.middle.weights)
    assert pruned.hidden.kernel.regularizer is not None
    assert len(pruned.trainable_weights) == 4  # hidden and out, kernel and bias each
    np.testing.assert_allclose(_outputs(pruned, x), _run(result.onnx_model, x), rtol=1e-4, atol=1e-5)


def test_a_model_that_cannot_be_made_anew_is_refused_with_the_reason() -> None:
    """Pruning in place starts from a model made from the config; an __init__ taking an object Keras cannot
    serialize makes that impossible, and the error says so instead of returning a half-pruned model."""

    class Scaled(keras.Model):
        def __init__(self, scale: object, **kwargs) -> None:
            super().__init__(**kwargs)
            self.scale = scale
            self.hidden = keras.layers.Dense(8, activation="relu")
            self.out = keras.layers.Dense(3)

        def call(self, x):
            return self.out(self.hidden(x)) * self.scale.value

    class Holder:
        value = 2.0

    model = Scaled(Holder())
    x = np.ones((2, 4), np.float32)
    model(x)
    with pytest.raises(spa.errors.SPAError, match="Scaled cannot be rebuilt .* made anew"):
        spa.keras.prune(model, x, ratio=0.5)


def test_saved_model_needs_the_tensorflow_or_jax_backend(tmp_path: Path) -> None:
    sample = np.random.default_rng(4).standard_normal((2, 8, 8, 3)).astype(np.float32)
    result = spa.keras.prune(net.build(sample), sample, ratio=0.5)
    earlier = tmp_path / "saved" / "saved_model.pb"
    earlier.parent.mkdir()
    earlier.write_bytes(b"an earlier SavedModel")
    with pytest.raises(spa.errors.SPAError, match="TensorFlow or JAX backend, not torch"):
        result.export_saved_model(tmp_path / "saved")
    assert earlier.read_bytes() == b"an earlier SavedModel"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["saved"]


def test_functional_model_that_cannot_be_rebuilt_is_patched_instead() -> None:
    """A custom layer keeps its width under its own config key, so the rebuilt model has the old width; the
    adapter falls back to patching a copy in place, checked with the oracle as before."""

    class ChannelScale(keras.layers.Layer):
        def __init__(self, width: int, **kwargs) -> None:
            super().__init__(**kwargs)
            self.width = width
            self.scale = self.add_weight(shape=(width,), initializer="ones", name="scale")

        def call(self, x):
            return x * self.scale

        def get_config(self):
            return {**super().get_config(), "width": self.width}

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(inputs)
    scale = ChannelScale(8, name="scale")
    x = keras.layers.GlobalAveragePooling2D()(scale(x))
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(x))
    scale.scale.assign(np.linspace(0.5, 2.0, 8).astype("float32"))
    sample = np.random.default_rng(5).standard_normal((2, 8, 8, 3)).astype(np.float32)
    with keras.saving.custom_object_scope({"ChannelScale": ChannelScale}):
        result = spa.keras.prune(model, sample, criterion="l1", ratio=0.5)
    assert not result.rebuilt and isinstance(result.model.get_layer("scale"), ChannelScale)
    assert result.model.get_layer("conv").filters == 4
    assert tuple(result.model.get_layer("scale").scale.shape) == (4,)
    fresh = np.random.default_rng(6).standard_normal((3, 8, 8, 3)).astype(np.float32)
    got = _outputs(result.model, fresh)
    base = spa.load(export(model, (torch.as_tensor(sample),)))
    masked = masked_model(base.to_onnx(), plan_to_dict(result.plan, base.coupling_groups()))
    np.testing.assert_allclose(got, _run(masked, fresh), rtol=1e-4, atol=1e-5)
