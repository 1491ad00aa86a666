"""One protocol for every framework adapter: export, prune, copy with the pruned weights, check.

An adapter says how its framework exports a model to ONNX, makes a pruned
copy from the pruned arrays (writing the weights, then fixing the width
attributes its layers keep), and runs that copy. `prune_with` is the one
sequence they all follow, and `PruneResult` the one result they all return;
it answers to the framework's own name for its model too (`result.module`
for PyTorch and Flax, `result.layer` for Paddle, `result.block` for MXNet).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from spa.errors import SPAError
from spa.frameworks.checking import compare_with_onnx, forward_failure
from spa.frameworks.pipeline import PrunedExport, prune_exported
from spa.groups import Plan


class FrameworkAdapter:
    """What `prune_with` needs from a framework: a subclass gives `label`, `model_name`, `export`,
    `pruned_copy` and `outputs`, and may change how the check feeds onnxruntime (`feeds`) and how close
    it must come (`tolerance`)."""

    label = "adapter"  # names the adapter in errors: "Paddle adapter"
    model_name = "model"  # the framework's word for a model: "layer"; also the result's alias for `model`

    def export(self, model: Any, inputs: tuple) -> onnx.ModelProto:
        """`model` as ONNX, with its weights under names `pruned_copy` can map back."""
        raise NotImplementedError

    def pruned_copy(self, model: Any, pruned: PrunedExport) -> Any:
        """A copy of `model` (left unchanged) with the pruned arrays, and widths that agree with them."""
        raise NotImplementedError

    def outputs(self, model: Any, inputs: tuple) -> list[np.ndarray]:
        """`model` run on `inputs` in inference mode, its outputs flattened in the ONNX model's order."""
        raise NotImplementedError

    def feeds(self, pruned: onnx.ModelProto, inputs: tuple) -> dict[str, np.ndarray]:
        """The example inputs as onnxruntime feeds for the pruned model."""
        return positional_feeds(pruned, inputs)

    def tolerance(self, tolerance: float) -> float:
        """The tolerance of the last `outputs` call (an adapter that ran in lower precision widens it)."""
        return tolerance


@dataclass
class PruneResult:
    """`model`: the pruned copy, of the original's classes; `onnx_model`: the pruned ONNX model; `plan`:
    what was removed; `max_difference`: largest |model - onnxruntime| output difference on the example inputs,
    relative to the output scale; `patched`: False when `model` is a conversion of the pruned ONNX model
    rather than the original's classes; `extras`: what an adapter adds (Flax's `params`, say), read as
    attributes too."""

    model: Any
    onnx_model: onnx.ModelProto
    plan: Plan
    max_difference: float
    patched: bool = True
    model_name: str = field(default="model", repr=False)
    extras: dict[str, Any] = field(default_factory=dict, repr=False)

    def __getattr__(self, name: str) -> Any:
        fields = self.__dict__
        if name == fields.get("model_name"):
            return fields["model"]
        if name in fields.get("extras", {}):
            return fields["extras"][name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")


def prune_with(adapter: FrameworkAdapter, model: Any, inputs: tuple, criterion: str, tolerance: float,
               keep: Iterable[str] = (), **plan_options: Any) -> PruneResult:
    """Export `model`, prune it with `criterion` and `plan_options` (see spa.Model.plan), make the pruned copy
    and check it against the pruned ONNX model in onnxruntime; SPAError when they differ by more than
    `tolerance`. `keep` names weights the framework cannot represent pruned (their groups are left alone)."""
    pruned = prune_exported(adapter.export(model, inputs), criterion, keep=keep, **plan_options)
    return checked_copy(adapter, model, pruned, inputs, tolerance)


def checked_copy(adapter: FrameworkAdapter, model: Any, pruned: PrunedExport, inputs: tuple,
                 tolerance: float) -> PruneResult:
    """The pruned copy of `model`, checked against the pruned ONNX model."""
    result = adapter.pruned_copy(model, pruned)
    difference = check_against_onnx(adapter, result, pruned.onnx_model, inputs, tolerance)
    return PruneResult(result, pruned.onnx_model, pruned.plan, difference, model_name=adapter.model_name)


def check_against_onnx(adapter: FrameworkAdapter, model: Any, pruned: onnx.ModelProto, inputs: tuple,
                       tolerance: float) -> float:
    """`model`'s outputs against the pruned ONNX model's on `inputs`; a forward that fails is reported as a
    width SPA could not patch."""
    label = f"{adapter.label}: the pruned {adapter.model_name}"
    try:
        outputs = adapter.outputs(model, inputs)
    except SPAError:
        raise
    except Exception as error:  # noqa: BLE001 - user code may fail in any way; it means the same thing here
        raise forward_failure(label, error) from None
    return compare_with_onnx(label, outputs, pruned, adapter.feeds(pruned, inputs), adapter.tolerance(tolerance))


def input_names(count: int) -> list[str]:
    """The names adapters give a model's positional inputs when they export it."""
    return [f"input_{index}" for index in range(count)]


def positional_feeds(model: onnx.ModelProto, inputs: Sequence[Any]) -> dict[str, np.ndarray]:
    """Example inputs as onnxruntime feeds for `model`'s graph inputs, in order (initializers listed as
    inputs are not fed)."""
    constants = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in constants]
    if len(names) != len(inputs):
        raise SPAError(f"the pruned ONNX model takes {len(names)} inputs ({', '.join(names)}) but {len(inputs)} "
                       "example inputs were given")
    return dict(zip(names, (np.asarray(x) for x in inputs)))


def as_list(outputs: Any) -> list:
    """A model's output, or outputs, as a list."""
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


@contextlib.contextmanager
def in_inference_mode(model: Any) -> Iterator[Any]:
    """`model` in inference mode (`eval()`) for the block, then back in the mode it was in (PyTorch's and
    Paddle's `training` flag, `train()` and `eval()`), even when the block changed it (torch.onnx.export
    restores the mode of the wrapper it was given)."""
    training = bool(getattr(model, "training", False))
    model.eval()
    try:
        yield model
    finally:
        model.train() if training else model.eval()
