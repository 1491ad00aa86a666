"""Pruning a Keras model on the torch backend, in this process: export, prune, then rebuild or patch.

On the torch backend a Keras model is a `torch.nn.Module` whose variables
are parameters named `_torch_params.<variable path>`, so it is exported with
those names kept (see torch_adapter.export). After SPA prunes the ONNX
model, a Functional or Sequential model is rebuilt from its config with
`filters` / `units` read off the pruned kernels (other widths follow from the
inputs when Keras builds the layers), and every variable takes its pruned
value by path; a subclassed model, whose widths are made in code, is made
anew and patched in place (see surgery).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from spa.errors import SPAError
from spa.frameworks.checking import forward_failure
from spa.frameworks.keras.calls import KerasAdapter
from spa.frameworks.keras.surgery import patched_copy
from spa.frameworks.pipeline import prune_exported
from spa.frameworks.protocol import PruneResult, check_against_onnx

PREFIX = "_torch_params."
WIDTH_KEYS = ("filters", "units")  # the output width in a layer's config, read off the kernel's last axis


def prune_on_torch(model: Any, arrays_in: tuple[np.ndarray, ...], criterion: str, tolerance: float,
                   plan_options: dict[str, Any]) -> PruneResult:
    """spa.keras.prune for a model on the torch backend (this process's); `extras["rebuilt"]` says whether
    the model was rebuilt from its config or patched in place."""
    import torch

    from spa.frameworks.torch_adapter import export  # loads MLIR, which the other backends' processes must not

    tensors = tuple(torch.as_tensor(x) for x in arrays_in)
    pruned = prune_exported(export(model, tensors), criterion, **plan_options)
    adapter, rebuild_problem = KerasAdapter(), ""
    if rebuildable(model):
        try:
            result = _rebuild(model, pruned.arrays)
            try:
                adapter.outputs(result, arrays_in)  # builds every layer at its new width
            except Exception as error:  # noqa: BLE001 - Keras and its backends raise many kinds here
                raise forward_failure("Keras adapter: the rebuilt model", error) from None
            _assign(result, model, pruned.arrays)
            difference = check_against_onnx(adapter, result, pruned.onnx_model, arrays_in, tolerance)
            return PruneResult(result, pruned.onnx_model, pruned.plan, difference, extras={"rebuilt": True})
        except SPAError as error:  # a layer keeps a width under its own config key, say: patch in place
            rebuild_problem = f"; rebuilding it failed first: {error}"
    try:
        result = patched_copy(model, pruned_values(model, pruned.arrays))
        difference = check_against_onnx(adapter, result, pruned.onnx_model, arrays_in, tolerance)
    except SPAError as error:
        raise SPAError(f"{error}{rebuild_problem}") from None
    return PruneResult(result, pruned.onnx_model, pruned.plan, difference, extras={"rebuilt": False})


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
