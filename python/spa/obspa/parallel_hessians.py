"""Layer Hessians accumulated as tasks (spa.execution): each task runs the model on some of the
samples and sums x x^T for every layer; the tasks' sums are merged here in a fixed order.

A share is CHUNK batches and a task folds SHARES_PER_TASK consecutive shares, whatever the number of
workers, and runs on one thread, so the sums come out the same bit for bit on local processes and on
Ray. In this process (one local worker)
onnxruntime and NumPy use every core, which may move the last bits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from spa.cache import digest
from spa.execution import Backend, LocalBackend, worker_cache
from spa.obspa.hessians import HessianAccumulator
from spa.obspa.layers import LinearLayer
from spa.providers.onnxruntime_provider import ActivationProvider

CHUNK = 4  # batches per share
SHARES_PER_TASK = 2  # shares a task folds before its sums go back (they are as large as the Hessians)
THREADS = 1  # onnxruntime threads per task


@dataclass
class _Shared:
    key: str
    model: bytes
    names: tuple[str, ...]
    layers: list[LinearLayer]


def _sums(provider: ActivationProvider, layers: list[LinearLayer], batches: list) -> HessianAccumulator:
    accumulator = HessianAccumulator(layers)
    for activations in provider.run(batches):
        accumulator.add(activations)
    return accumulator


def _shares(shared: _Shared, shares: list[list[dict[str, np.ndarray]]]) -> HessianAccumulator:
    """A task: the sums of a run of shares of the batches, folded in order before they go back (one
    set of sums per task, not per share: the sums are as large as the Hessians)."""
    provider = worker_cache(shared.key, lambda: ActivationProvider(onnx.load_from_string(shared.model), shared.names,
                                                                   THREADS))
    total = None
    for share in shares:
        total = _fold(total, _sums(provider, shared.layers, share))
    return total


def _fold(total: HessianAccumulator | None, part: HessianAccumulator) -> HessianAccumulator:
    if total is None:
        return part  # taken over, not copied (a share computed in this process)
    total.merge(part)
    return total


def accumulate(model: onnx.ModelProto, layers: Sequence[LinearLayer], batches: Iterable[Mapping[str, np.ndarray]],
               backend: Backend | None = None, on_batches: Callable[[int], None] | None = None) -> HessianAccumulator:
    """The sums of x x^T of every layer over all `batches`, run on `backend`; `on_batches(n)` as shares end.

    Shares are summed, then merged in order, on every backend. In this process onnxruntime and NumPy
    use every core and one share's sums are alive at a time; tasks elsewhere run on one thread each.
    """
    layers, batches = list(layers), list(batches)
    names = tuple(sorted({layer.input for layer in layers}))
    shares = [batches[start:start + CHUNK] for start in range(0, len(batches), CHUNK)]
    # Unasked, this process: its threaded run beat 2 processes and Ray 2-fold on a 0.2B decoder
    # (benchmarks/RESULTS.md), as every task sends sums the size of the Hessians back.
    backend = backend or LocalBackend(1)
    if isinstance(backend, LocalBackend) and (backend.workers == 1 or len(shares) <= 1):
        provider, total = ActivationProvider(model, names), None
        for share in shares:
            total = _fold(total, _sums(provider, layers, share))
            if on_batches:
                on_batches(len(share))
        return total or HessianAccumulator(layers)
    blob = model.SerializeToString()
    shared = _Shared(digest([blob, *names]), blob, names, layers)
    runs = consecutive_runs(shares)
    parts = backend.map(_shares, shared, runs,
                        (lambda run: on_batches(sum(len(share) for share in run))) if on_batches else None)
    parts.reverse()
    total = HessianAccumulator(layers)  # Ray's results are read-only views of its object store
    while parts:  # each share's sums are freed once merged
        total.merge(parts.pop())
    return total


def consecutive_runs(shares: list, length: int = SHARES_PER_TASK) -> list[list]:
    """`shares` cut into runs of `length` consecutive shares (the last may be shorter): what each task
    folds. The runs depend on the data only, not on the workers, so every backend sums in one order."""
    return [shares[start:start + length] for start in range(0, len(shares), length)]
