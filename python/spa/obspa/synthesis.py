"""Data-free inputs from the model itself: inputs whose BatchNorm statistics match the trained ones.

Every BatchNorm remembers the mean and variance of what reached it during
training. Starting from Gaussian noise in the model's normalised input
space, a batch of inputs is optimised (Adam) so that at every BatchNorm the
batch's per-channel mean and standard deviation approach the running ones
(the ZeroQ / DeepInversion objective), with a small total-variation prior
for images. Gradients come from PyTorch, through the onnx2torch conversion
of the `torch` extra (`pip install "spa[torch]"`). Without PyTorch and
onnx2torch, or for a model without BatchNorm or with more than one input,
`synthesized_inputs` returns None and data-free OBSPA keeps its Gaussian
inputs (its report says which it used). Results are kept in spa.cache, so
re-planning the same model at another target does not synthesise again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx

from spa.cache import digest, load_arrays, store_arrays
from spa.obspa.batchnorm import batchnorm_parameters
from spa.progress import progress_bar
from spa.verify.inputs import graph_inputs, resolve_shapes

ONNX2TORCH_OPSET = 17  # the newest opset whose operators onnx2torch 1.5 converts


def synthesized_inputs(model: onnx.ModelProto, samples: int, steps: int, seed: int,
                       input_shapes: Mapping[str, Sequence[int]] | None = None, quiet: bool = False
                       ) -> dict[str, np.ndarray] | None:
    """{input name: (samples, ...) float32 array} optimised as the module doc says, or None."""
    inputs = graph_inputs(model)
    if len(inputs) != 1 or inputs[0].dtype != np.float32 or not batchnorm_parameters(model):
        return None
    key = digest([model.SerializeToString(), f"{samples} {steps} {seed} {sorted((input_shapes or {}).items())}"])
    cached = load_arrays("synthesis", key)
    if cached is not None and set(cached) == {inputs[0].name}:
        return cached
    result = _optimised(model, inputs, samples, steps, seed, input_shapes, quiet)
    if result is not None:
        store_arrays("synthesis", key, result)
    return result


def _optimised(model: onnx.ModelProto, inputs, samples: int, steps: int, seed: int,
               input_shapes: Mapping[str, Sequence[int]] | None, quiet: bool) -> dict[str, np.ndarray] | None:
    module = _torch_module(model)
    if module is None:
        return None
    import torch

    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return None
    name = inputs[0].name
    shape = resolve_shapes(inputs, input_shapes)[name][1:]
    from spa.obspa.hessians import input_normalisation

    mean, std = (torch.from_numpy(np.asarray(a, np.float32)) for a in input_normalisation(model, name))
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn((samples, *shape), generator=generator, requires_grad=True)  # normalised space
    captured: list[tuple[torch.nn.Module, torch.Tensor]] = []
    hooks = [norm.register_forward_hook(lambda m, args, out: captured.append((m, args[0]))) for norm in norms]
    optimizer = torch.optim.Adam([z], lr=0.1)
    bar = progress_bar(total=steps, description="synthesising inputs", quiet=quiet)
    try:
        for _ in range(steps):
            captured.clear()
            optimizer.zero_grad()
            module(mean + std * z)
            loss = sum(_statistics_gap(norm, x) for norm, x in captured) + 1e-3 * _total_variation(z)
            loss.backward()
            optimizer.step()
            bar.update(1)
    finally:
        for hook in hooks:
            hook.remove()
        bar.close()
    return {name: (mean + std * z.detach()).numpy().astype(np.float32)}


def _statistics_gap(norm, x):
    axes = [0, *range(2, x.dim())]
    mean, std = x.mean(dim=axes), (x.var(dim=axes, unbiased=False) + norm.eps).sqrt()
    return (mean - norm.running_mean).norm() + (std - (norm.running_var + norm.eps).sqrt()).norm()


def _total_variation(z):
    if z.dim() < 4:
        return z.new_zeros(())
    return (z[..., 1:, :] - z[..., :-1, :]).abs().mean() + (z[..., :, 1:] - z[..., :, :-1]).abs().mean()


def _torch_module(model: onnx.ModelProto):
    """The model as a torch module in eval mode, or None when torch/onnx2torch or the conversion fail."""
    try:
        import onnx2torch
        import torch  # noqa: F401
    except ImportError:
        return None
    from spa.exporter.opset import convert_opset

    try:
        converted = convert_opset(_unshared(model), ONNX2TORCH_OPSET, required=True)
        module = onnx2torch.convert(converted).eval()
    except Exception:  # noqa: BLE001 - an unconvertible model falls back to Gaussian inputs
        return None
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module


def _unshared(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy in which each Identity of an initializer is an initializer of its own (so onnx2torch sees a
    BatchNorm's statistics as constants and makes it a torch BatchNorm module)."""
    from onnx import numpy_helper

    result = onnx.ModelProto()
    result.CopyFrom(model)
    tensors = {t.name: t for t in result.graph.initializer}
    nodes = []
    for node in result.graph.node:
        if node.op_type == "Identity" and node.input and node.input[0] in tensors:
            result.graph.initializer.append(numpy_helper.from_array(numpy_helper.to_array(tensors[node.input[0]]),
                                                                    node.output[0]))
        else:
            nodes.append(node)
    del result.graph.node[:]
    result.graph.node.extend(nodes)
    return result
