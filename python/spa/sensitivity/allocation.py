"""Choosing how many channels each group loses: the least total damage that meets a cost target.

Each group offers options (a removal count, the cost it removes, the damage
it does). `allocate` picks one option per group so that the removed costs
sum to at least the target and the damages sum to the least possible. It is
a multiple-choice knapsack, solved exactly by dynamic programming over the
cost discretised into `resolution` steps (costs past the target are capped
at it): option costs are rounded down and the target up, so a choice whose
rounded costs meet the target meets it truly. O(groups x options x resolution).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from spa.errors import SPAError


@dataclass(frozen=True)
class Options:
    """One group's choices: `counts` (ascending, starting at 0), and the `costs` and `damages` of each."""

    counts: np.ndarray
    costs: np.ndarray
    damages: np.ndarray

    def __post_init__(self) -> None:
        if not (len(self.counts) == len(self.costs) == len(self.damages)) or len(self.counts) == 0:
            raise SPAError("allocation: counts, costs and damages must be equally long and not empty")
        if self.counts[0] != 0:
            raise SPAError("allocation: the first option of a group must remove nothing")


def allocate(options: Mapping[int, Options], target: float, resolution: int = 2000) -> dict[int, int]:
    """Group id -> removal count, removing at least `target` cost with the least total damage.

    When the target cannot be met, every group takes its largest option.
    """
    total = sum(float(np.max(o.costs)) for o in options.values())
    if not options or target <= 0 or total <= 0:
        return {g: 0 for g in options}
    if target > total * (1 - 1e-12):
        return {g: int(o.counts[-1]) for g, o in options.items()}
    unit = total / resolution
    goal = math.ceil(target / unit - 1e-9)
    best = np.full(goal + 1, np.inf)
    best[0] = 0.0
    steps: list[tuple[int, np.ndarray, np.ndarray]] = []  # (group, option picked, predecessor cell) per cell
    for group_id, group in options.items():
        buckets = np.floor(np.asarray(group.costs, dtype=np.float64) / unit + 1e-9).astype(np.int64)
        after, picked, previous = np.full(goal + 1, np.inf), np.zeros(goal + 1, np.int64), np.zeros(goal + 1, np.int64)
        for index, (bucket, damage) in enumerate(zip(buckets, np.asarray(group.damages, dtype=np.float64))):
            values, sources = _shifted(best, int(bucket), goal)
            better = values + damage < after
            after[better], picked[better], previous[better] = values[better] + damage, index, sources[better]
        steps.append((group_id, picked, previous))
        best = after
    if not np.isfinite(best[goal]):
        return {g: int(o.counts[-1]) for g, o in options.items()}
    result, cell = {}, goal
    for group_id, picked, previous in reversed(steps):
        result[group_id] = int(options[group_id].counts[picked[cell]])
        cell = int(previous[cell])
    return result


def _shifted(best: np.ndarray, bucket: int, goal: int) -> tuple[np.ndarray, np.ndarray]:
    """For each target cell t, the least `best[c]` with min(c + bucket, goal) == t, and that c."""
    values, sources = np.full(goal + 1, np.inf), np.zeros(goal + 1, np.int64)
    if bucket < goal:
        values[bucket:goal] = best[:goal - bucket]
        sources[bucket:goal] = np.arange(goal - bucket)
    low = max(goal - bucket, 0)  # every cell from here reaches the capped goal
    source = low + int(np.argmin(best[low:]))
    values[goal], sources[goal] = best[source], source
    return values, sources
