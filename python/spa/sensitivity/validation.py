"""Checking an allocation end to end before trusting it.

The sensitivity table adds up one group's damage at a time; removing many
groups at once interacts, and the final refit is not the one the table
measured. So the allocation it proposes is compared, pruned and refitted as
it will be written, with the plain uniform allocation at the same target, on
the table's own held-out samples, and the better one is kept (the plan's
`data_used` says which, with both judgements). Better means fewer changed
top-1 predictions of classifier outputs first, then less output damage:
once a model is damaged, the summed logit error stops tracking which
candidate still classifies (measured on MobileNetV2).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import onnx

from spa.groups import Plan
from spa.sensitivity.measure import PruneModel, output_damage, run_all
from spa.verify.checks import Runner


class Judgement(NamedTuple):
    """How far a pruned model is from the dense one; smaller is better, compared in this order."""

    changed_predictions: float  # fraction of samples whose top-1 class changed, summed over 2-D outputs
    damage: float  # spa.sensitivity.measure.output_damage

    def __str__(self) -> str:
        return f"{self.changed_predictions:.0%} top-1 changed, damage {self.damage:.4g}"


class PlanDamage:
    """The Judgement of a whole plan (with its weight updates) on fixed samples."""

    def __init__(self, dense: onnx.ModelProto, batches: Sequence[Mapping[str, np.ndarray]],
                 prune_model: PruneModel) -> None:
        self.batches, self.prune_model = batches, prune_model
        self.dense = run_all(Runner(dense.SerializeToString()), batches)

    def __call__(self, plan: Plan) -> Judgement:
        outputs = run_all(Runner(self.prune_model(plan).SerializeToString()), self.batches)
        if outputs is None or self.dense is None:
            return Judgement(float("inf"), float("inf"))
        changed = sum(float(np.mean(np.argmax(want, axis=1) != np.argmax(got, axis=1)))
                      for want, got in zip(self.dense, outputs) if np.ndim(want) == 2 and np.shape(want)[1] > 1)
        return Judgement(changed, output_damage(self.dense, outputs))


def least_damage(candidates: Mapping[str, Plan], refit: Callable[[Plan], dict[str, np.ndarray]],
                 judge: Callable[[Plan], object]) -> tuple[Plan, dict[str, np.ndarray], str]:
    """(the candidate judged least damaged, its weight updates, a note on the choice). Judgements are
    anything ordered (a Judgement, a float).

    Candidates are named allocations of one target, the first preferred on ties;
    identical ones are judged once.
    """
    judged: list[tuple[object, str, Plan, dict[str, np.ndarray]]] = []
    for name, plan in candidates.items():
        if any(plan.removed == other.removed for _, _, other, _ in judged):
            continue
        updates = refit(plan)
        judged.append((judge(Plan(plan.removed, updates)), name, plan, updates))
    best = min(judged, key=lambda entry: entry[0])  # min keeps the first of equals
    if len(judged) == 1:
        return best[2], best[3], f"{best[1]} allocation"
    verdicts = ", ".join(f"{name}: {judgement}" for judgement, name, _, _ in judged)
    return best[2], best[3], f"{best[1]} allocation kept (end to end on held-out samples: {verdicts})"
