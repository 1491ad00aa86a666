"""Prune a subclassed Keras model, fine-tune it, and keep it as a TensorFlow SavedModel.

    KERAS_BACKEND=tensorflow python examples/keras_prune_subclassed.py [out_dir]   # needs spa[tf]

A subclassed model makes its layers, and their widths, in `__init__`, so Keras
cannot rebuild it with fewer filters from its config; SPA makes it anew and
patches the layers in place instead (`result.rebuilt` is False). The same
code would rebuild the original widths from a `.keras` file, so the pruned
model is fine-tuned and written as a SavedModel, which SPA checks against
the Keras model before moving it into place (default: a temporary folder).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import spa.keras
from keras_models import SmallClassifier  # the model's module; the pruning process imports it too


def main(out_dir: Path) -> None:
    keras.utils.set_random_seed(0)
    images = np.random.default_rng(0).standard_normal((64, 16, 16, 3)).astype("float32")
    labels = np.random.default_rng(1).integers(0, 10, 64)
    model = SmallClassifier()
    model(images[:2])
    result = spa.keras.prune(model, images[:2], criterion="l2", ratio=0.5)
    pruned = result.model
    print(f"{type(pruned).__name__} patched in place (rebuilt: {result.rebuilt}); parameters "
          f"{model.count_params():,} -> {pruned.count_params():,}; block filters {model.block.conv.filters} -> "
          f"{pruned.block.conv.filters}, hidden units {model.hidden.units} -> {pruned.hidden.units}")
    pruned.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = pruned.fit(images, labels, epochs=2, verbose=0)
    print("fine-tuning loss per epoch:", ", ".join(f"{v:.3f}" for v in history.history["loss"]))
    saved = result.export_saved_model(out_dir / "small_classifier")  # the fine-tuned model, checked against it
    print(f"SavedModel written to {saved}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="spa-keras-")))
