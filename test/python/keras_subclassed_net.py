"""A subclassed Keras model (widths made in code) with a nested custom layer, registered so every backend's
process can load it: the case spa.keras prunes by patching a copy in place."""

from __future__ import annotations

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="spa_tests")
class ConvBlock(keras.layers.Layer):
    """Conv + BatchNorm + ReLU, with a depthwise residual branch."""

    def __init__(self, filters: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(filters, 3, padding="same")
        self.norm = keras.layers.BatchNormalization()
        self.depthwise = keras.layers.DepthwiseConv2D(3, padding="same")

    def call(self, x):
        x = keras.ops.relu(self.norm(self.conv(x)))
        return x + self.depthwise(x)


@keras.saving.register_keras_serializable(package="spa_tests")
class ConvNet(keras.Model):
    def __init__(self, width: int = 8, **kwargs) -> None:
        super().__init__(**kwargs)
        self.block = ConvBlock(width)
        self.pointwise = keras.layers.Conv2D(6, 1, activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.hidden = keras.layers.Dense(12, activation="relu")
        self.head = keras.layers.Dense(4)

    def call(self, x):
        return self.head(self.hidden(self.pool(self.pointwise(self.block(x)))))


def build(sample: np.ndarray) -> ConvNet:
    """A built ConvNet whose BatchNorm statistics are not the identity (so pruning them matters)."""
    keras.utils.set_random_seed(0)
    model = ConvNet()
    model(sample)
    rng = np.random.default_rng(1)
    norm = model.block.norm
    norm.moving_mean.assign(rng.uniform(-0.5, 0.5, 8).astype("float32"))
    norm.moving_variance.assign(rng.uniform(0.5, 2.0, 8).astype("float32"))
    norm.gamma.assign(rng.uniform(0.5, 1.5, 8).astype("float32"))
    return model


def widths(model: ConvNet) -> list[int]:
    return [model.block.conv.filters, model.pointwise.filters, model.hidden.units]
