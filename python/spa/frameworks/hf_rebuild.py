"""A pruned `transformers` model rebuilt from a config, as `from_pretrained` would build it.

Patching layer attributes in place would leave a model whose config still
names the old widths, so `save_pretrained` then `from_pretrained` would fail.
Instead the widths the pruned tensors have are solved into a config
(spa.frameworks.hf_widths), the model class is instantiated from it without
initialising weights, and the pruned state is loaded strictly. Buffers the
model computes from its config (rotary frequencies) come from the new config.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from collections.abc import Mapping
from typing import Any

import numpy as np

from spa.errors import SPAError, first_line
from spa.frameworks.hf_widths import ConfigWidths, config_problem


def pruned_state_sources(module: Any, arrays: Mapping[str, np.ndarray]) -> dict[str, str | None]:
    """For each state name of `module`, the pruned array's name: its own, or that of the parameter it is
    tied to (an exporter names a tied `lm_head.weight` after the embedding); None for integer or scalar
    buffers the export does not carry (they keep their value)."""
    tensors = module.state_dict(keep_vars=True)
    by_storage = {tensor.data_ptr(): name for name, tensor in tensors.items() if name in arrays}
    sources = {}
    for name, tensor in tensors.items():
        source = name if name in arrays else by_storage.get(tensor.data_ptr())
        if source is None and tensor.dim() > 0 and tensor.is_floating_point():
            raise SPAError(f"PyTorch adapter: {name} is not in the exported ONNX model under its own name; "
                           "the model cannot be rebuilt")
        sources[name] = source
    return sources


def rebuild(module: Any, arrays: Mapping[str, np.ndarray], widths: ConfigWidths) -> Any:
    """`module`'s class built from the config that gives the pruned `arrays`' shapes, holding them."""
    import torch
    from transformers.initialization import no_init_weights

    sources = pruned_state_sources(module, arrays)
    shapes = {name: tuple(np.shape(arrays[source])) for name, source in sources.items() if source}
    config, mismatched = widths.solve(shapes)
    if mismatched:
        name = mismatched[0]
        raise SPAError(f"PyTorch adapter: no {type(config).__name__} gives {name} its pruned shape "
                       f"{list(shapes.get(name, ()))}: the layers were pruned to different widths (plan with "
                       "allocation='uniform') or the family ties this width to another")
    problem = config_problem(config)
    if problem:
        raise SPAError(f"PyTorch adapter: transformers refuses the pruned widths' {type(config).__name__}: {problem}")
    original = module.state_dict()
    reference = next(iter(module.parameters()), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None else torch.float32
    try:
        with no_init_weights(), _default_dtype(dtype), device:
            rebuilt = type(module)(config)
        state = {name: original[name] if source is None else
                 torch.as_tensor(np.asarray(arrays[source])).to(dtype=original[name].dtype, device=device)
                 for name, source in sources.items()}
        rebuilt.load_state_dict(state, strict=True)
    except Exception as error:  # noqa: BLE001 - a model class SPA does not know refusing its config or state
        raise SPAError(f"PyTorch adapter: {type(module).__name__} could not be rebuilt from its pruned "
                       f"{type(config).__name__}: {first_line(error)}") from error
    if getattr(module, "generation_config", None) is not None:
        rebuilt.generation_config = copy.deepcopy(module.generation_config)
    return rebuilt.train(module.training)


@contextmanager
def _default_dtype(dtype: Any):
    """Build in the model's own dtype, as `from_pretrained(torch_dtype=...)` does: no float32 copy to cast,
    and buffers the model computes in float32 on purpose (rotary frequencies) stay float32."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype if dtype.is_floating_point else previous)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
