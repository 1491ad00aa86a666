"""Run by test_keras_backends.py in a child process whose KERAS_BACKEND is TensorFlow or JAX.

Prunes the subclassed keras_subclassed_net.ConvNet, exports it as a
SavedModel, and writes what the parent checks: the original model
(`model.keras`), the pruned ONNX model, the plan, fresh inputs with the
outputs of the pruned Keras model and of the reloaded SavedModel, the widths,
and what a failing export left behind.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path

import keras
import keras_subclassed_net as net
import numpy as np
import onnx
import tensorflow as tf

import spa.keras
from spa.errors import SPAError


def main(folder: Path) -> None:
    sample = np.random.default_rng(0).standard_normal((2, 8, 8, 3)).astype(np.float32)
    model = net.build(sample)
    model.save(folder / "model.keras")
    result = spa.keras.prune(model, sample, criterion="l2", ratio=0.5)
    result.export_saved_model(folder / "saved")
    saved = result.export_saved_model(folder / "saved")  # replaces the SavedModel it wrote
    fresh = np.random.default_rng(2).standard_normal((3, 8, 8, 3)).astype(np.float32)
    loaded = tf.saved_model.load(str(saved))
    served = np.asarray(loaded.serve(fresh))
    outputs = np.asarray(keras.ops.convert_to_numpy(result.model(fresh)))
    try:
        result.export_saved_model(folder / "bad", tolerance=-1.0)  # every difference is too large
        refused = ""
    except SPAError as error:
        refused = str(error)
    occupied = folder / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("not a SavedModel")
    try:
        result.export_saved_model(occupied)
        kept_other_folder = ""
    except SPAError as error:
        kept_other_folder = str(error) if (occupied / "notes.txt").is_file() else ""
    onnx.save(result.onnx_model, folder / "pruned.onnx")
    (folder / "plan.pkl").write_bytes(pickle.dumps(result.plan))
    np.savez(folder / "io.npz", fresh=fresh, outputs=outputs, served=served)
    (folder / "facts.json").write_text(json.dumps({
        "backend": keras.backend.backend(), "same_class": type(result.model) is net.ConvNet,
        "rebuilt": result.rebuilt, "widths": net.widths(result.model), "original_widths": net.widths(model),
        "refused": refused, "kept_other_folder": kept_other_folder, "bad_left": (folder / "bad").exists(),
        "leftovers": sorted(p.name for p in folder.iterdir() if p.name.startswith("."))}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
