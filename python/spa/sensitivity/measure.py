"""The sensitivity table: how much removing k channels of one group changes the network's outputs.

For every eligible group and every k on a grid (fractions of its channels,
rounded to the counts selection allows), the group's k lowest-scored
channels are removed alone and the model is run on a few samples; the
damage is the mean squared error relative to the dense output's mean
square, summed over outputs (classifier logits centred per row). The
criterion's weight correction is part of the measurement (OBSPA refits the
consumers of the removed channels first).

A function-preserving group is removed by zeroing its slices (the zero-mask
oracle says that is the pruned model), fed as overridable inputs: no session
per measurement. Each group's measurements run only the nodes from the first
one that reads its constants, on the values the nodes before it computed once
per group (spa.providers.suffix: one session for the nodes before, one for
the rest). A group that
is not function-preserving (a LayerNorm's width) is pruned for real, one
session per measurement.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx

from spa.cache import digest
from spa.errors import SPAError
from spa.execution import Backend, default_backend, worker_cache
from spa.groups import Group, Plan
from spa.progress import progress_bar
from spa.providers.overridable import with_overridable
from spa.providers.pieces import GraphPieces
from spa.providers.suffix import SuffixRun
from spa.select import allowed_removal_counts, removal_order
from spa.verify.checks import Runner
from spa.verify.masking import constant_value

GRID = (0.1, 0.25, 0.4, 0.55, 0.7, 0.85)
THREADS = 1  # onnxruntime threads per measurement: workers share the cores, and every worker computes alike

Correction = Callable[[int, tuple[int, ...]], dict[str, np.ndarray]]  # (group, removed) -> corrected weights
PruneModel = Callable[[Plan], onnx.ModelProto]  # a plan -> the pruned model (SPA's opset)


@dataclass
class SensitivityTable:
    """Group id -> (removal counts measured, damage of each); 0 removed is always 0 damage."""

    counts: dict[int, np.ndarray] = field(default_factory=dict)
    damages: dict[int, np.ndarray] = field(default_factory=dict)

    def damage_at(self, group_id: int, counts: Sequence[int]) -> np.ndarray:
        """Damage for any removal counts: linear between the measured ones, +inf past the last."""
        measured = np.concatenate([[0], self.counts[group_id]])
        damage = np.concatenate([[0.0], self.damages[group_id]])
        wanted = np.asarray(counts, dtype=np.float64)
        result = np.interp(wanted, measured, damage)
        result[wanted > measured[-1]] = np.inf
        return result

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays for np.savez (see from_arrays)."""
        arrays = {}
        for group_id in self.counts:
            arrays[f"counts_{group_id}"], arrays[f"damages_{group_id}"] = self.counts[group_id], self.damages[group_id]
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> SensitivityTable:
        table = cls()
        for key in arrays:
            if key.startswith("counts_"):
                group_id = int(key.split("_")[1])
                table.counts[group_id] = np.asarray(arrays[key])
                table.damages[group_id] = np.asarray(arrays[f"damages_{group_id}"])
        return table


def grid_counts(group: Group, round_to: int = 1, grid: Sequence[float] | None = None) -> list[int]:
    """The allowed removal counts nearest to each `grid` fraction (default GRID) of the group's channels
    (no 0, no repeats)."""
    grid = GRID if grid is None else grid
    allowed = allowed_removal_counts(group, round_to)[1:]
    if not allowed:
        return []
    picked = {min(allowed, key=lambda n: (abs(n - f * group.channels), n)) for f in grid}
    return sorted(picked)


def output_damage(dense: Sequence[np.ndarray], pruned: Sequence[np.ndarray]) -> float:
    """The mean squared error relative to the dense output's mean square, summed over outputs; 2-D
    outputs (classifier logits) are centred per row first, as softmax ignores a shift.

    Logits rather than KL of the softmax: a confident classifier's softmax barely moves while its
    margins shrink, so KL ranks damage by noise (measured on MNISTNet)."""
    total = 0.0
    for want, got in zip(dense, pruned):
        want, got = np.asarray(want, np.float64), np.asarray(got, np.float64)
        if want.ndim == 2 and want.shape[1] > 1:
            want, got = want - want.mean(axis=1, keepdims=True), got - got.mean(axis=1, keepdims=True)
        total += float(np.mean((want - got) ** 2) / max(np.mean(want ** 2), 1e-12))
    return total if np.isfinite(total) else 1e30


def measure(base: onnx.ModelProto, groups: Sequence[Group], scores: Mapping[int, np.ndarray],
            batches: Sequence[Mapping[str, np.ndarray]], counts: Mapping[int, Sequence[int]],
            correction: Correction | None = None, prune_model: PruneModel | None = None,
            quiet: bool = False, backend: Backend | None = None) -> SensitivityTable:
    """The table for `groups` (each with `counts[g]` to measure), on the samples of `batches`.

    The groups measured by masking run as tasks on `backend` (spa.execution; default: this process
    for a small job, local processes for a large one), one per group; the result does not depend
    on where they ran. Groups pruned for real are measured here."""
    shared = _Shared.of(base, groups, batches)
    masked = [g for g in groups if g.function_preserving or prune_model is None]
    jobs = [_Job(group, _removals(group, scores, counts, correction)) for group in masked]
    bar = progress_bar(total=sum(len(counts.get(g.id, ())) for g in groups), description="sensitivity table",
                       quiet=quiet)
    backend = backend or default_backend(len(shared.model) * sum(len(job.removals) for job in jobs))
    damages = dict(zip([g.id for g in masked], backend.map(_measure_group, shared, jobs,
                                                          lambda job: bar.update(len(job.removals)))))
    for group in groups:
        if group.id not in damages:
            damages[group.id] = _measure_pruned(group, scores, counts, correction, prune_model, shared, batches)
            bar.update(len(counts.get(group.id, ())))
    bar.close()
    table = SensitivityTable()
    for group in groups:
        if len(damages[group.id]):
            table.counts[group.id] = np.asarray(counts[group.id], dtype=np.int64)
            table.damages[group.id] = np.maximum.accumulate(np.asarray(damages[group.id]))  # more removed never helps
    return table


