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

A Hugging Face `transformers` model comes back as the same class rebuilt
from a config with its widths updated (hidden_size, intermediate_size,
num_attention_heads, num_key_value_heads, head_dim, ...), so
`save_pretrained`/`from_pretrained` and `generate()` work: example inputs
are given by name (`{"input_ids": ..., "attention_mask": ...}`), heads are
pruned whole by default (a config has no way to say which RoPE frequencies
a head kept), every layer loses the same number of channels (uniform
allocation), and widths the family's config cannot express on their own
(BERT's and GPT-2's hidden size, which also set their attention width) are
kept, with a SPAWarning (spa.frameworks.hf_widths).
"""

from __future__ import annotations

import copy
import io
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx

from spa.errors import SPAError, SPAWarning, first_line
from spa.exporter.opset import convert_opset
from spa.frameworks.hf_rebuild import rebuild
from spa.frameworks.hf_widths import ConfigWidths, hold_inexpressible, is_transformers_model, rounding_for_config
from spa.frameworks.pipeline import PrunedExport, prune_exported
from spa.frameworks.protocol import (FrameworkAdapter, PruneResult, check_against_onnx, checked_copy,
                                     in_inference_mode)
from spa.frameworks.torch_calls import Call, by_position, flat_outputs, in_float32, tidy_export, without_cache
from spa.frameworks.widths import pruned_groups
from spa.ir.onnx_model import default_opset, initializers_of_their_own

ONNX2TORCH_OPSET = 17  # the newest opset whose operators onnx2torch 1.5 converts
# A half-precision model is pruned as float32 and its refitted weights rounded back: the check against the
# pruned ONNX model allows this many units of the dtype's rounding (a wrong width is off by far more).
HALF_PRECISION_SLACK = 4.0


TorchPruneResult = PruneResult  # `result.module` is the pruned module; `result.patched` says whose classes


def export(module: Any, example_inputs: Any) -> onnx.ModelProto:
    """The module as ONNX with parameter names kept (TorchScript exporter, no constant folding, eval mode).
    A mapping of example inputs is passed by name and names the ONNX inputs (see torch_calls.Call)."""
    import torch

    call = Call.of(example_inputs)
    buffer = io.BytesIO()
    module.named_parameters()  # a Keras model loaded from a file hands its variables to torch here, lazily
    with in_inference_mode(module), without_cache(module), in_float32(module, call) as (call, _), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(by_position(module, call), call.tensors(), buffer, dynamo=False,
                          do_constant_folding=False, keep_initializers_as_inputs=True,
                          input_names=list(call.names),
                          dynamic_axes=call.dynamic_axes())
    exported = onnx.load_from_string(buffer.getvalue())
    tidy_export(exported)
    return exported


def prune(module: Any, example_inputs: Any, criterion: str = "l1", tolerance: float = 1e-4, fallback: bool = True,
          **plan_options: Any) -> PruneResult:
    """Prune `module` (left unchanged) and return a pruned deep copy of the same classes.

    `example_inputs` is a tensor, a tuple of tensors, or a mapping passed by
    name (the batch axis is dynamic, and so is the length of token ids); `criterion` and `plan_options` are those of `spa.Model.plan`
    (ratio, target_flops, global_ranking, round_to, protect, calibration,
    provider, ...). When a parameter cannot be matched to the ONNX model or
    the pruned copy differs from the pruned ONNX model by more than
    `tolerance` (relative to the output scale), the result is the pruned
    ONNX model converted by onnx2torch if `fallback` (with a SPAWarning),
    else SPAError. A transformers model is rebuilt from a config instead (no
    onnx2torch fallback: a torch.fx module would not be a transformers model).
    """
    if is_transformers_model(module):
        return _prune_transformers(module, example_inputs, criterion, tolerance, plan_options)
    adapter = TorchAdapter(plan_options.get("heads", "dims"))
    inputs = (example_inputs,)  # one Call's worth: a tensor, a tuple of them or a mapping (see torch_calls)
    pruned = prune_exported(adapter.export(module, inputs), criterion, keep=_unpatchable_parameters(module),
                            **plan_options)
    try:
        return checked_copy(adapter, module, pruned, inputs, tolerance)
    except SPAError as error:
        if not fallback:
            raise
        reason = error
    converted = _convert(pruned.onnx_model, reason).train(module.training)
    difference = check_against_onnx(adapter, converted, pruned.onnx_model, inputs, tolerance)
    warnings.warn(f"{reason}; returned the pruned ONNX model converted by onnx2torch instead (a torch.fx module, "
                  "not your classes; result.patched is False)", SPAWarning, stacklevel=2)
    return PruneResult(converted, pruned.onnx_model, pruned.plan, difference, patched=False, model_name="module")


class TorchAdapter(FrameworkAdapter):
    """PyTorch for spa.frameworks.protocol: `inputs` is a one-tuple of the example inputs as the user gave
    them (a tensor, a tuple of tensors or a mapping by name; see torch_calls.Call). `heads` is how attention
    was pruned (spa.Model.heads)."""

    label, model_name = "PyTorch adapter", "module"

    def __init__(self, heads: str = "dims") -> None:
        self.heads = heads
        self._rounding = 0.0  # of the dtype the last outputs were computed in (0 in float32)

    def export(self, module: Any, inputs: tuple) -> onnx.ModelProto:
        return export(module, inputs[0])

    def pruned_copy(self, module: Any, pruned: PrunedExport) -> Any:
        result = copy.deepcopy(module)
        _replace_tensors(result, pruned.arrays)
        _fix_layer_attributes(result)
        _fix_attention_heads(result, self.heads)
        return result

    def outputs(self, module: Any, inputs: tuple) -> list[np.ndarray]:
        import torch

        with torch.no_grad(), in_inference_mode(module), without_cache(module), \
                in_float32(module, Call.of(inputs[0])) as (call, self._rounding):
            return flat_outputs(module(*call.args, **call.kwargs))

    def feeds(self, pruned: onnx.ModelProto, inputs: tuple) -> dict[str, np.ndarray]:
        # a half-precision model was exported in float32 with its inputs widened (see in_float32); so are the
        # feeds (`outputs`, which runs first, found the model's narrowest dtype)
        call = Call.of(inputs[0])
        return (call.in_float32() if self._rounding else call).feeds({i.name for i in pruned.graph.input})

    def tolerance(self, tolerance: float) -> float:
        return max(tolerance, HALF_PRECISION_SLACK * self._rounding)  # refitted weights were rounded to the dtype


def _prune_transformers(module: Any, example_inputs: Any, criterion: str, tolerance: float,
                        plan_options: dict[str, Any]) -> PruneResult:
    """A transformers model rebuilt from the config of its pruned widths (see the module doc). When the
    rebuilt model computes something else than the pruned ONNX model (Gemma scales its embeddings by
    sqrt(hidden_size), read from the config), the width whose change explains it is kept and the model
    pruned again; a torch.fx module would not be a transformers model, so there is no onnx2torch fallback."""
    plan_options.setdefault("heads", "whole")
    if not plan_options.get("global_ranking"):
        plan_options.setdefault("allocation", "uniform")
    widths = ConfigWidths(module, plan_options["heads"])
    adapter, inputs = TorchAdapter(plan_options["heads"]), (example_inputs,)
    exported = adapter.export(module, inputs)
    while True:
        pruned = prune_exported(exported, criterion, keep=_unpatchable_parameters(module),
                                restrict=lambda model: _hold_for_config(model, widths),
                                replan=lambda model, plan: rounding_for_config(model, plan, widths), **plan_options)
        result = rebuild(module, pruned.arrays, widths)
        try:
            difference = check_against_onnx(adapter, result, pruned.onnx_model, inputs, tolerance)
            return PruneResult(result, pruned.onnx_model, pruned.plan, difference, model_name="module")
        except SPAError as error:
            changed = sorted(widths.changed_fields(result.config) - widths.held_fields, key=widths.fields.index)
            if not changed:
                raise SPAError(f"{first_line(error)}; {type(module).__name__} rebuilt from its pruned config computes "
                               "something else than the pruned ONNX model (keep the widths it derives values from with "
                               "protect=[...])") from None
            widths.held_fields.add(changed[0])
            warnings.warn(f"{type(module).__name__} rebuilt with a smaller {changed[0]} differs from the pruned ONNX "
                          f"model ({first_line(error)}); keeping {changed[0]} and pruning again", SPAWarning,
                          stacklevel=3)


def _hold_for_config(model: Any, widths: ConfigWidths) -> None:
    """Hold the groups a transformers config cannot express, and say which (once per call)."""
    for note in hold_inexpressible(model, widths):
        warnings.warn(f"kept {note}", SPAWarning, stacklevel=4)


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
        copy_ = initializers_of_their_own(pruned)  # a copy (converted in place); onnx2torch reads initializers only
        return convert(convert_opset(copy_, min(default_opset(pruned), ONNX2TORCH_OPSET), required=True))
    except Exception as error:
        raise SPAError(f"{reason}; onnx2torch cannot convert the pruned model either ({type(error).__name__}: "
                       f"{first_line(error)})") from None


def _replace_tensors(module: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """Give every parameter and buffer found in `arrays` its pruned data (same dtype and device)."""
    import torch

    recomputed = _non_persistent_buffers(module)
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        if name not in arrays:
            if tensor.dim() > 0 and tensor.is_floating_point() and name not in recomputed:
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


def _non_persistent_buffers(module: Any) -> set[str]:
    """Buffers a module recomputes from its configuration (rotary frequencies, say): they are not
    saved, need not appear in the export, and the check against the pruned ONNX model covers them."""
    return {f"{prefix}.{leaf}" if prefix else leaf for prefix, layer in module.named_modules()
            for leaf in getattr(layer, "_non_persistent_buffers_set", ())}


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
