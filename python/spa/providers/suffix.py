"""A model run from the first node that a change reaches, on values the nodes before it computed once.

A sensitivity measurement changes one group's constants and runs the model
again. Every node before the first one that reads a changed constant computes
what it computed before, so the values that cross from there into the rest
(skip connections too, and graph outputs made before it, such as a
decoder's key/value caches) are computed once per set of samples, and each
measurement runs only the rest: on a ResNet, a group in the last stage runs
about a quarter of the network.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
from onnx import numpy_helper

from spa.providers.pieces import GraphPieces
from spa.verify.checks import Failure, Runner


def first_reader(pieces: GraphPieces, changed: Collection[str]) -> int:
    """The index of the first node that reads a `changed` constant (the node count when none does)."""
    changed = set(changed)
    return next((index for index, reads in enumerate(pieces.reads) if changed & set(reads)), len(pieces.nodes))


class SuffixRun:
    """The nodes of `pieces` from `cut` on (default: the first reader of `changed`), run on `batches`
    with the constants overridable, on `threads` onnxruntime threads. `failure` is set when a piece
    cannot load or run; `run` then gives None."""

    def __init__(self, pieces: GraphPieces, outputs: Sequence[str], changed: Collection[str],
                 batches: Sequence[Mapping[str, np.ndarray]], threads: int | None = None,
                 cut: int | None = None) -> None:
        first = first_reader(pieces, changed) if cut is None else cut
        suffix = range(first, len(pieces.nodes))
        made_before = {name for index in range(first) for name in pieces.nodes[index].output if name}
        made_after = {name for index in suffix for name in pieces.nodes[index].output if name}
        read = {name for index in suffix for name in pieces.reads[index]}
        self.fed = sorted(name for name in read if name in made_before
                          or name in batches[0] and name not in pieces.initializers)
        self.outputs, self.late = list(outputs), [name for name in outputs if name in made_after]
        crossing = sorted({name for name in self.fed if name in made_before}
                          | {name for name in outputs if name in made_before})
        self.constants = set(pieces.constants_read(suffix))
        self.constant_outputs = {name: numpy_helper.to_array(pieces.initializers[name]) for name in outputs
                                 if name in pieces.initializers}
        self.failure: Failure | None = None
        self.values = self._values_before(pieces, first, crossing, batches, threads)
        if self.values is not None and self.late:
            model = pieces.model(suffix, sorted(self.constants), self.fed, self.late, self.values[0])
            self.runner = Runner(model.SerializeToString(), threads)
            self.failure = self.runner.failure

    def _values_before(self, pieces: GraphPieces, first: int, crossing: list[str],
                       batches: Sequence[Mapping[str, np.ndarray]], threads: int | None
                       ) -> list[dict[str, np.ndarray]] | None:
        """Each batch's inputs with the `crossing` values that the nodes before `first` compute."""
        values = [dict(batch) for batch in batches]
        if not crossing:
            return values
        prefix = range(first)
        inputs = sorted({name for index in prefix for name in pieces.reads[index]
                         if name in batches[0] and name not in pieces.initializers})
        model = pieces.model(prefix, pieces.constants_read(prefix), inputs, crossing, batches[0])
        runner = Runner(model.SerializeToString(), threads)
        for batch in values:
            result = runner.failure or runner.run({name: batch[name] for name in inputs}, crossing)
            if not isinstance(result, list):
                self.failure = result
                return None
            batch.update(zip(crossing, result))
        return values

    def run(self, overrides: Mapping[str, np.ndarray]) -> list[np.ndarray] | None:
        """The model's outputs over all batches with `overrides` (constant name -> value), joined along
        the batch axis; None when a run fails."""
        if self.failure is not None:
            return None
        given = {name: value for name, value in overrides.items() if name in self.constants}
        parts = []
        for values in self.values:
            found = dict(values)
            if self.late:
                result = self.runner.run({**{name: values[name] for name in self.fed}, **given}, self.late)
                if not isinstance(result, list):
                    return None
                found.update(zip(self.late, result))
            found.update((name, overrides.get(name, value)) for name, value in self.constant_outputs.items())
            parts.append([found[name] for name in self.outputs])
        return [np.concatenate([np.atleast_1d(p[i]) for p in parts]) for i in range(len(parts[0]))]
