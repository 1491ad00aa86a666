"""From channel scores to a plan: how many channels each group loses, and which.

Three allocations (`ALLOCATIONS`):
- uniform: the same ratio in every group (for a params/MACs target, the
  smallest ratio whose pruned copy meets it);
- global: channels ranked across groups by score / group mean;
- sensitivity: per-group counts from a measured sensitivity table, chosen by
  a knapsack for the least predicted damage (spa.sensitivity).
A target is a channel ratio, or a fraction of the parameters, MACs or
onnxruntime latency to remove; targets are met as *measured* on a pruned copy
(per-channel costs double-count a layer whose inputs and outputs both shrink,
and latency follows MACs only loosely).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from spa import select, stats
from spa.errors import SPAError
from spa.groups import Group, Plan
from spa.latency_table import per_weight_prices
from spa.target import Target

ALLOCATIONS = ("uniform", "global", "sensitivity")


def choose_allocation(allocation: str | None, criterion: str, target: Target, global_ranking: bool) -> str:
    """The allocation asked for, or the default: sensitivity for OBSPA with a params/MACs target,
    global with `global_ranking`, else uniform."""
    if allocation is None:
        if global_ranking:
            return "global"
        return "sensitivity" if criterion == "obspa" and target.measure != "channels" else "uniform"
    if allocation not in ALLOCATIONS:
        raise SPAError(f"allocation must be one of {', '.join(ALLOCATIONS)}, not {allocation!r}")
    if global_ranking and allocation != "global":
        raise SPAError(f"global ranking and allocation={allocation!r} contradict each other")
    return allocation


class Planner:
    """Selection over one model's groups and scores (see the module doc).

    `model` is the spa.Model (for stats and pruned trial copies), `shapes`
    the constants' shapes by name.
    """

    def __init__(self, model, groups: Sequence[Group], shapes: Mapping[str, tuple[int, ...]],
                 scores: Mapping[int, np.ndarray], round_to: int = 1, protect: Sequence[str] = ()) -> None:
        self.model, self.groups, self.shapes, self.scores = model, list(groups), shapes, scores
        self.round_to, self.protect = round_to, tuple(protect)

    def eligible(self) -> list[Group]:
        """The groups selection may touch."""
        return select.eligible_groups(self.groups, self.scores, self.protect)

    def costs(self, measure: str, removed: float = 0.3) -> dict[int, float]:
        """Cost of one channel of each group: 1, its parameters, its MACs, or its milliseconds (for
        latency, the time saved per channel when about `removed` of the widths go)."""
        if measure == "channels":
            return {g.id: 1.0 for g in self.groups}
        if measure == "params":
            return {g.id: select.params_per_channel(g, self.shapes) for g in self.groups}
        macs = stats.macs_per_weight(self.model.module)
        if measure != "latency":
            return self._per_channel(macs)
        # Each layer's measured time saving on this machine (spa.latency_table); a layer the profiles
        # did not attribute counts its MACs at the model's average speed. The target itself is
        # measured (calibrate).
        speed = self.total("latency") / max(self.total("macs"), 1.0)
        prices = self._latency_prices(removed)
        # Never below a tenth of the MAC estimate: a profile's noise can show a layer saving nothing,
        # and a free channel would be taken before any other.
        return self._per_channel({name: max(prices.get(name, 0.0), 0.1 * count * speed) if name in prices
                                  else count * speed for name, count in macs.items()})

    def _latency_prices(self, removed: float) -> dict[str, float]:
        """Per weight, the measured time its layers save per unit of width (spa.latency_table) when
        `removed` of the cost goes, or {} when latency is not profiled per layer."""
        def uniform_at(kept: float) -> Plan:
            return select.select_per_group(self.groups, self.scores, 1.0 - kept, self.round_to, self.protect)

        table = self.model.latency_table(uniform_at, (self.round_to, self.protect))
        if table is None:
            return {}
        axes: dict[str, set[int]] = defaultdict(set)  # per weight, the axes the eligible groups narrow
        for group in self.eligible():
            for member in group.members:
                axes[member.tensor].add(member.axis)
        # A cost that falls with the square of the width (a layer narrowed on both sides) loses
        # `removed` of itself when about 1 - sqrt(1 - removed) of the widths go.
        width = 1.0 - math.sqrt(max(1.0 - removed, 0.0))
        return per_weight_prices(table, width, {name: len(found) for name, found in axes.items()})

    def uniform(self, target: Target) -> Plan:
        def same_ratio(fraction: float) -> Plan:
            return select.select_per_group(self.groups, self.scores, fraction, self.round_to, self.protect)

        if target.measure == "channels":
            return same_ratio(target.fraction)
        return self.calibrate(same_ratio, target, 0.0, 0.99, steps=10)

    def global_ranking(self, target: Target) -> Plan:
        if target.measure == "channels":
            return select.select_global(self.groups, self.scores, target.fraction, self.round_to, self.protect)
        costs, total = self.costs(target.measure, target.fraction), self.total(target.measure)

        def plan_for(fraction: float) -> Plan:
            return select.select_target(self.groups, self.scores, costs, total, fraction, self.round_to, self.protect)

        return self.calibrate(plan_for, target, 0.0, min(0.999, target.fraction * 3 + 0.01), steps=10)

    def by_counts(self, target: Target, counts_for: Callable[[float], Mapping[int, int]]) -> Plan:
        """The plan of an allocation: `counts_for(cost)` gives per-group counts removing about that cost."""
        def plan_for(fraction: float) -> Plan:
            return select.select_counts(self.groups, self.scores, counts_for(fraction * total), self.protect)

        if target.measure == "channels":
            total = float(sum(g.channels for g in self.eligible()))
            return plan_for(math.floor(target.fraction * total + 1e-9) / total if total else 0.0)
        total = self.total(target.measure)
        return self.calibrate(plan_for, target, 0.0, min(0.999, target.fraction * 3 + 0.01), steps=10)

    def total(self, measure: str) -> float:
        return float(self.model.current_stat(measure))

    def calibrate(self, plan_for: Callable[[float], Plan], target: Target, low: float, high: float,
                  steps: int = 8) -> Plan:
        """The plan whose *measured* reduction first reaches the target: `plan_for(x)` for a setting
        x in [low, high] removes more as x grows; x is bisected on pruned copies of the model. The
        per-channel costs behind a setting can err either way: a layer whose inputs and outputs both
        shrink is counted twice, while MatMuls between two activations (attention scores) carry no
        weight to count them by, so the search starts from 0, not from the target."""
        before = self.total(target.measure)
        if before == 0:
            return plan_for(target.fraction)

        def achieved(plan: Plan) -> float:
            return 1 - self.model.remaining(plan, target.measure, before)

        best = plan_for(high)
        if achieved(best) < target.fraction:
            return best  # the target cannot be reached; this is the most the selection removes
        for _ in range(steps):
            middle = (low + high) / 2
            plan = plan_for(middle)
            if achieved(plan) >= target.fraction:
                high, best = middle, plan
            else:
                low = middle
        if low > 0:  # the search never evaluated its lower end (0 removes nothing, which meets no target)
            first = plan_for(low)
            return first if achieved(first) >= target.fraction else best
        return best

    def _per_channel(self, per_weight: Mapping[str, float]) -> dict[int, float]:
        """Per group, what one channel carries of its members' costs (a member's cost spread evenly
        over the positions of its axis: the share of a layer a channel is)."""
        costs = {}
        for group in self.groups:
            cost = 0.0
            for member in group.members:
                if member.tensor in per_weight and group.channels:
                    share = member.positions_in_group() / self.shapes[member.tensor][member.axis]
                    cost += per_weight[member.tensor] * share / group.channels
            costs[group.id] = cost
        return costs
