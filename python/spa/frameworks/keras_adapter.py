"""Prune a Keras 3 model with SPA and get a Keras model back, on any Keras backend.

    import spa.keras
    result = spa.keras.prune(model, example_inputs, criterion="l2", ratio=0.3)
    pruned = result.model            # a Keras model of the same classes, with fewer units and filters

On the torch backend a Keras model is a `torch.nn.Module` whose variables
are parameters named `_torch_params.<variable path>`, so it is exported with
those names kept (see torch_adapter.export). After SPA prunes the ONNX
model, the model is rebuilt from its config with `filters` / `units` read
off the pruned kernels (other widths follow from the inputs when Keras
builds the layers), and every variable takes its pruned value by path.
Models on the TensorFlow or JAX backend are pruned the same way in a
torch-backend child process (see keras_worker). Either way the returned
model is checked against the pruned ONNX model in onnxruntime.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from spa.errors import SPAError
from spa.frameworks.checking import compare_with_onnx
from spa.frameworks.keras_worker import mlir_loads_here, prune_in_worker
from spa.frameworks.pipeline import as_tuple, prune_exported
from spa.groups import Plan

PREFIX = "_torch_params."
WIDTH_KEYS = ("filters", "units")  # the output width in a layer's config, read off the kernel's last axis


@dataclass
class KerasPruneResult:
    """`model`: the pruned Keras model; `onnx_model`: the pruned ONNX model; `plan`: what was removed;
    `max_difference`: largest |Keras - onnxruntime| output difference on the example inputs."""

    model: Any
    onnx_model: onnx.ModelProto
    plan: Plan
    max_difference: float


def prune(model: Any, example_inputs: Any, criterion: str = "l1", tolerance: float = 1e-4,
          custom_modules: tuple[str, ...] = (), **plan_options: Any) -> KerasPruneResult:
    """Prune a built Keras model (left unchanged) and return a rebuilt, pruned Keras model.

    `example_inputs` is an array (or tuple of arrays) of the model's input
    shape; `criterion` and `plan_options` are those of `spa.Model.plan`. On a
    backend other than torch, the model is pruned in a torch-backend child
    process, which imports `custom_modules` (modules registering the model's
    custom layers) before loading it. Raises SPAError if the model cannot be
    rebuilt from its config, a variable cannot be matched to the ONNX model,
    or the pruned model differs from the pruned ONNX model by more than
    `tolerance`.
    """
    import keras

    arrays_in = tuple(np.asarray(x, dtype=np.float32)
                      for x in as_tuple(example_inputs))
    if keras.backend.backend() == "torch" and mlir_loads_here():
        return prune_on_torch(model, arrays_in, criterion, tolerance, plan_options)
    pruned, onnx_model, plan = prune_in_worker(model, arrays_in, criterion, tolerance, tuple(custom_modules),
                                               plan_options)
    difference = _check(pruned, onnx_model, arrays_in, tolerance)
    return KerasPruneResult(pruned, onnx_model, plan, difference)


def prune_on_torch(model: Any, arrays_in: tuple[np.ndarray, ...], criterion: str, tolerance: float,
                   plan_options: dict[str, Any]) -> KerasPruneResult:
    """`prune` for a model on the torch backend (this process's)."""
    import torch

    from spa.frameworks.torch_adapter import export  # loads MLIR, which the other backends' processes must not

    tensors = tuple(torch.as_tensor(x) for x in arrays_in)
    pruned = prune_exported(export(model, tensors), criterion, **plan_options)
    rebuilt = _rebuild(model, pruned.arrays)
    call(rebuilt, arrays_in)  # builds every layer at its new width
    _assign(rebuilt, model, pruned.arrays)
    difference = _check(rebuilt, pruned.onnx_model, arrays_in, tolerance)
    return KerasPruneResult(rebuilt, pruned.onnx_model, pruned.plan, difference)


def call(model: Any, inputs: tuple[np.ndarray, ...]) -> Any:
    """`model` on `inputs`: a Keras model takes several inputs as one list (a second positional is `training`)."""
    return model(inputs[0] if len(inputs) == 1 else list(inputs))


def _rebuild(model: Any, arrays: dict[str, np.ndarray]) -> Any:
    """The model re-created from its config with each layer's width read off its pruned kernel."""
    config = copy.deepcopy(model.get_config())
    if "layers" not in config:
        raise SPAError(f"Keras adapter: {type(model).__name__} is a subclassed model (its layers and their widths "
                       "are made in code, not in its config), so it cannot be rebuilt with pruned widths; build it "
                       "as a Functional or Sequential model, or export it to ONNX and prune that (spa.load, Model.prune)")
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

    expected = call(model, inputs)
    expected = [expected] if not isinstance(expected, (list, tuple)) else list(expected)
    outputs = [np.asarray(keras.ops.convert_to_numpy(e)) for e in expected]
    feeds = {f"input_{i}": np.asarray(x, np.float32) for i, x in enumerate(inputs)}
    label = f"Keras adapter: the pruned model ({keras.backend.backend()} backend)"
    return compare_with_onnx(label, outputs, pruned, feeds, tolerance)
