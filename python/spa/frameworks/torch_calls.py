"""How the PyTorch adapter calls a module: example inputs as positional tensors or named ones
(a Hugging Face model's `input_ids`, `attention_mask`, ...), and outputs flattened the way the
TorchScript exporter flattens them (tuples, ModelOutput dataclasses, nested lists)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from spa.frameworks.pipeline import as_tuple
from spa.importer.subgraph_constants import sub_graphs


@dataclass(frozen=True)
class Call:
    """`args` and `kwargs` for `module(*args, **kwargs)`; `names`: the ONNX input names, in order."""

    args: tuple
    kwargs: dict
    names: tuple[str, ...]

    @classmethod
    def of(cls, example_inputs: Any) -> Call:
        """A mapping is passed by name (its keys become the ONNX input names); a tensor or a tuple of
        tensors positionally, as input_0, input_1, ..."""
        if isinstance(example_inputs, Mapping):
            return cls((), dict(example_inputs), tuple(example_inputs))
        inputs = as_tuple(example_inputs)
        return cls(inputs, {}, tuple(f"input_{i}" for i in range(len(inputs))))

    def tensors(self) -> tuple:
        """The input tensors in ONNX input order."""
        return self.args + tuple(self.kwargs.values())

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """The batch axis of every input is dynamic, and so is the length of token-id inputs
        (2-D integer tensors), so the exported model takes other sequence lengths."""
        axes = {}
        for name, tensor in zip(self.names, self.tensors()):
            axes[name] = {0: "batch"}
            if tensor.dim() == 2 and not tensor.is_floating_point():
                axes[name][1] = "length"
        return axes

    def in_float32(self) -> Call:
        """The same call with half-precision floating inputs in float32."""
        import torch

        def widened(tensor):
            return tensor.float() if tensor.dtype in (torch.bfloat16, torch.float16) else tensor

        return Call(tuple(widened(t) for t in self.args), {k: widened(t) for k, t in self.kwargs.items()},
                    self.names)

    def feeds(self, input_names: set[str]) -> dict[str, np.ndarray]:
        """The inputs as onnxruntime feeds, for those the exported graph kept (`input_names`)."""
        return {name: tensor.detach().cpu().numpy() for name, tensor in zip(self.names, self.tensors())
                if name in input_names}


WRAPPER_PREFIX = "inner."


def by_position(module: Any, call: Call) -> Any:
    """A module taking `call`'s tensors positionally that calls `module` the way `call` does. The exporter
    would otherwise trace a model's keyword defaults (a Hugging Face model's `logits_to_keep`) as extra
    graph inputs. Its parameter names gain WRAPPER_PREFIX; `tidy_export` takes it off again."""
    import torch

    class ByPosition(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, *tensors):
            positional = len(call.args)
            return self.inner(*tensors[:positional], **dict(zip(call.names[positional:], tensors[positional:])))

    return ByPosition()


def tidy_export(model: Any) -> None:
    """Undo what the export needed: initializers are taken out of the graph inputs (they were kept there
    so that the exporter does not merge equal-valued parameters, such as two norms' all-ones weights, into
    one initializer under one name), and `by_position`'s wrapper prefix comes off their names."""
    initializers = {tensor.name for tensor in model.graph.initializer}
    kept = [value for value in model.graph.input if value.name not in initializers]
    del model.graph.input[:]
    model.graph.input.extend(kept)
    renamed = {}
    for tensor in model.graph.initializer:
        if tensor.name.startswith(WRAPPER_PREFIX):
            renamed[tensor.name] = tensor.name[len(WRAPPER_PREFIX):]
            tensor.name = renamed[tensor.name]
    for graph in (model.graph, *sub_graphs(model.graph)):
        for node in graph.node:
            node.input[:] = [renamed.get(name, name) for name in node.input]


def flat_outputs(outputs: Any) -> list[np.ndarray]:
    """A module's outputs as arrays, in the order the exporter writes them: tuples and lists in order,
    mappings (Hugging Face ModelOutput) by value, None left out."""
    import torch

    if outputs is None:
        return []
    if isinstance(outputs, torch.Tensor):
        return [outputs.detach().cpu().numpy()]
    if isinstance(outputs, Mapping):
        outputs = list(outputs.values())
    if isinstance(outputs, (tuple, list)):
        return [array for item in outputs for array in flat_outputs(item)]
    return []  # a cache object or a plain number: not a graph output


@contextlib.contextmanager
def without_cache(module: Any) -> Iterator[None]:
    """A Hugging Face model with `config.use_cache` off for the duration (its key/value cache would
    otherwise be exported as extra outputs, and is not a width SPA prunes through the framework)."""
    config = getattr(module, "config", None)
    saved = getattr(config, "use_cache", None)
    if saved:
        config.use_cache = False
    try:
        yield
    finally:
        if saved:
            config.use_cache = saved


@contextlib.contextmanager
def in_float32(module: Any, call: Call) -> Iterator[tuple[Call, float]]:
    """`module` with its bfloat16/float16 parameters and buffers in float32 for the duration (in place, each
    restored to its own dtype after: exact, and no second copy of the model), with `call`'s floating inputs
    cast alike. The TorchScript exporter writes invalid casts for bfloat16 (to complex128), and onnxruntime
    runs few half-precision kernels on a CPU. Also yields the rounding of the narrowest dtype met (0 when
    everything is float32 already), which a comparison with the pruned model must allow."""
    import torch

    narrow = [tensor for tensor in (*module.parameters(), *module.buffers())
              if tensor.is_floating_point() and tensor.dtype in (torch.bfloat16, torch.float16)]
    rounding = max((torch.finfo(tensor.dtype).eps for tensor in narrow), default=0.0)
    dtypes = [tensor.dtype for tensor in narrow]
    for tensor in narrow:
        tensor.data = tensor.data.float()
    try:
        yield (call.in_float32() if narrow else call), rounding
    finally:
        for tensor, dtype in zip(narrow, dtypes):
            tensor.data = tensor.data.to(dtype)
