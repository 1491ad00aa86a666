"""A model run piece by piece, each piece once, for refits that go level by level.

Sequential reconstruction needs, for each level of layers, the inputs the
dense model and the pruned-so-far model give that level. onnxruntime runs a
whole graph whatever outputs are asked for, so running the model once per
level costs (levels x model). Here the graph is cut where the levels need
their inputs: `advance(targets)` runs only the nodes those values need that
have not run yet, from the values held since, for both the dense and the
pruned state, and drops what no later node reads. In total each node runs
once per state, so the cost is about two passes of the model, plus one small
onnxruntime session per piece.

The pruned state's weights are given to each piece as overrides (the
constants named at construction are graph inputs of the pieces that read
them), so a refit written after one level is what the next pieces compute
with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx

from spa.errors import SPAError
from spa.providers.pieces import GraphPieces
from spa.providers.overridable import with_overridable
from spa.verify.checks import Runner
from spa.verify.masking import constant_value

STATES = ("dense", "pruned")


class SegmentedModel:
    """`model` with the constants `names` overridable, run on `batches` one piece at a time."""

    def __init__(self, model: onnx.ModelProto, names: Sequence[str], batches: Sequence[Mapping[str, np.ndarray]]
                 ) -> None:
        prepared = with_overridable(model, sorted(set(names)))
        self.values = {name: constant_value(prepared, name) for name in sorted(set(names))}
        self.graph = GraphPieces(prepared)
        self.producer, self.reads = self.graph.producer, self.graph.reads
        self.done: set[int] = set()
        self.held = {state: [dict(batch) for batch in batches] for state in STATES}

    def advance(self, targets: Sequence[str], overrides: Mapping[str, np.ndarray]
                ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The `targets` values for the dense state and for the pruned one (`overrides` by constant name),
        each joined along the batch axis."""
        piece = self._needed(targets)
        if piece:
            self._run(piece, targets, overrides)
        self.done |= set(piece)
        found = tuple([np.concatenate([np.atleast_1d(held[name]) for held in self.held[state]])
                       for name in targets] for state in STATES)
        self._forget()
        return found

    def _needed(self, targets: Sequence[str]) -> list[int]:
        """Nodes not yet run that the targets depend on, in graph order."""
        needed, stack = set(), [self.producer[t] for t in targets if t in self.producer]
        while stack:
            index = stack.pop()
            if index in needed or index in self.done:
                continue
            needed.add(index)
            stack += [self.producer[name] for name in self.reads[index] if name in self.producer]
        return sorted(needed)

    def _run(self, piece: list[int], targets: Sequence[str], overrides: Mapping[str, np.ndarray]) -> None:
        made = {name for index in piece for name in self.graph.nodes[index].output if name}
        read = [name for index in piece for name in self.reads[index]]
        sample = self.held["dense"][0]
        constants = self.graph.constants_read(piece)
        fed = sorted({name for name in read if name not in made and name not in self.graph.initializers
                      and (name in self.producer or name in sample)})  # not a name local to an If body
        later = {name for index, names in enumerate(self.reads) if index not in self.done and index not in piece
                 for name in names}
        outputs = sorted(made & (later | set(targets)))
        missing = [name for name in fed if name not in sample]
        if missing:
            raise SPAError(f"sequential refit: {missing[0]} is read before any piece computes it")
        runner = Runner(self.graph.model(piece, constants, fed, outputs, sample).SerializeToString())
        for state in STATES:
            given = {name: overrides[name] for name in constants if name in overrides} if state == "pruned" else {}
            for held in self.held[state]:
                result = runner.run({**{name: held[name] for name in fed}, **given}, outputs)
                if not isinstance(result, list):
                    raise SPAError(f"sequential refit: a piece of the model does not run ({result.message})")
                held.update(zip(outputs, result))

    def _forget(self) -> None:
        """Drop held values that no node left to run reads."""
        later = {name for index, names in enumerate(self.reads) if index not in self.done for name in names}
        for state in STATES:
            for held in self.held[state]:
                for name in [n for n in held if n not in later]:
                    del held[name]
