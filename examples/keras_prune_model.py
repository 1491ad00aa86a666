"""Prune a Keras 3 model and keep training it with Keras, on the torch, TensorFlow or JAX backend.

    python examples/keras_prune_model.py                              # torch backend
    KERAS_BACKEND=tensorflow python examples/keras_prune_model.py     # needs spa[tf]

A small functional CNN with BatchNorm and a residual add is pruned by half
of its channels with the L2 criterion; the result is a Keras model rebuilt
from the same config with fewer filters and units, which `fit` takes as is.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
import spa.keras


def build() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="stem_bn")(x))
    y = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="block")(x)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([x, y]))
    x = keras.layers.Dense(32, activation="relu", name="hidden")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="classes")(x))


def main() -> None:
    model = build()
    images = np.random.default_rng(0).standard_normal((64, 16, 16, 3)).astype("float32")
    labels = np.random.default_rng(1).integers(0, 10, 64)
    model(images[:2])
    result = spa.keras.prune(model, images[:2], criterion="l2", ratio=0.5)
    pruned = result.model
    print(f"parameters {model.count_params():,} -> {pruned.count_params():,}; "
          f"stem filters {model.get_layer('stem').filters} -> {pruned.get_layer('stem').filters}, "
          f"hidden units {model.get_layer('hidden').units} -> {pruned.get_layer('hidden').units}; "
          f"matches the pruned ONNX model to {result.max_difference:.0e}")
    pruned.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = pruned.fit(images, labels, epochs=2, verbose=0)
    print("fine-tuning loss per epoch:", ", ".join(f"{v:.3f}" for v in history.history["loss"]))


if __name__ == "__main__":
    main()
