"""Write a pruned Keras model as a TensorFlow SavedModel, the form that keeps a model Keras cannot rebuild.

A subclassed model comes back from spa.keras.prune patched in place; its
code makes the original widths, so a `.keras` file of it reloads unpruned.
A SavedModel stores the traced graph with the pruned variables instead, and
serves from TensorFlow, TF Serving or TFLite without the model's code. Keras
writes it (`model.export(format="tf_saved_model")`, TensorFlow and JAX
backends); SPA writes it to a temporary folder next to `path`, loads it back
with TensorFlow, checks its `serve` endpoint against the Keras model on the
example inputs (the model, not the pruned ONNX model, so a model fine-tuned
since pruning exports too), and only then moves it to `path`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from spa.errors import SPAError, first_line
from spa.frameworks.pipeline import as_tuple

BACKENDS = ("tensorflow", "jax")  # Keras exports SavedModels from these


def export_saved_model(model: Any, path: str | Path, example_inputs: Any, tolerance: float = 1e-4) -> Path:
    """Write Keras `model` as a SavedModel at `path` (replacing what is there) and return `path`.

    `example_inputs` is an array (or tuple of arrays) of the model's input
    shape. Raises SPAError, leaving `path` as it was, on the torch backend,
    when Keras cannot export the model, or when the SavedModel's outputs
    differ from the model's by more than `tolerance` (relative to the output
    scale, at least 1).
    """
    import keras

    if keras.backend.backend() not in BACKENDS:
        raise SPAError(f"Keras adapter: a SavedModel is exported from the TensorFlow or JAX backend, not "
                       f"{keras.backend.backend()}; keep the pruned ONNX model (result.onnx_model) instead, or "
                       "prune with KERAS_BACKEND=tensorflow")
    path = Path(path)
    example_inputs = tuple(np.asarray(x, np.float32) for x in as_tuple(example_inputs))
    if not example_inputs:
        raise SPAError("Keras adapter: a SavedModel needs example inputs to be checked with")
    if path.exists() and not (path / "saved_model.pb").is_file():
        raise SPAError(f"Keras adapter: {path} exists and is not a SavedModel; SPA replaces only a SavedModel "
                       "folder there")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        written = staging / "saved_model"
        try:
            model.export(str(written), format="tf_saved_model", verbose=False)
        except Exception as error:  # noqa: BLE001 - Keras and TensorFlow raise many kinds here
            raise SPAError(f"Keras adapter: Keras cannot export {type(model).__name__} as a SavedModel "
                           f"({type(error).__name__}: {first_line(error)})") from None
        _check(written, path, model, example_inputs, tolerance)
        _move_into_place(written, path, staging / "previous")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return path


def _move_into_place(written: Path, path: Path, previous: Path) -> None:
    """`written` becomes `path`; a SavedModel already there is set aside first and put back if that fails."""
    if path.exists():
        path.rename(previous)
    try:
        written.rename(path)
    except OSError:
        if previous.exists():
            previous.rename(path)
        raise


def _check(folder: Path, path: Path, model: Any, example_inputs: tuple, tolerance: float) -> float:
    """Largest difference between the SavedModel's `serve` outputs and the Keras model's, relative to the
    output scale (at least 1), as the adapters check their results; SPAError above `tolerance`."""
    import keras
    import tensorflow as tf

    from spa.frameworks.keras.calls import call

    loaded = tf.saved_model.load(str(folder))  # held: its functions read variables that it owns
    served = loaded.serve(example_inputs[0] if len(example_inputs) == 1 else list(example_inputs))
    expected = call(model, example_inputs)
    served, expected = _listed(served), _listed(expected)
    if len(served) != len(expected):
        raise SPAError(f"Keras adapter: the SavedModel for {path} returns {len(served)} outputs but the model "
                       f"{len(expected)}")
    difference = 0.0
    for got, want in zip(served, expected):
        got, want = np.asarray(got), np.asarray(keras.ops.convert_to_numpy(want))
        if got.shape != want.shape:
            raise SPAError(f"Keras adapter: the SavedModel for {path} returns shape {list(got.shape)} but the "
                           f"model {list(want.shape)}")
        scale = max(1.0, float(np.abs(want).max(initial=0.0)))
        difference = max(difference, float(np.abs(got - want).max(initial=0.0)) / scale)
    if difference > tolerance:
        raise SPAError(f"Keras adapter: the SavedModel for {path} differs from the Keras model by "
                       f"{difference:.2e} (tolerance {tolerance})")
    return difference


def _listed(outputs: Any) -> list:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
