"""Layer Hessians accumulated as tasks (spa.execution): each task runs the model on a share of the
samples and sums x x^T for every layer; the shares are merged here in a fixed order.

A share is CHUNK batches whatever the number of workers, so the sums, and the Hessians, come out the
same bit for bit on any backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from spa.cache import digest
from spa.execution import Backend, default_backend, worker_cache
from spa.obspa.hessians import HessianAccumulator
from spa.obspa.layers import LinearLayer
from spa.providers.onnxruntime_provider import ActivationProvider

CHUNK = 4  # batches per task
THREADS = 1  # onnxruntime threads per task


@dataclass
class _Shared:
    key: str
    model: bytes
    names: tuple[str, ...]
    layers: list[LinearLayer]


def _share(shared: _Shared, batches: list[dict[str, np.ndarray]]) -> HessianAccumulator:
    """A task: the sums of one share of the batches."""
    provider = worker_cache(shared.key, lambda: ActivationProvider(onnx.load_from_string(shared.model), shared.names,
                                                                   THREADS))
    accumulator = HessianAccumulator(shared.layers)
    for activations in provider.run(batches):
        accumulator.add(activations)
    return accumulator


def accumulate(model: onnx.ModelProto, layers: Sequence[LinearLayer], batches: Iterable[Mapping[str, np.ndarray]],
               backend: Backend | None = None, on_batches: Callable[[int], None] | None = None) -> HessianAccumulator:
    """The sums of x x^T of every layer over all `batches`, run on `backend`; `on_batches(n)` as shares end."""
    names = tuple(sorted({layer.input for layer in layers}))
    blob = model.SerializeToString()
    shared = _Shared(digest([blob, *names]), blob, names, list(layers))
    batches = [dict(batch) for batch in batches]
    shares = [batches[start:start + CHUNK] for start in range(0, len(batches), CHUNK)]
    backend = backend or default_backend(len(blob) * len(batches))
    parts = backend.map(_share, shared, shares, (lambda share: on_batches(len(share))) if on_batches else None)
    total = HessianAccumulator(list(layers))
    for part in parts:
        total.merge(part)
    return total
