"""Layer times over channel counts: what a latency target prices channels by.

One profile of the dense model says what each layer costs, but not how its
time falls as it narrows: a kernel that works in blocks of 16 channels, or
one dominated by overhead at small widths, saves less than its share of
MACs. So the table profiles the model pruned uniformly to a few kept
fractions (every prunable width at 75 %, 50 %, 25 %, rounded as the plan
rounds: a width off a kernel's block costs more) and records each layer's
kernel time at each; the price of a channel is then the time its
layers save between the full width and the width the target asks for,
read off the table (linear between the measured widths). The profiles come
from the latency meter, which caches them per model and machine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

KEPT_FRACTIONS = (1.0, 0.75, 0.5, 0.25)  # the widths profiled, as fractions of every prunable width


@dataclass(frozen=True)
class LatencyTable:
    """Per weight, the kernel time (ms) of the layers reading it with every prunable width at each
    of `kept` (descending, starting at 1)."""

    kept: tuple[float, ...]
    times: Mapping[str, tuple[float, ...]]

    def saved(self, weight: str, removed: float) -> float:
        """The time (ms) `weight`'s layers save when every prunable width loses `removed` of its channels."""
        times = self.times[weight]
        at = float(np.interp(1.0 - removed, self.kept[::-1], times[::-1]))
        return max(times[0] - at, 0.0)


def measure_table(times_at: Callable[[float], Mapping[str, float]],
                  kept: tuple[float, ...] = KEPT_FRACTIONS) -> LatencyTable:
    """The table from `times_at(fraction)`: per-weight times of the model with every prunable width
    kept at that fraction (1: the dense model). A weight missing from any profile is left out."""
    profiles = [times_at(fraction) for fraction in kept]
    common = set(profiles[0]).intersection(*profiles[1:])
    return LatencyTable(kept, {name: tuple(float(p[name]) for p in profiles) for name in sorted(common)})


def per_weight_prices(table: LatencyTable, removed: float, shrinking_axes: Mapping[str, int]) -> dict[str, float]:
    """Per weight, the time its layers save per unit of width removed, for one axis: the saving at
    `removed` of every width (read off the table, where every prunable axis of the layer shrank
    together) split over the layer's `shrinking_axes` (its axes some group narrows) and divided by
    `removed`. For a layer whose time follows its
    MACs this is about its full time, as in a dense profile; for one whose time stays flat as it
    narrows it is near zero."""
    removed = min(max(removed, 0.05), 1.0 - table.kept[-1])
    return {name: table.saved(name, removed) / removed / max(shrinking_axes.get(name, 1), 1)
            for name in table.times}
