"""Prune a PyTorch module with SPA and get the same module class back, ready to train on.

    import spa.torch
    result = spa.torch.prune(net, torch.randn(1, 3, 224, 224), criterion="l1", ratio=0.3)
    net = result.module            # a pruned deep copy of `net`, same classes, fewer channels

The module is exported with the TorchScript exporter without constant
folding, so ONNX initializers carry the parameter and buffer names; SPA
analyses and prunes the ONNX model; then every parameter and buffer of a
deep copy is replaced by its pruned array, and the layer attributes that
describe widths are fixed (Conv in/out channels and depthwise groups, Linear
features, BatchNorm/InstanceNorm/GroupNorm channels, LayerNorm shape,
embeddings). The copy is checked against the pruned ONNX model in
onnxruntime before it is returned. Groups touching layers whose widths
cannot change (torch's MultiheadAttention, torchvision's Swin attention) are
kept. A module that cannot be patched otherwise (its
forward hard-codes a width, say) is never handed back silently wrong: with
onnx2torch installed, the pruned ONNX model is converted to a torch.fx
module instead (checked the same way, `result.patched` is False and a
SPAWarning says why); without it, or with `fallback=False`, SPAError is raised.
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from spa.errors import SPAError, SPAWarning, first_line
from spa.exporter.opset import convert_opset
from spa.frameworks.checking import compare_with_onnx, forward_failure
from spa.frameworks.pipeline import as_tuple, prune_exported
from spa.frameworks.widths import pruned_groups
from spa.groups import Plan
from spa.importer.model_prep import default_opset

ONNX2TORCH_OPSET = 17  # the newest opset whose operators onnx2torch 1.5 converts


@dataclass
class TorchPruneResult:
    """`module`: the pruned copy; `onnx_model`: the pruned ONNX model; `plan`: what was removed;
    `max_difference`: largest |module - onnxruntime| output difference on the example inputs;
    `patched`: True when `module` has the original's classes, False when it was converted by onnx2torch."""

    module: Any
    onnx_model: onnx.ModelProto
    plan: Plan
    max_difference: float
    patched: bool = True


def export(module: Any, example_inputs: Any) -> onnx.ModelProto:
    """The module as ONNX with parameter names kept (TorchScript exporter, no constant folding, eval mode)."""
    import torch

    inputs = as_tuple(example_inputs)
    names = [f"input_{i}" for i in range(len(inputs))]
    buffer = io.BytesIO()
    module.named_parameters()  # a Keras model loaded from a file hands its variables to torch here, lazily
    was_training = module.training
    module.eval()
    try:
        torch.onnx.export(module, inputs, buffer, dynamo=False, do_constant_folding=False, input_names=names,
                          dynamic_axes={name: {0: "batch"} for name in names})
    finally:
        module.train(was_training)
    return onnx.load_from_string(buffer.getvalue())


def prune(module: Any, example_inputs: Any, criterion: str = "l1", tolerance: float = 1e-4, fallback: bool = True,
          **plan_options: Any) -> TorchPruneResult:
    """Prune `module` (left unchanged) and return a pruned deep copy of the same classes.

    `example_inputs` is a tensor or a tuple of tensors (the batch axis is
    dynamic); `criterion` and `plan_options` are those of `spa.Model.plan`
    (ratio, target_flops, global_ranking, round_to, protect, calibration,
    provider, ...). When a parameter cannot be matched to the ONNX model or
    the pruned copy differs from the pruned ONNX model by more than
    `tolerance` (relative to the output scale), the result is the pruned
    ONNX model converted by onnx2torch if `fallback` (with a SPAWarning),
    else SPAError.
    """
    pruned = prune_exported(export(module, example_inputs), criterion, keep=_unpatchable_parameters(module),
                            **plan_options)
    try:
        result = copy.deepcopy(module)
        _replace_tensors(result, pruned.arrays)
        _fix_layer_attributes(result)
        _fix_attention_heads(result, plan_options.get("heads", "dims"))
        difference = _check(result, pruned.onnx_model, example_inputs, tolerance)
        return TorchPruneResult(result, pruned.onnx_model, pruned.plan, difference)
    except SPAError as error:
        if not fallback:
            raise
        reason = error
    converted = _convert(pruned.onnx_model, reason).train(module.training)
    difference = _check(converted, pruned.onnx_model, example_inputs, tolerance)
    warnings.warn(f"{reason}; returned the pruned ONNX model converted by onnx2torch instead (a torch.fx module, "
                  "not your classes; result.patched is False)", SPAWarning, stacklevel=2)
    return TorchPruneResult(converted, pruned.onnx_model, pruned.plan, difference, patched=False)


def _unpatchable_parameters(module: Any) -> list[str]:
    """Parameters of layers whose widths cannot change while keeping their class: torch's
    MultiheadAttention needs q/k/v widths equal to embed_dim and to its input width, and
    torchvision's Swin attention derives its head size from the input width. Their groups are kept."""
    from torch import nn

    names = []
    for prefix, layer in module.named_modules():
        kind = type(layer)
        if isinstance(layer, nn.MultiheadAttention) or (
                kind.__module__.startswith("torchvision.models.swin_transformer") and "Attention" in kind.__name__):
            names += [f"{prefix}.{name}" if prefix else name for name, _ in layer.named_parameters()]
    return names


