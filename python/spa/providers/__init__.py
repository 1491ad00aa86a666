"""Data providers: what criteria need beyond the weights, keyed by ONNX initializer name.

A provider is any object with

    kinds: tuple[str, ...]                                  # the data kinds it can give
    def tensors(self, kind: str, names: Sequence[str]) -> dict[str, np.ndarray]

`tensors` returns, for the requested initializer names it knows, one array
of the weight's shape; names it does not know are left out (they are
constants rather than trained parameters). The kinds:

| kind              | meaning                                                        | who gives it       |
| ----------------- | -------------------------------------------------------------- | ------------------ |
| gradients         | mean dL/dw over the provider's batches                         | TorchProvider      |
| squared_gradients | mean of per-sample (dL/dw)^2: the empirical Fisher diagonal    | TorchProvider      |
| hessian_gradient  | H g, the Hessian of the loss times its gradient                | TorchProvider      |
| norm_scales       | the scale (gamma) of every normalisation op                    | the model itself   |

Activations are keyed by value, not weight, so they have their own
provider: `onnxruntime_provider.ActivationProvider` runs the ONNX model with
chosen values exposed (OBSPA's layer Hessians read their inputs through it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from spa.errors import SPAError

DATA_KINDS = {
    "gradients": "gradients of the loss with respect to the weights",
    "squared_gradients": "per-sample squared gradients (the empirical Fisher diagonal)",
    "hessian_gradient": "Hessian-gradient products (H g)",
    "norm_scales": "the scales of the normalisation layers",
}


class Provider(Protocol):
    """Gives per-weight data of some kinds, keyed by initializer name."""

    kinds: tuple[str, ...]

    def tensors(self, kind: str, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Arrays of `kind` for the `names` the provider knows (others are left out)."""
        ...


def fetch(criterion_name: str, kinds: Sequence[str], names: Sequence[str],
          provider: Provider | None) -> dict[str, dict[str, np.ndarray]]:
    """kind -> name -> array from `provider` for every kind in `kinds`.

    Raises SPAError naming the criterion and what is missing if there is no
    provider, the provider lacks a kind, or it knows none of `names` (almost
    always a naming mismatch between the framework and the ONNX export).
    """
    if not kinds:
        return {}
    wanted = ", ".join(DATA_KINDS.get(kind, kind) for kind in kinds)
    if provider is None:
        raise SPAError(f"the {criterion_name} criterion needs {wanted}, and no data provider was given; "
                       "pass one (for example spa.providers.TorchProvider(module, batches)) "
                       "or use a weight-only criterion (l1, l2, fpgm, bn_scale) or obspa")
    result = {}
    for kind in kinds:
        if kind not in getattr(provider, "kinds", ()):
            raise SPAError(f"the {criterion_name} criterion needs {DATA_KINDS.get(kind, kind)}, which "
                           f"{type(provider).__name__} does not provide (it gives: "
                           f"{', '.join(getattr(provider, 'kinds', ())) or 'nothing'})")
        arrays = provider.tensors(kind, names)
        if names and not arrays:
            sample = ", ".join(list(names)[:3])
            raise SPAError(f"the {criterion_name} criterion: {type(provider).__name__} has "
                           f"{DATA_KINDS.get(kind, kind)} for none of the model's weights (such as {sample}); "
                           "the framework's parameter names must match the ONNX initializer names "
                           "(export with parameter names kept, or give the provider a name_map)")
        result[kind] = arrays
    return result