@dataclass
class _Shared:
    """What every measurement reads: the model, which constants to override, the samples, the dense outputs."""

    key: str
    model: bytes
    names: tuple[str, ...]
    batches: list[dict[str, np.ndarray]]
    dense: list[np.ndarray]

    @classmethod
    def of(cls, base: onnx.ModelProto, groups: Sequence[Group], batches: Sequence[Mapping[str, np.ndarray]]) -> _Shared:
        names = tuple(sorted({m.tensor for g in groups for m in g.members}))
        blob = base.SerializeToString()
        shared = cls(digest([blob, *names]), blob, names, [dict(b) for b in batches], [])
        whole = _session(shared).from_first_change(set(), shared.batches)
        dense = whole.run({})
        if dense is None:
            why = f" ({whole.failure.message})" if whole.failure is not None else ""
            raise SPAError(f"sensitivity: onnxruntime cannot run the model on the measurement samples{why}")
        shared.dense = dense
        return shared


@dataclass
class _Job:
    """One group's measurements: (removed channels, corrected weights) per count."""

    group: Group
    removals: list[tuple[tuple[int, ...], dict[str, np.ndarray]]]


def _removals(group: Group, scores: Mapping[int, np.ndarray], counts: Mapping[int, Sequence[int]],
              correction: Correction | None) -> list[tuple[tuple[int, ...], dict[str, np.ndarray]]]:
    order = removal_order(group, scores)
    removals = []
    for count in counts.get(group.id, ()):
        removed = tuple(sorted(order[:count].tolist()))
        removals.append((removed, correction(group.id, removed) if correction else {}))
    return removals


def _session(shared: _Shared) -> _OverridableSession:
    """The worker's session of the shared model (one thread: the same result in any worker)."""
    return worker_cache(shared.key, lambda: _OverridableSession(onnx.load_from_string(shared.model), shared.names))


def _measure_group(shared: _Shared, job: _Job) -> list[float]:
    """A task: the damage of each of the job's removals, masked in the shared model."""
    session = _session(shared)
    changed = {m.tensor for m in job.group.members} | {name for _, updates in job.removals for name in updates}
    rest = session.from_first_change(changed, shared.batches)  # the nodes before it compute as in the dense run
    damages = []
    for removed, updates in job.removals:
        outputs = rest.run(session.masked(job.group, removed, updates))
        damages.append(output_damage(shared.dense, outputs) if outputs is not None else 1e30)
    return damages


def _measure_pruned(group: Group, scores: Mapping[int, np.ndarray], counts: Mapping[int, Sequence[int]],
                    correction: Correction | None, prune_model: PruneModel, shared: _Shared,
                    batches: Sequence[Mapping[str, np.ndarray]]) -> list[float]:
    """The damages of a group that masking cannot measure (not function-preserving): pruned for real."""
    damages = []
    for removed, updates in _removals(group, scores, counts, correction):
        outputs = run_all(Runner(prune_model(Plan({group.id: removed}, updates)).SerializeToString(), THREADS),
                          batches)
        damages.append(output_damage(shared.dense, outputs) if outputs is not None else 1e30)
    return damages


class _OverridableSession:
    """The model with the constants `names` overridable, cut into the runs a group's measurements need
    (spa.providers.suffix), on THREADS onnxruntime threads."""

    def __init__(self, base: onnx.ModelProto, names: Sequence[str]) -> None:
        prepared = with_overridable(base, names)
        self.pieces = GraphPieces(prepared)
        self.values = {name: constant_value(prepared, name) for name in sorted(set(names))}
        self.outputs = [o.name for o in base.graph.output]

    def masked(self, group: Group, removed: tuple[int, ...], updates: Mapping[str, np.ndarray]
               ) -> dict[str, np.ndarray]:
        """Feeds that zero the group's slices at `removed`, after writing `updates`."""
        values = self.values
        changed = {name: np.array(value, dtype=values[name].dtype) for name, value in updates.items()
                   if name in values}
        for member in group.members:
            array = changed.setdefault(member.tensor, values[member.tensor].copy())
            index: list = [slice(None)] * array.ndim
            index[member.axis] = group.positions(member, removed)
            array[tuple(index)] = 0
        return changed

    def from_first_change(self, changed: set[str], batches: Sequence[Mapping[str, np.ndarray]]) -> SuffixRun:
        """A run of the model from the first node reading a `changed` constant, on `batches`; the whole
        model when the cut cannot be run (a value onnxruntime cannot take as an input crosses it)."""
        rest = SuffixRun(self.pieces, self.outputs, changed, batches, THREADS)
        return rest if rest.failure is None else SuffixRun(self.pieces, self.outputs, changed, batches, THREADS, cut=0)


def run_all(runner: Runner, batches: Sequence[Mapping[str, np.ndarray]]) -> list[np.ndarray] | None:
    """Outputs of every batch, joined along the batch axis; None if a run fails."""
    parts = []
    for batch in batches:
        outputs = runner.run(batch)
        if not isinstance(outputs, list):
            return None
        parts.append(outputs)
    return [np.concatenate([np.atleast_1d(p[i]) for p in parts]) for i in range(len(parts[0]))]