def _convert(pruned: onnx.ModelProto, reason: SPAError) -> Any:
    """The pruned ONNX model as a torch.fx module, by onnx2torch; re-raises `reason` if that cannot be done."""
    try:
        from onnx2torch import convert
    except ImportError:
        raise SPAError(f"{reason} (install onnx2torch to get the pruned model as a converted torch module "
                       "instead)") from None
    try:
        copy_ = onnx.ModelProto()
        copy_.CopyFrom(pruned)  # converted in place; the result keeps the pruned model as it is
        return convert(convert_opset(copy_, min(default_opset(pruned), ONNX2TORCH_OPSET), required=True))
    except Exception as error:
        raise SPAError(f"{reason}; onnx2torch cannot convert the pruned model either ({type(error).__name__}: "
                       f"{first_line(error)})") from None


def _replace_tensors(module: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """Give every parameter and buffer found in `arrays` its pruned data (same dtype and device)."""
    import torch

    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        if name not in arrays:
            if tensor.dim() > 0 and tensor.is_floating_point() and name.split(".")[-1] != "num_batches_tracked":
                raise SPAError(f"PyTorch adapter: {name} is not in the exported ONNX model under its own name; "
                               "the module cannot be patched")
            continue
        data = torch.from_numpy(np.array(arrays[name])).to(dtype=tensor.dtype, device=tensor.device)
        owner, _, leaf = name.rpartition(".")
        parent = module.get_submodule(owner) if owner else module
        if isinstance(tensor, torch.nn.Parameter):
            setattr(parent, leaf, torch.nn.Parameter(data, requires_grad=tensor.requires_grad))
        else:
            parent._buffers[leaf] = data


def _fix_layer_attributes(module: Any) -> None:
    """Make width attributes agree with the (pruned) weights, so repr, re-export and training work."""
    from torch import nn

    for layer in module.modules():
        if isinstance(layer, nn.modules.conv._ConvNd):
            weight = layer.weight
            out_channels, per_group = weight.shape[0], weight.shape[1]
            if layer.transposed:  # weight is (in, out / groups, ...)
                layer.in_channels, layer.out_channels = out_channels, per_group * layer.groups
            else:
                layer.groups = pruned_groups(layer.groups, layer.out_channels, out_channels, per_group)
                layer.in_channels, layer.out_channels = per_group * layer.groups, out_channels
        elif isinstance(layer, nn.Linear):
            layer.out_features, layer.in_features = layer.weight.shape
        elif isinstance(layer, nn.modules.batchnorm._NormBase):
            source = layer.weight if layer.weight is not None else layer.running_mean
            if source is not None:
                layer.num_features = source.shape[0]
        elif isinstance(layer, nn.GroupNorm) and layer.weight is not None:
            layer.num_channels = layer.weight.shape[0]
        elif isinstance(layer, nn.LayerNorm) and layer.weight is not None:
            layer.normalized_shape = tuple(layer.weight.shape)
        elif isinstance(layer, nn.Embedding):
            layer.num_embeddings, layer.embedding_dim = layer.weight.shape


def _fix_attention_heads(module: Any, heads: str) -> None:
    """timm-style attention (a fused `qkv` Linear, `num_heads`, `head_dim`, `attn_dim`): make the head
    count ("whole" heads pruned) or head size ("dims" pruned) agree with the pruned qkv. Pruning head dims
    keeps the softmax scale of the original head size (SPA's ONNX model does too); fused attention would
    recompute it from the new size, so such layers use their unfused path with the kept `scale`."""
    from torch import nn

    for layer in module.modules():
        qkv = getattr(layer, "qkv", None)
        if not (isinstance(qkv, nn.Linear) and all(hasattr(layer, a) for a in ("num_heads", "head_dim", "attn_dim"))):
            continue
        attn_dim = qkv.out_features // 3
        if attn_dim == layer.attn_dim:
            continue
        if heads == "whole":
            layer.num_heads = attn_dim // layer.head_dim
        else:
            layer.head_dim = attn_dim // layer.num_heads
            if getattr(layer, "fused_attn", False):
                layer.fused_attn = False
        layer.attn_dim = attn_dim


def _check(module: Any, pruned: onnx.ModelProto, example_inputs: Any, tolerance: float) -> float:
    import torch

    inputs = as_tuple(example_inputs)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            expected = module(*inputs)
    except Exception as error:  # any failure of user code means the same thing here
        raise forward_failure("PyTorch adapter: the pruned module", error) from None
    finally:
        module.train(was_training)
    expected = [expected] if isinstance(expected, torch.Tensor) else list(expected)
    feeds = {f"input_{i}": x.detach().cpu().numpy() for i, x in enumerate(inputs)}
    return compare_with_onnx("PyTorch adapter: the pruned module", [e.detach().cpu().numpy() for e in expected],
                             pruned, feeds, tolerance)
