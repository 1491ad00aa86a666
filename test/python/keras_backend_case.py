"""Run by test_keras_backends.py in a child process whose KERAS_BACKEND is TensorFlow or JAX.

Builds a conv/BatchNorm/depthwise/residual Keras model, prunes it with
spa.keras.prune and writes what the parent checks: the original model
(`model.keras`), the pruned ONNX model, the plan, fresh inputs and the pruned
Keras model's outputs on them, the pruned widths and a training loss.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import keras
import numpy as np
import onnx

import spa.keras


def build() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="bn")(x))
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.Conv2D(6, 1, activation="relu", name="pw")(keras.layers.Add()([x, y]))
    x = keras.layers.Dense(12, activation="relu", name="hidden")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, keras.layers.Dense(4, name="out")(x))


def main(folder: Path) -> None:
    model = build()
    sample = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    model(sample)
    bn = model.get_layer("bn")
    rng = np.random.default_rng(1)
    bn.moving_mean.assign(rng.uniform(-0.5, 0.5, 8).astype("float32"))
    bn.moving_variance.assign(rng.uniform(0.5, 2.0, 8).astype("float32"))
    model.save(folder / "model.keras")
    result = spa.keras.prune(model, sample, criterion="l2", ratio=0.5)
    pruned = result.model
    fresh = np.random.default_rng(2).standard_normal((3, 8, 8, 3)).astype(np.float32)
    outputs = np.asarray(keras.ops.convert_to_numpy(pruned(fresh)))
    pruned.compile(optimizer="sgd", loss="mse")
    loss = pruned.fit(fresh, np.zeros((3, 4), np.float32), epochs=1, verbose=0).history["loss"]
    onnx.save(result.onnx_model, folder / "pruned.onnx")
    (folder / "plan.pkl").write_bytes(pickle.dumps(result.plan))
    np.savez(folder / "io.npz", fresh=fresh, outputs=outputs)
    (folder / "facts.json").write_text(json.dumps({
        "backend": keras.backend.backend(), "same_class": type(pruned) is type(model),
        "widths": [pruned.get_layer(n).filters for n in ("c1", "pw")] + [pruned.get_layer("hidden").units],
        "original_widths": [model.get_layer(n).filters for n in ("c1", "pw")] + [model.get_layer("hidden").units],
        "loss": loss, "max_difference": result.max_difference}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
