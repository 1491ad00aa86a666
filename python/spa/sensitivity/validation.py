"""Checking an allocation end to end before trusting it.

The sensitivity table adds up one group's damage at a time; removing many
groups at once interacts, and the final refit is not the one the table
measured. So the allocation it proposes is compared, pruned and refitted as
it will be written, with the plain uniform allocation at the same target, on
the table's own held-out samples, and the one with the smaller output damage
is kept (the plan's `data_used` says which, with both damages).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import onnx

from spa.groups import Plan
from spa.sensitivity.measure import PruneModel, output_damage, run_all
from spa.verify.checks import Runner


class PlanDamage:
    """The output damage of a whole plan (with its weight updates) on fixed samples."""

    def __init__(self, dense: onnx.ModelProto, batches: Sequence[Mapping[str, np.ndarray]],
                 prune_model: PruneModel) -> None:
        self.batches, self.prune_model = batches, prune_model
        self.dense = run_all(Runner(dense.SerializeToString()), batches)

    def __call__(self, plan: Plan) -> float:
        outputs = run_all(Runner(self.prune_model(plan).SerializeToString()), self.batches)
        if outputs is None or self.dense is None:
            return float("inf")
        return output_damage(self.dense, outputs)


def least_damage(candidates: Mapping[str, Plan], refit: Callable[[Plan], dict[str, np.ndarray]],
                 judge: Callable[[Plan], float]) -> tuple[Plan, dict[str, np.ndarray], str]:
    """(the candidate with the least judged damage, its weight updates, a note on the choice).

    Candidates are named allocations of one target, the first preferred on ties;
    identical ones are judged once.
    """
    judged: list[tuple[float, str, Plan, dict[str, np.ndarray]]] = []
    for name, plan in candidates.items():
        if any(plan.removed == other.removed for _, _, other, _ in judged):
            continue
        updates = refit(plan)
        judged.append((judge(Plan(plan.removed, updates)), name, plan, updates))
    best = min(judged, key=lambda entry: entry[0])  # min keeps the first of equals
    if len(judged) == 1:
        return best[2], best[3], f"{best[1]} allocation"
    damages = ", ".join(f"{name} {damage:.4g}" for damage, name, _, _ in judged)
    return best[2], best[3], f"{best[1]} allocation kept (end-to-end output damage: {damages})"
