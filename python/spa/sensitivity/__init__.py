"""Sensitivity-aware allocation: measure what removing channels of each group costs the network's
outputs, then choose per-group counts that meet a target with the least total damage.

- `measure`: the sensitivity table (group x removal count -> output damage), measured with the
  criterion's own correction (OBSPA's refit) on calibration or synthetic samples;
- `allocation`: the multiple-choice knapsack that turns the table into per-group counts;
- `cache`: tables kept on disk, keyed by what they depend on, so re-planning is fast;
- `validation`: the proposed allocation is checked end to end against the uniform one.

`spa.Model.plan(..., allocation="sensitivity")` uses it with any criterion; it is the default
for `criterion="obspa"` with a params or MACs target.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import onnx

from spa.calibration import MEASURED_SAMPLES
from spa.groups import Group
from spa.obspa.hessians import calibration_batches, synthetic_batches
from spa.providers.batching import Feeding, feeding
from spa.select import allowed_removal_counts
from spa.sensitivity.allocation import Options, allocate
from spa.execution import Backend
from spa.sensitivity.cache import load_table, store_table, table_key
from spa.sensitivity.measure import Correction, PruneModel, SensitivityTable, grid_counts, measure
from spa.sensitivity.validation import PlanDamage, least_damage

__all__ = ["SAMPLES", "Options", "PlanDamage", "SensitivityTable", "allocate", "allocation_options",
           "least_damage", "measurement_data", "sensitivity_table"]

SAMPLES = MEASURED_SAMPLES  # enough to rank groups; each measurement runs the model once on them


def measurement_data(base: onnx.ModelProto, calibration: Mapping[str, np.ndarray] | None, samples: int,
                     input_shapes: Mapping[str, Sequence[int]] | None, seed: int
                     ) -> tuple[Feeding, onnx.ModelProto, list[dict[str, np.ndarray]]]:
    """How the model is fed, the model to run (its fixed batch relaxed when that is safe) and the
    batches of `samples` calibration samples (or synthetic ones, as data-free OBSPA makes them)."""
    if calibration is not None:
        first = {name: np.asarray(array)[:samples] for name, array in calibration.items()}

        def batches(size: int) -> Iterator[dict[str, np.ndarray]]:
            return calibration_batches(first, size)
    else:
        def batches(size: int) -> Iterator[dict[str, np.ndarray]]:
            return synthetic_batches(base, samples, size, seed, input_shapes)
    how = feeding(base, batches, samples)
    return how, how.prepare(base), list(how.batches(batches))


def sensitivity_table(base: onnx.ModelProto, batches: Sequence[Mapping[str, np.ndarray]], groups: Sequence[Group],
                      scores: Mapping[int, np.ndarray], round_to: int, note: str,
                      correction: Correction | None = None, prune_model: PruneModel | None = None,
                      quiet: bool = False, backend: Backend | None = None) -> SensitivityTable:
    """The table for `groups` (from the cache when it was measured the same way before), measured
    on `backend` (see measure)."""
    counts = {g.id: grid_counts(g, round_to) for g in groups}
    key = table_key(base.SerializeToString(), batches, {g.id: scores[g.id] for g in groups}, counts, note)
    table = load_table(key)
    if table is None:
        table = measure(base, groups, scores, batches, counts, correction, prune_model, quiet, backend)
        store_table(key, table)
    return table


def allocation_options(groups: Sequence[Group], table: SensitivityTable, cost_per_channel: Mapping[int, float],
                       round_to: int = 1) -> dict[int, Options]:
    """Each group's allowed removal counts, what they cost and their (interpolated) damage."""
    result = {}
    for group in groups:
        if group.id not in table.counts:
            continue
        counts = np.asarray(allowed_removal_counts(group, round_to), dtype=np.int64)
        damages = table.damage_at(group.id, counts)
        keep = np.isfinite(damages)
        result[group.id] = Options(counts[keep], counts[keep] * float(cost_per_channel[group.id]), damages[keep])
    return result
