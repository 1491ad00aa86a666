"""Prune a Keras 3 model with SPA and get a Keras model back, on any Keras backend.

    import spa.keras
    result = spa.keras.prune(model, example_inputs, criterion="l2", ratio=0.3)
    pruned = result.model            # a Keras model of the same classes, with fewer units and filters

On the torch backend a Keras model is a `torch.nn.Module` whose variables
are parameters named `_torch_params.<variable path>`, so it is exported with
those names kept (see torch_adapter.export). After SPA prunes the ONNX
model, a Functional or Sequential model is rebuilt from its config with
`filters` / `units` read off the pruned kernels (other widths follow from the
inputs when Keras builds the layers), and every variable takes its pruned
value by path; a subclassed model, whose widths are made in code, is made
anew and patched in place (see keras_surgery) and can be kept as a
SavedModel (see keras_saved_model). Models on the TensorFlow or JAX backend
are pruned the same way in a torch-backend child process (see keras_worker). Either way the returned
model is checked against the pruned ONNX model in onnxruntime.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from spa.errors import SPAError
from spa.frameworks.checking import compare_with_onnx, forward_failure
from spa.frameworks.keras_surgery import patched_copy
from spa.frameworks.keras_worker import mlir_loads_here, prune_in_worker
from spa.frameworks.pipeline import as_tuple, prune_exported
from spa.groups import Plan

PREFIX = "_torch_params."
WIDTH_KEYS = ("filters", "units")  # the output width in a layer's config, read off the kernel's last axis


@dataclass
class KerasPruneResult:
    """`model`: the pruned Keras model; `onnx_model`: the pruned ONNX model; `plan`: what was removed;
    `max_difference`: largest |Keras - onnxruntime| output difference on the example inputs; `rebuilt`: True
    when `model` was rebuilt from its config (Functional, Sequential), False when it is a copy patched in place
    (a subclassed model: its code makes the original widths, so reloading it from `.keras` does too; keep it as
    a SavedModel with `export_saved_model`)."""

    model: Any
    onnx_model: onnx.ModelProto
    plan: Plan
    max_difference: float
    rebuilt: bool = True
    example_inputs: tuple = field(default=(), repr=False)

    def export_saved_model(self, path: str | Path, tolerance: float = 1e-4) -> Path:
        """Write `model` (as it is now: fine-tuned, say) as a TensorFlow SavedModel at `path`, checked against
        it on the example inputs (TensorFlow or JAX backend; see spa.frameworks.keras_saved_model)."""
        from spa.frameworks.keras_saved_model import export_saved_model

        return export_saved_model(self.model, path, self.example_inputs, tolerance)


def prune(model: Any, example_inputs: Any, criterion: str = "l1", tolerance: float = 1e-4,
          custom_modules: tuple[str, ...] = (), **plan_options: Any) -> KerasPruneResult:
    """Prune a built Keras model (left unchanged) and return a pruned Keras model of the same classes.

    A Functional or Sequential model is rebuilt from its config with the
    pruned widths; a subclassed one is copied and its layers patched in place
    (see keras_surgery). `example_inputs` is an array (or tuple of arrays) of
    the model's input shape; `criterion` and `plan_options` are those of
    `spa.Model.plan`. On a backend other than torch, the model is pruned in a
    torch-backend child process, which imports the modules that define the
    model's own classes, and `custom_modules` (more modules registering
    custom classes), before loading it. Raises SPAError
    if the model can be neither rebuilt nor copied, a variable cannot be
    matched to the ONNX model, or the pruned model differs from the pruned
    ONNX model by more than `tolerance`.
    """
    import keras

    arrays_in = tuple(np.asarray(x, dtype=np.float32)
                      for x in as_tuple(example_inputs))
    if keras.backend.backend() == "torch" and mlir_loads_here():
        return prune_on_torch(model, arrays_in, criterion, tolerance, plan_options)
    modules = _defining_modules(model, tuple(custom_modules))
    pruned, onnx_model, plan, rebuilt = prune_in_worker(model, arrays_in, criterion, tolerance, modules,
                                                        plan_options)
    difference = _check(pruned, onnx_model, arrays_in, tolerance)
    return KerasPruneResult(pruned, onnx_model, plan, difference, rebuilt, arrays_in)


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


def prune_on_torch(model: Any, arrays_in: tuple[np.ndarray, ...], criterion: str, tolerance: float,
                   plan_options: dict[str, Any]) -> KerasPruneResult:
    """`prune` for a model on the torch backend (this process's)."""
    import torch

    from spa.frameworks.torch_adapter import export  # loads MLIR, which the other backends' processes must not

    tensors = tuple(torch.as_tensor(x) for x in arrays_in)
    pruned = prune_exported(export(model, tensors), criterion, **plan_options)
    rebuild_problem = ""
    if rebuildable(model):
        try:
            result = _rebuild(model, pruned.arrays)
            _forward(result, arrays_in, "Keras adapter: the rebuilt model")  # builds every layer at its new width
            _assign(result, model, pruned.arrays)
            difference = _check(result, pruned.onnx_model, arrays_in, tolerance)
            return KerasPruneResult(result, pruned.onnx_model, pruned.plan, difference, True, arrays_in)
        except SPAError as error:  # a layer keeps a width under its own config key, say: patch in place
            rebuild_problem = f"; rebuilding it failed first: {error}"
    try:
        result = patched_copy(model, pruned_values(model, pruned.arrays))
        difference = _check(result, pruned.onnx_model, arrays_in, tolerance)
    except SPAError as error:
        raise SPAError(f"{error}{rebuild_problem}") from None
    return KerasPruneResult(result, pruned.onnx_model, pruned.plan, difference, False, arrays_in)


def rebuildable(model: Any) -> bool:
    """Whether the model's config lists its layers (Functional, Sequential), so widths can be set there."""
    try:
        return "layers" in model.get_config()
    except Exception:  # noqa: BLE001 - a subclassed model's get_config may raise anything
        return False


def pruned_values(model: Any, arrays: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Each variable's pruned value (by path) in `model.weights` order; variables not in the ONNX model (a
    seed, a training counter) keep theirs."""
    return [arrays[PREFIX + v.path] if PREFIX + v.path in arrays else np.asarray(v.numpy()) for v in model.weights]


def call(model: Any, inputs: tuple[np.ndarray, ...]) -> Any:
    """`model` on `inputs`: a Keras model takes several inputs as one list (a second positional is `training`)."""
    return model(inputs[0] if len(inputs) == 1 else list(inputs))


def _rebuild(model: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The model re-created from its config with each layer's width read off its pruned kernel."""
    config = copy.deepcopy(model.get_config())
    for layer in config["layers"]:
        layer.pop("build_config", None)  # recorded input shapes are the unpruned ones; build from the new inputs
        settings = layer.get("config", {})
        kernel = arrays.get(f"{PREFIX}{settings.get('name')}/kernel")
        if kernel is None:
            continue
        for key in WIDTH_KEYS:
            if key in settings:
                settings[key] = int(kernel.shape[-1])
    try:
        return type(model).from_config(config)
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds here
        raise SPAError(f"Keras adapter: {type(model).__name__} cannot be rebuilt from its config "
                       f"({type(error).__name__}: {error})") from None


def _assign(rebuilt: Any, original: Any, arrays: dict[str, np.ndarray]) -> None:
    """Every variable of the rebuilt model takes its pruned value (by path) or keeps its original one."""
    originals = {variable.path: variable for variable in original.weights}
    for variable in rebuilt.weights:
        value = arrays.get(PREFIX + variable.path)
        if value is None and variable.path in originals:
            value = np.asarray(originals[variable.path].numpy())  # not in the graph (e.g. a training counter)
        if value is None or tuple(value.shape) != tuple(variable.shape):
            raise SPAError(f"Keras adapter: variable {variable.path} has no pruned value of shape "
                           f"{tuple(variable.shape)} in the ONNX model")
        variable.assign(value.astype(variable.dtype))


def _check(model: Any, pruned: onnx.ModelProto, inputs: tuple, tolerance: float) -> float:
    import keras

    label = f"Keras adapter: the pruned model ({keras.backend.backend()} backend)"
    expected = _forward(model, inputs, label)
    expected = [expected] if not isinstance(expected, (list, tuple)) else list(expected)
    outputs = [np.asarray(keras.ops.convert_to_numpy(e)) for e in expected]
    feeds = {f"input_{i}": np.asarray(x, np.float32) for i, x in enumerate(inputs)}
    return compare_with_onnx(label, outputs, pruned, feeds, tolerance)


def _forward(model: Any, inputs: tuple, label: str) -> Any:
    """`call`, with a failure (a width kept somewhere SPA does not patch) reported as SPAError."""
    try:
        return call(model, inputs)
    except Exception as error:  # noqa: BLE001 - Keras and its backends raise many kinds here
        raise forward_failure(label, error) from None
