"""A model run from the first node that a change reaches, on values the nodes before it computed once.

A sensitivity measurement changes one group's constants and runs the model
again. Every node before the first one that reads a changed constant computes
what it computed before, so the values that cross from there into the rest
(skip connections too) are computed once per set of samples, and each
measurement runs only the rest: on a ResNet, a group in the last stage runs
about a quarter of the network.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np

from spa.providers.pieces import GraphPieces
from spa.verify.checks import Runner


def first_reader(pieces: GraphPieces, changed: Collection[str], outputs: Sequence[str]) -> int:
    """The index of the first node that reads a `changed` constant (0 when a graph output is computed
    before it: the whole model then runs)."""
    changed = set(changed)
    first = next((index for index, reads in enumerate(pieces.reads) if changed & set(reads)), len(pieces.nodes))
    if any(pieces.producer.get(name, len(pieces.nodes)) < first for name in outputs):
        return 0
    return first


class SuffixRun:
    """The nodes of `pieces` from the first reader of `changed` on, run on `batches` with the constants
    overridable, on `threads` onnxruntime threads; `failure` is set when a piece cannot load or run."""

    def __init__(self, pieces: GraphPieces, outputs: Sequence[str], changed: Collection[str],
                 batches: Sequence[Mapping[str, np.ndarray]], threads: int | None = None) -> None:
        first = first_reader(pieces, changed, outputs)
        suffix = range(first, len(pieces.nodes))
        made_before = {name for index in range(first) for name in pieces.nodes[index].output if name}
        read = {name for index in suffix for name in pieces.reads[index]}
        fed = sorted(name for name in read if name in made_before
                     or name in batches[0] and name not in pieces.initializers)
        self.outputs, self.failure = list(outputs), None
        self.feeds = self._values_before(pieces, first, [n for n in fed if n in made_before], batches, threads)
        if self.feeds is None:
            return
        self.feeds = [{name: values[name] for name in fed} for values in self.feeds]
        self.constants = set(pieces.constants_read(suffix))
        model = pieces.model(suffix, sorted(self.constants), fed, self.outputs, self.feeds[0])
        self.runner = Runner(model.SerializeToString(), threads)
        self.failure = self.runner.failure

    def _values_before(self, pieces: GraphPieces, first: int, crossing: list[str],
                       batches: Sequence[Mapping[str, np.ndarray]], threads: int | None
                       ) -> list[dict[str, np.ndarray]] | None:
        """Each batch's inputs with the `crossing` values that the nodes before `first` compute."""
        feeds = [dict(batch) for batch in batches]
        if not crossing:
            return feeds
        prefix = range(first)
        inputs = sorted({name for index in prefix for name in pieces.reads[index]
                         if name in batches[0] and name not in pieces.initializers})
        model = pieces.model(prefix, pieces.constants_read(prefix), inputs, crossing, batches[0])
        runner = Runner(model.SerializeToString(), threads)
        for feed in feeds:
            result = runner.failure or runner.run({name: feed[name] for name in inputs}, crossing)
            if not isinstance(result, list):
                self.failure = result
                return None
            feed.update(zip(crossing, result))
        return feeds

    def run(self, overrides: Mapping[str, np.ndarray]) -> list[np.ndarray] | None:
        """The model's outputs over all batches with `overrides` (constant name -> value), joined along
        the batch axis; None when a run fails."""
        if self.failure is not None:
            return None
        given = {name: value for name, value in overrides.items() if name in self.constants}
        parts = []
        for feed in self.feeds:
            result = self.runner.run({**feed, **given}, self.outputs)
            if not isinstance(result, list):
                return None
            parts.append(result)
        return [np.concatenate([np.atleast_1d(p[i]) for p in parts]) for i in range(len(parts[0]))]
