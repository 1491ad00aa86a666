"""Prune a PaddlePaddle layer with SPA and get a pruned layer of the same classes back.

    import spa.paddle
    result = spa.paddle.prune(net, np.random.rand(1, 3, 32, 32).astype("float32"), criterion="l1", ratio=0.3)
    net = result.layer             # a pruned deep copy of `net`, ready to train on

The layer is exported with paddle2onnx (`paddle.onnx.export`), which names
every weight by its parameter's unique name (`conv2d_0.w_0`), so each pruned
constant goes straight back to the parameter it came from. Every parameter
of a deep copy is replaced by its pruned array and the width attributes that
Paddle's layers read in `forward` are fixed (Conv channels and depthwise
groups, norm features, LayerNorm shape, embeddings). The copy is checked
against the pruned ONNX model in onnxruntime before it is returned.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from spa.errors import SPAError, first_line
from spa.frameworks.pipeline import PrunedExport, as_tuple
from spa.frameworks.protocol import FrameworkAdapter, PruneResult, as_list, in_inference_mode, input_names, prune_with
from spa.frameworks.widths import pruned_groups

OPSET = 17  # paddle2onnx 2.0 exports opsets 7 to 19


PaddlePruneResult = PruneResult  # `result.layer` is the pruned layer


def export(layer: Any, example_inputs: Sequence[np.ndarray]) -> onnx.ModelProto:
    """`layer` as ONNX through paddle2onnx, inputs named input_0, input_1, ... with a dynamic batch axis."""
    import paddle

    specs = [paddle.static.InputSpec([None, *np.shape(x)[1:]], str(np.asarray(x).dtype), name)
             for name, x in zip(input_names(len(example_inputs)), example_inputs)]
    try:
        with in_inference_mode(layer), tempfile.TemporaryDirectory(prefix="spa-paddle-") as folder:
            prefix = str(Path(folder) / "model")
            paddle.onnx.export(layer, prefix, input_spec=specs, opset_version=OPSET)
            return onnx.load(prefix + ".onnx")
    except Exception as error:
        raise SPAError(f"Paddle adapter: paddle.onnx.export failed on {type(layer).__name__} "
                       f"({type(error).__name__}: {first_line(error)})") from None


def prune(layer: Any, example_inputs: Any, criterion: str = "l1", tolerance: float = 1e-4,
          **plan_options: Any) -> PruneResult:
    """Prune `layer` (left unchanged) and return a pruned deep copy of the same classes.

    `example_inputs` is an array or tuple of arrays (NumPy or paddle tensors;
    the batch axis is exported as dynamic); `criterion` and `plan_options` are
    those of `spa.Model.plan`. Raises SPAError when a parameter cannot be
    matched to the ONNX model or the pruned copy differs from the pruned ONNX
    model by more than `tolerance` (relative to the output scale).
    """
    inputs = tuple(_as_array(x) for x in as_tuple(example_inputs))
    return prune_with(PaddleAdapter(), layer, inputs, criterion, tolerance, **plan_options)


class PaddleAdapter(FrameworkAdapter):
    """PaddlePaddle for spa.frameworks.protocol.prune_with."""

    label, model_name = "Paddle adapter", "layer"

    def export(self, layer: Any, inputs: tuple) -> onnx.ModelProto:
        return export(layer, inputs)

    def pruned_copy(self, layer: Any, pruned: PrunedExport) -> Any:
        result = copy.deepcopy(layer)
        _replace_parameters(result, layer, pruned.arrays)
        _fix_layer_attributes(result)
        return result

    def outputs(self, layer: Any, inputs: tuple) -> list[np.ndarray]:
        import paddle

        with in_inference_mode(layer), paddle.no_grad():
            return [e.numpy() for e in as_list(layer(*[paddle.to_tensor(x) for x in inputs]))]


def _as_array(value: Any) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def _replace_parameters(copy_: Any, original: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """Each parameter of the copy takes the pruned array exported under the original's unique name."""
    import paddle

    exported_names = {path: parameter.name for path, parameter in original.named_parameters()}
    for path, parameter in list(copy_.named_parameters()):
        value = arrays.get(exported_names[path])
        if value is None:
            if any(d > 1 for d in parameter.shape):
                raise SPAError(f"Paddle adapter: parameter {path} ({exported_names[path]}) is not in the exported "
                               "ONNX model under its own name; the layer cannot be patched")
            continue
        if tuple(value.shape) == tuple(parameter.shape):
            parameter.set_value(paddle.to_tensor(value, dtype=parameter.dtype))
            continue
        replacement = paddle.create_parameter(list(value.shape), parameter.dtype,
                                              default_initializer=paddle.nn.initializer.Assign(value))
        replacement.stop_gradient = parameter.stop_gradient
        replacement.trainable = parameter.trainable
        owner, _, leaf = path.rpartition(".")
        parent = copy_
        for part in filter(None, owner.split(".")):
            parent = getattr(parent, part)
        setattr(parent, leaf, replacement)


def _fix_layer_attributes(layer: Any) -> None:
    """Make the widths Paddle's layers keep (and read in forward) agree with their pruned weights."""
    from paddle import nn

    transposed = (nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose)
    for sub in layer.sublayers(include_self=True):
        if isinstance(sub, nn.layer.conv._ConvNd):
            first, per_group = sub.weight.shape[0], sub.weight.shape[1]
            if isinstance(sub, transposed):  # weight is (in, out / groups, ...)
                sub._in_channels, sub._out_channels = first, per_group * sub._groups
            else:
                sub._groups = pruned_groups(sub._groups, sub._out_channels, first, per_group)
                sub._in_channels, sub._out_channels = per_group * sub._groups, first
        elif isinstance(sub, (nn.layer.norm._BatchNormBase, nn.layer.norm._InstanceNormBase)):
            source = next((p for p in sub.parameters() if p is not None), None)
            if source is not None:
                sub._num_features = source.shape[0]
        elif isinstance(sub, nn.GroupNorm) and sub.weight is not None:
            sub._num_channels = sub.weight.shape[0]
        elif isinstance(sub, nn.LayerNorm) and sub.weight is not None:
            sub._normalized_shape = list(sub.weight.shape)
        elif isinstance(sub, nn.Embedding):
            sub._num_embeddings, sub._embedding_dim = sub.weight.shape
            sub._size = list(sub.weight.shape)
