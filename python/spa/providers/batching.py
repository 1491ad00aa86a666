"""Feeding many samples to a model whose batch dimension may be fixed (most exports fix it at 1).

`feeding(model, probe, batch_size)` says how to feed a model. A model whose
inputs all take any batch is fed `batch_size` samples per run. One with a
fixed batch N is tried with the batch relaxed in a copy (the inputs' first
dim made symbolic, inner shapes forgotten); relaxing is chosen only if
onnxruntime runs that copy on 2N samples and gives, for the first N, the
outputs the original gives for them alone. Otherwise it is fed exactly N
samples per run. `rebatch` then cuts the sample stream into such
batches (a last, short batch is filled up with the first samples again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from spa.errors import SPAError

RELAXED_BATCH = "spa_batch"


def _fixed_batches(model: onnx.ModelProto) -> set[int]:
    initializers = {t.name for t in model.graph.initializer}
    sizes = set()
    for value in model.graph.input:
        if value.name in initializers:
            continue
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
            sizes.add(dims[0].dim_value)
    return sizes


def relaxed_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose inputs' and outputs' first dims are symbolic and whose inner shapes are forgotten."""
    result = onnx.ModelProto()
    result.CopyFrom(model)
    initializers = {t.name for t in result.graph.initializer}
    for value in [*result.graph.input, *result.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if value.name not in initializers and dims:
            dims[0].Clear()
            dims[0].dim_param = RELAXED_BATCH
    del result.graph.value_info[:]
    return result


@dataclass(frozen=True)
class Feeding:
    """How to feed a model: `relax` its batch in a copy or not, `batch` samples per run (`exact`ly
    that many when its batch is fixed), and a `note` for reports."""

    relax: bool
    batch: int
    exact: bool = False
    note: str = ""

    def prepare(self, model: onnx.ModelProto) -> onnx.ModelProto:
        """`model` (or a graph derived from it with the same inputs) ready to be fed."""
        return relaxed_batch(model) if self.relax else model

    def batches(self, samples: Callable[[int], Iterable[Mapping[str, np.ndarray]]]
                ) -> Iterable[Mapping[str, np.ndarray]]:
        """The batches to run, from `samples(size)` (a stream of batches of at most `size` samples)."""
        return rebatch(samples(self.batch), self.batch) if self.exact else samples(self.batch)


def feeding(model: onnx.ModelProto, samples: Callable[[int], Iterable[Mapping[str, np.ndarray]]],
            batch_size: int) -> Feeding:
    """How to feed `model` `batch_size` samples at a time; `samples(size)` gives batches of at most
    `size` samples (read only for a model with a fixed batch, to probe it)."""
    fixed = _fixed_batches(model)
    if not fixed:
        return Feeding(False, batch_size)
    if len(fixed) > 1:
        sizes = ", ".join(str(s) for s in sorted(fixed))
        raise SPAError(f"the model's inputs fix different batch sizes ({sizes}); SPA cannot feed it samples")
    fixed_size = fixed.pop()
    probe = next(rebatch(samples(2 * fixed_size), 2 * fixed_size))
    if _agrees(model, relaxed_batch(model), probe, fixed_size):
        return Feeding(True, batch_size, note=f"its fixed batch of {fixed_size} relaxed to {batch_size}")
    return Feeding(False, fixed_size, exact=True, note=f"{fixed_size} sample(s) per run, its fixed batch")


def _agrees(model: onnx.ModelProto, relaxed: onnx.ModelProto, probe: Mapping[str, np.ndarray], size: int) -> bool:
    """Whether `relaxed` gives, for the first `size` samples of a batch of 2 x size, what `model` gives for them."""
    from spa.verify.checks import RELATIVE_TOLERANCE, Runner

    double = {name: np.concatenate([array[:size], array[size:2 * size]]) for name, array in probe.items()}
    if any(len(array) != 2 * size for array in double.values()):
        return False
    alone = Runner(model).run({name: array[:size] for name, array in probe.items()})
    together = Runner(relaxed).run(double)
    if not isinstance(alone, list) or not isinstance(together, list):
        return False
    for want, got in zip(alone, together):
        got = np.asarray(got)
        if got.ndim == 0 or got.shape[0] != 2 * size or got[:size].shape != np.shape(want):
            return False
        scale = max(1.0, float(np.abs(want).max(initial=0.0)))
        if np.abs(got[:size] - want).max(initial=0.0) > RELATIVE_TOLERANCE * scale:
            return False
    return True


def rebatch(samples: Iterable[Mapping[str, np.ndarray]], size: int) -> Iterator[dict[str, np.ndarray]]:
    """Batches of exactly `size` samples from batches of any size (the last one filled from the first)."""
    pending: dict[str, list[np.ndarray]] = {}
    first: dict[str, np.ndarray] | None = None
    count = 0
    for batch in samples:
        for name, array in batch.items():
            pending.setdefault(name, []).append(np.asarray(array))
        count += len(next(iter(batch.values())))
        while count >= size:
            joined = {name: np.concatenate(parts) for name, parts in pending.items()}
            out = {name: array[:size] for name, array in joined.items()}
            first = first or out
            pending = {name: [array[size:]] for name, array in joined.items()}
            count -= size
            yield out
    if count:
        joined = {name: np.concatenate(parts) for name, parts in pending.items()}
        if first is None:  # fewer samples than one batch: repeat them
            yield {name: np.resize(array, (size, *array.shape[1:])) for name, array in joined.items()}
        else:
            yield {name: np.concatenate([array, first[name][:size - count]]) for name, array in joined.items()}
