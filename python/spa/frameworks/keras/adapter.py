"""Prune a Keras 3 model with SPA and get a Keras model back, on any Keras backend.

    import spa.keras
    result = spa.keras.prune(model, example_inputs, criterion="l2", ratio=0.3)
    pruned = result.model            # a Keras model of the same classes, with fewer units and filters

On the torch backend the model is exported, pruned and rebuilt from its
config (Functional, Sequential) or patched in place (subclassed) in this
process (see on_torch); a patched model can be kept as a SavedModel (see
saved_model). Models on the TensorFlow or JAX backend are pruned the same way
in a torch-backend child process (see worker). Either way the returned model
is checked against the pruned ONNX model in onnxruntime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from spa.errors import SPAError
from spa.frameworks.keras.calls import KerasAdapter
from spa.frameworks.keras.worker import mlir_loads_here, prune_in_worker
from spa.frameworks.pipeline import as_tuple
from spa.frameworks.protocol import PruneResult, check_against_onnx

class KerasPruneResult(PruneResult):
    """spa.frameworks.protocol's result with `rebuilt` (in `extras`) and a way to keep the model as a
    TensorFlow SavedModel."""

    def export_saved_model(self, path: str | Path, tolerance: float = 1e-4) -> Path:
        """Write `model` as it is now (fine-tuned, say) as a TensorFlow SavedModel at `path`, checked against
        it on the example inputs (TensorFlow or JAX backend; see saved_model)."""
        from spa.frameworks.keras.saved_model import export_saved_model

        return export_saved_model(self.model, path, self.extras["example_inputs"], tolerance)


def prune(model: Any, example_inputs: Any, criterion: str = "l1", tolerance: float = 1e-4,
          custom_modules: tuple[str, ...] = (), **plan_options: Any) -> KerasPruneResult:
    """Prune a built Keras model (left unchanged) and return a pruned Keras model of the same classes.

    A Functional or Sequential model is rebuilt from its config with the
    pruned widths; a subclassed one is copied and its layers patched in place
    (see surgery). `example_inputs` is an array (or tuple of arrays) of
    the model's input shape; `criterion` and `plan_options` are those of
    `spa.Model.plan`. On a backend other than torch, the model is pruned in a
    torch-backend child process, which imports the modules that define the
    model's own classes, and `custom_modules` (more modules registering
    custom classes), before loading it. Raises SPAError
    if the model can be neither rebuilt nor copied, a variable cannot be
    matched to the ONNX model, or the pruned model differs from the pruned
    ONNX model by more than `tolerance`.

    `result.rebuilt` is True when the model was rebuilt from its config
    (Functional, Sequential) and False when it is a copy patched in place (a
    subclassed model: its code makes the original widths, so reloading it
    from `.keras` does too; keep it as a SavedModel with
    `result.export_saved_model(path)`).
    """
    import keras

    arrays_in = tuple(np.asarray(x, dtype=np.float32) for x in as_tuple(example_inputs))
    if keras.backend.backend() == "torch" and mlir_loads_here():
        from spa.frameworks.keras.on_torch import prune_on_torch

        return _keras_result(prune_on_torch(model, arrays_in, criterion, tolerance, plan_options), arrays_in)
    modules = _defining_modules(model, tuple(custom_modules))
    pruned, onnx_model, plan, rebuilt = prune_in_worker(model, arrays_in, criterion, tolerance, modules,
                                                        plan_options)
    difference = check_against_onnx(KerasAdapter(), pruned, onnx_model, arrays_in, tolerance)
    return _keras_result(PruneResult(pruned, onnx_model, plan, difference, extras={"rebuilt": rebuilt}), arrays_in)


def _keras_result(result: PruneResult, example_inputs: tuple) -> KerasPruneResult:
    return KerasPruneResult(result.model, result.onnx_model, result.plan, result.max_difference,
                            extras={**result.extras, "example_inputs": example_inputs})


def _defining_modules(model: Any, custom_modules: tuple[str, ...]) -> tuple[str, ...]:
    """The modules the pruning process imports so it knows the model's classes as this one does: those that
    define them (not Keras', which it has) and `custom_modules`. A class from the running script cannot be
    imported there; without `custom_modules` that is refused here, before any work."""
    classes = {type(layer) for layer in model._flatten_layers(include_self=True)}
    in_script = sorted(c.__name__ for c in classes if c.__module__ == "__main__")
    if in_script and not custom_modules:
        raise SPAError(f"Keras adapter: {', '.join(in_script)} defined in the running script (__main__), which the "
                       "torch-backend pruning process cannot import; define it in a module (registered with "
                       "keras.saving.register_keras_serializable), or name a module registering it in "
                       "custom_modules=[...]")
    modules = {c.__module__ for c in classes} - {"__main__"}
    return (*sorted(m for m in modules if m.split(".")[0] != "keras"), *custom_modules)
