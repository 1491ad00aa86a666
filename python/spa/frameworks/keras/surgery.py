"""Give a copy of a built Keras model pruned variables in place, for models that cannot be rebuilt from config.

A subclassed model makes its layers, and their widths, in code, so
`from_config` gives back the original widths. Such a model is made anew from
its config (so its `__init__` arguments must be serializable, as Keras
requires to save it) and built, every variable takes its pruned value, and
each variable whose pruned shape differs is replaced by a
new one of that shape, the way Keras' own quantization swaps a layer's kernel:
untracked, re-added with `add_weight`, and put back in its place so the
order of `model.weights` stays the same. The layer attributes that describe
widths are then fixed: the output width (`filters`, `units`) and the channel
count its input spec checks. A layer whose forward keeps another width
somewhere (a hard-coded reshape, say) is caught by the adapter's comparison
with the pruned ONNX model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from spa.errors import SPAError, first_line


def patched_copy(model: Any, values: Sequence[np.ndarray]) -> Any:
    """A copy of `model` whose variables (in `model.weights` order) take `values`, widths fixed to match."""
    if len(values) != len(model.weights):
        raise SPAError(f"Keras adapter: {type(model).__name__} has {len(model.weights)} variables but the pruned "
                       f"model {len(values)}; the copy does not have the layers of the pruned one")
    patched = _copy(model)
    for original, made in zip(model._flatten_layers(include_self=True), patched._flatten_layers(include_self=True)):
        if made.trainable != original.trainable:
            made.trainable = original.trainable  # frozen after construction, which the config does not say
    changed = {}
    for variable, value in zip(list(patched.weights), values):
        if tuple(variable.shape) != tuple(value.shape):
            changed.setdefault(id(_owner(patched, variable)), []).append((variable, value))
        else:
            variable.assign(np.asarray(value).astype(variable.dtype))
    layers = {id(layer): layer for layer in patched._flatten_layers(include_self=True)}
    for key, replacements in changed.items():
        layer = layers[key]
        for variable, value in replacements:
            _replace(layer, variable, value)
        _fix_widths(layer)
    _forget_compiled_functions(patched)
    _retrack_torch_parameters(patched)
    return patched


def _copy(model: Any) -> Any:
    """A new model of the same classes made from `model`'s config and built at its input shape; its variables
    have the widths the code makes, which `patched_copy` then replaces. (Keras' deepcopy would load
    `model`'s variables, whose pruned shapes do not fit a model the code makes anew.)"""
    import keras

    classes = {type(layer).__name__: type(layer) for layer in model._flatten_layers(include_self=True)}
    try:
        config = keras.saving.serialize_keras_object(model)
        config.pop("compile_config", None)  # its optimizer would be built for the variables about to be replaced
        with keras.saving.custom_object_scope(classes):
            made = keras.saving.deserialize_keras_object(config)
        if not made.built:
            made.build_from_config(model.get_build_config())
    except Exception as error:  # noqa: BLE001 - Keras raises many kinds here
        raise SPAError(f"Keras adapter: {type(model).__name__} cannot be rebuilt from its config with pruned "
                       f"widths, and it cannot be made anew to be pruned in place either ({type(error).__name__}: "
                       f"{first_line(error)}); give its __init__ only serializable arguments or a get_config, "
                       "or export it to ONNX and prune that (spa.load, Model.prune)") from None
    return made


def _owner(model: Any, variable: Any) -> Any:
    """The one layer that tracks `variable` itself (a variable two layers share is refused: both would need
    the new one)."""
    owners = [layer for layer in model._flatten_layers(include_self=True)
              if any(own is variable for own in layer._trainable_variables + layer._non_trainable_variables)]
    if len(owners) != 1:
        held = " and ".join(repr(layer.name) for layer in owners) or "no layer"
        raise SPAError(f"Keras adapter: variable {variable.path} of {type(model).__name__} is held by {held}, so "
                       "it cannot be given its pruned shape in place")
    return owners[0]


def _replace(layer: Any, old: Any, value: np.ndarray) -> None:
    """Swap `old` for a variable holding `value` under the same attribute, name and place in the layer."""
    attribute = next((name for name, held in vars(layer).items() if held is old), None)
    if attribute is None:
        raise SPAError(f"Keras adapter: {type(layer).__name__} {layer.name!r} keeps variable {old.path} "
                       "somewhere other than an attribute, so it cannot be given its pruned shape")
    # a frozen layer's variables stay in its trainable list with trainable=False: find the list by identity
    trainable = _position(layer._trainable_variables, old) is not None
    bucket = layer._trainable_variables if trainable else layer._non_trainable_variables
    place = _position(bucket, old)
    locked = layer._tracker.locked
    layer._tracker.unlock()
    delattr(layer, attribute)  # untracks it
    new = layer.add_weight(name=old.name, shape=value.shape, dtype=old.dtype, trainable=trainable,
                           initializer="zeros", autocast=old._autocast, regularizer=old.regularizer,
                           constraint=old.constraint, aggregation=old.aggregation,
                           overwrite_with_gradient=old.overwrite_with_gradient)
    new.assign(np.asarray(value).astype(new.dtype))
    setattr(layer, attribute, new)
    bucket.insert(place, bucket.pop(_position(bucket, new)))
    if locked:
        layer._tracker.lock()


def _position(bucket: list, variable: Any) -> int | None:
    # by identity: == on variables compares their values
    return next((index for index, held in enumerate(bucket) if held is variable), None)


def _fix_widths(layer: Any) -> None:
    """The output width attribute and the input spec's channel count, read off the layer's new variables."""
    output_width, input_width = _widths(layer)
    if output_width is not None:
        for key in ("filters", "units"):
            if hasattr(layer, key):
                setattr(layer, key, output_width)
    spec = layer.input_spec
    if input_width is not None and spec is not None and not isinstance(spec, list) and spec.axes:
        spec.axes = {axis: input_width for axis in spec.axes}


def _widths(layer: Any) -> tuple[int | None, int | None]:
    """(output width, input channels) of a layer with pruned variables, where Keras layers record them."""
    from keras import layers

    if isinstance(layer, (layers.Conv1DTranspose, layers.Conv2DTranspose, layers.Conv3DTranspose)):
        return int(layer.kernel.shape[-2]), int(layer.kernel.shape[-1])
    if isinstance(layer, (layers.DepthwiseConv1D, layers.DepthwiseConv2D)):
        return None, int(layer.kernel.shape[-2])
    if isinstance(layer, (layers.SeparableConv1D, layers.SeparableConv2D)):
        return int(layer.pointwise_kernel.shape[-1]), int(layer.depthwise_kernel.shape[-2])
    if isinstance(layer, (layers.Conv1D, layers.Conv2D, layers.Conv3D)):
        return int(layer.kernel.shape[-1]), int(layer.kernel.shape[-2]) * layer.groups
    if isinstance(layer, layers.Dense):
        return int(layer.kernel.shape[-1]), int(layer.kernel.shape[0])
    if isinstance(layer, (layers.BatchNormalization, layers.LayerNormalization, layers.GroupNormalization)):
        scales = [v for v in layer.weights if len(v.shape) == 1]
        return None, (int(scales[0].shape[0]) if scales else None)
    return None, None


def _retrack_torch_parameters(model: Any) -> None:
    """On the torch backend every enclosing layer also lists the variables as torch parameters, by path; each
    list is made anew so torch (optimizers, export) sees the pruned ones."""
    for layer in model._flatten_layers(include_self=True):
        if "_torch_params" in getattr(layer, "_modules", {}):
            layer._track_variables()


def _forget_compiled_functions(model: Any) -> None:
    """Traced predict/train functions hold the old variables; the next call traces them anew."""
    for name in ("predict_function", "train_function", "test_function"):
        if hasattr(model, name):
            setattr(model, name, None)
