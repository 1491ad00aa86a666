"""OBSPA: group-level Optimal Brain Surgeon with weight reconstruction.

    pruner = OBSPA(onnx_model, groups, weights, calibration=None)   # data-free
    scores = pruner.scores()              # group id -> per-channel score (any selector takes them)
    updates = pruner.updates(plan)        # initializer name -> corrected array for that plan

Every consumer layer of a group (the Conv/Gemm/MatMul weights that read its
channels, see `layers`) gets a Hessian H = E[x x^T] of its inputs from one
source (`hessians`): calibration data, data-free synthetic inputs, or the
identity. A group's channels are ordered by greedy OBS removal summed over
its consumers (`solver.greedy_scores`); once a plan is chosen, each consumer
is refitted on its kept columns (and bias), so the pruned model reproduces
the dense layer outputs as closely as H allows. Producers of removed
channels are simply deleted by the prune pass. Groups with no reconstructible
consumer fall back to L2 magnitude scores and get no correction.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from spa.calibration import MEASURED_SAMPLES, held_out_split
from spa.criteria import L2Criterion
from spa.errors import SPAError
from spa.execution import Backend
from spa.groups import Group, Member, Plan
from spa.obspa.hessians import (
    batch_statistics_model,
    calibration_batches,
    synthetic_batches,
)
from spa.obspa.layers import LinearLayer, find_layers
from spa.obspa.parallel_hessians import accumulate
from spa.obspa.solver import (
    ConsumerState,
    damped,
    greedy_scores,
    inverse,
)
from spa.obspa.batchnorm import batchnorm_parameters, reestimated_statistics
from spa.obspa.sequential import SequentialRefit, masked, removed_slices
from spa.obspa.solve_tasks import Job, Solve, solve_all
from spa.obspa.synthesis import synthesized_inputs
from spa.progress import progress, progress_bar
from spa.verify.masking import constant_value
from spa.providers.batching import feeding

HESSIAN_SOURCES = ("auto", "calibration", "data-free", "identity")
SYNTHESIS = ("auto", "batchnorm", "inversion", "gaussian")


@dataclass(frozen=True)
class OBSPAOptions:
    """OBSPA settings.

    `hessian`: auto (calibration when data is given, else data-free),
    calibration, data-free or identity; `samples`: synthetic samples for
    data-free; `batch_size`: samples per onnxruntime run; `damp`: dampening
    as a fraction of mean(diag H); `steps`: greedy steps per group;
    `seed`: of the synthetic inputs; `input_shapes`: sizes of inputs with
    dynamic dims for synthetic inputs (input name -> shape); `sequential`:
    refit layers on the pruned model's own inputs, level by level, on the
    first `sequential_samples` samples (see spa.obspa.sequential), else
    one-shot on the dense model's; `reestimate_batchnorm`: with calibration
    data, then re-estimate every BatchNorm's running statistics on the pruned
    model (spa.obspa.batchnorm); `synthesis`: data-free inputs made by
    matching the model's BatchNorm statistics ("batchnorm"), by that and by
    inverting a classifier's classes ("inversion"; `synthesis_samples`
    inputs optimised for `synthesis_steps` steps, by default as many as a
    minute allows, see spa.obspa.synthesis),
    Gaussian ones ("gaussian"), or with "auto" inversion for a classifier,
    else BatchNorm matching, when PyTorch with onnx2torch is installed.
    """

    hessian: str = "auto"
    samples: int = 128
    batch_size: int = 16
    damp: float = 0.01
    steps: int = 32
    seed: int = 0
    input_shapes: Mapping[str, Sequence[int]] | None = None
    sequential: bool = True
    sequential_samples: int = 128
    reestimate_batchnorm: bool = False
    synthesis: str = "auto"
    synthesis_samples: int | None = None
    synthesis_steps: int | None = None


class OBSPA:
    """OBSPA scores and weight corrections for one model state.

    Takes the model as ONNX (for its graph and to run it), the channel
    groups, the weights by name, optional calibration inputs (graph input
    name -> (N, ...) array) and options. Raises SPAError for bad options,
    calibration data that does not fit the model, or a data-free run on a
    model whose input shape is not static.
    """

    def __init__(self, model: onnx.ModelProto, groups: list[Group], weights: Mapping[str, np.ndarray],
                 calibration: Mapping[str, np.ndarray] | None = None, options: OBSPAOptions | None = None,
                 quiet: bool = False, macs: int | None = None, backend: Backend | None = None) -> None:
        options = options or OBSPAOptions()
        self.backend = backend  # where the Hessians are accumulated and large solves run (spa.execution)
        if options.hessian not in HESSIAN_SOURCES:
            raise SPAError(f"obspa: unknown Hessian source {options.hessian!r}; "
                           f"choose from {', '.join(HESSIAN_SOURCES)}")
        if options.synthesis not in SYNTHESIS:
            raise SPAError(f"obspa: synthesis must be one of {', '.join(SYNTHESIS)}, not {options.synthesis!r}")
        if not options.damp > 0:
            raise SPAError(f"obspa: damp must be positive, got {options.damp}")
        source = options.hessian
        if source == "auto":
            source = "calibration" if calibration is not None else "data-free"
        if source == "calibration" and calibration is None:
            raise SPAError("obspa: the calibration Hessian needs calibration data (--calibration DATA.npz)")
        self.groups = groups
        self.weights = weights
        self.options = options
        model = onnx.shape_inference.infer_shapes(model)
        self.layers, self.skipped = find_layers(model, groups, weights)
        self.source = source
        self.feeding_note = ""
        self._run_model = None  # the model the Hessians' samples ran through, for sequential refits
        self._model = model
        self.quiet = quiet
        self.macs = macs  # per sample; sizes the data-free synthesis
        self.synthesized = False
        self.synthesis = None  # when synthesised: what was made (spa.obspa.synthesis.Synthesis)
        # when synthesised: inputs kept out of the Hessians and refits, to judge plans on
        self.held_out_inputs: dict[str, np.ndarray] | None = None
        self.sequential_used = False
        self.batchnorm_reestimated = 0
        self._hessians = self._layer_hessians(model, calibration)
        self._inverses: dict[tuple[str, int], np.ndarray] = {}
        self.fallback_groups: list[int] = []
        self.description = self._describe(calibration)

    # -- Hessians ---------------------------------------------------------------
    def _all_layers(self) -> list[LinearLayer]:
        return [layer for layers in self.layers.values() for layer in layers]

    def _has_bias(self, layer: LinearLayer) -> bool:
        return self.source != "identity" and (layer.bias is not None or layer.bn_mean is not None)

    def _layer_hessians(self, model: onnx.ModelProto, calibration: Mapping[str, np.ndarray] | None
                        ) -> dict[tuple[str, int], np.ndarray]:
        layers = self._all_layers()
        if self.source == "identity":
            return {layer.key: np.eye(self._matrix(layer).shape[1]) for layer in layers}
        options = self.options
        checked = _checked_calibration(model, calibration) if self.source == "calibration" else None
        if self.source == "data-free" and options.synthesis != "gaussian":
            checked = self._synthesized(model)

        def samples(size: int) -> Iterator[dict[str, np.ndarray]]:
            if checked is not None:
                return calibration_batches(checked, size)
            return synthetic_batches(model, options.samples, size, options.seed, options.input_shapes)

        how = feeding(model, samples, options.batch_size)
        self.feeding_note = how.note
        gaussian = self.source == "data-free" and not self.synthesized
        run = how.prepare(batch_statistics_model(model) if gaussian else model)
        self._run_model, self._feeding, self._samples = run, how, samples
        batches = list(how.batches(samples))
        bar = progress_bar(len(batches), "layer Hessians", self.quiet)
        accumulator = accumulate(run, layers, batches, self.backend, bar.update)
        bar.close()
        return {layer.key: damped(accumulator.hessian(layer, self._has_bias(layer)), self.options.damp)
                for layer in layers} if layers and accumulator.count else {}

    def _synthesized(self, model: onnx.ModelProto) -> dict[str, np.ndarray] | None:
        """Inputs the model recognises (spa.obspa.synthesis), or None."""
        options = self.options
        made = synthesized_inputs(model, options.synthesis_samples, options.synthesis_steps, options.seed,
                                  options.input_shapes, self.quiet, options.synthesis, self.macs)
        if made is None and options.synthesis in ("batchnorm", "inversion"):
            needs = ("BatchNorm layers" if options.synthesis == "batchnorm" else
                     "a single output of [N, classes]")
            raise SPAError(f"obspa: synthesis={options.synthesis!r} needs PyTorch and onnx2torch (pip install "
                           f"\"spa[torch]\") and a single-input model with {needs}")
        self.synthesis = made
        self.synthesized = made is not None
        if made is None:
            return None
        self.fit_inputs, self.held_out_inputs = held_out_split(made.inputs, MEASURED_SAMPLES)
        return self.fit_inputs

    def _inverse(self, layer: LinearLayer) -> np.ndarray:
        if layer.key not in self._inverses:
            self._inverses[layer.key] = inverse(self._hessians[layer.key])
        return self._inverses[layer.key]

    def _matrix(self, layer: LinearLayer) -> np.ndarray:
        weight = np.asarray(self.weights[layer.weight])
        if not self._has_bias(layer):
            bias = None
        elif layer.bias is not None:
            bias = np.asarray(self.weights[layer.bias])
        elif layer.bn_mean is not None:
            bias = np.zeros(weight.shape[0])  # the conv adds nothing; a correction lands in the BN mean
        return layer.matrix(weight, bias)

    # -- scores -------------------------------------------------------------------
    def scores(self) -> dict[int, np.ndarray]:
        """Group id -> per-channel OBSPA score for every prunable group (low scores go first)."""
        result = {}
        fallback = L2Criterion()
        self.fallback_groups = []
        for group in progress(self.groups, "OBSPA scores", quiet=self.quiet):
            if not group.prunable:
                continue
            consumers = [ConsumerState(self._matrix(layer), self._inverse(layer).copy(),
                                       _columns_by_channel(layer, member, group.channels))
                         for member in group.members if member.role == "consumer"
                         for layer in self.layers.get(member.tensor, []) if member.axis == layer.input_axis]
            consumers = [c for c in consumers if any(len(cols) for cols in c.columns)]
            if consumers:
                result[group.id] = greedy_scores(group.channels, consumers, self.options.steps)
            else:
                self.fallback_groups.append(group.id)
                result[group.id] = fallback.scores(group, self.weights)
        return result

    # -- corrections ----------------------------------------------------------------
    def reconstruction(self, plan: Plan, quiet: bool = False) -> dict[str, np.ndarray]:
        """The weight updates for `plan`: sequential (see spa.obspa.sequential) when the options ask
        for it and every group of the plan is function-preserving, else one-shot (`updates`)."""
        by_id = {group.id: group for group in self.groups}
        removed = [g for g, c in plan.removed.items() if c]
        if not (self.options.sequential and removed and self._run_model is not None
                and all(by_id[g].function_preserving for g in removed)):
            return self.updates(plan)
        self.sequential_used = True
        updates = SequentialRefit(self, self._run_model, self._first_batches()).updates(plan, self.groups, quiet)
        if self.options.reestimate_batchnorm and self.source == "calibration":
            updates.update(self._reestimated_batchnorm(plan, updates))
        return updates

    def _first_batches(self) -> list[dict[str, np.ndarray]]:
        """The first `sequential_samples` samples, in the batches the model is fed."""
        batches: list[dict[str, np.ndarray]] = []
        for batch in self._feeding.batches(self._samples):
            batches.append(batch)
            if sum(len(next(iter(b.values()))) for b in batches) >= self.options.sequential_samples:
                break
        return batches

    def _reestimated_batchnorm(self, plan: Plan, updates: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Running statistics of every BatchNorm of the pruned, corrected model (see spa.obspa.batchnorm)."""
        model = self._feeding.prepare(self._model)
        masks = removed_slices(plan, {group.id: group for group in self.groups})
        names = set(masks) | set(updates)
        overrides = {name: masked(updates[name] if name in updates else constant_value(model, name),
                                  masks.get(name, ())) for name in names}
        statistics = reestimated_statistics(model, overrides, self._first_batches())
        self.batchnorm_reestimated = len(statistics) // 2
        return statistics

    def updates(self, plan: Plan) -> dict[str, np.ndarray]:
        """Corrected arrays (initializer name -> array of the unpruned shape) for the plan's removals.

        The removed columns are zero in the result, so the prune pass that
        follows deletes exactly what was compensated for.
        """
        by_id = {group.id: group for group in self.groups}
        removed_positions: dict[str, set[int]] = {}
        for group_id, channels in plan.removed.items():
            group = by_id[group_id]
            for member in group.members:
                if member.role == "consumer" and member.tensor in self.layers and channels \
                        and member.axis == self.layers[member.tensor][0].input_axis:
                    removed_positions.setdefault(member.tensor, set()).update(group.positions(member, channels))
        jobs = [Job(layer, self._item_bytes(layer), lambda layer=layer, positions=positions:
                    self._solve(layer, _columns_of_positions(layer, sorted(positions))))
                for name, positions in removed_positions.items() for layer in self.layers[name]]
        updates: dict[str, np.ndarray] = {}
        solve_all(jobs, self.backend, lambda layer, corrected: self._write(layer, corrected, updates))
        return updates

    def _solve(self, layer: LinearLayer, columns: np.ndarray) -> Solve:
        """The one-shot refit of `layer` without `columns`, as a task's item (spa.obspa.solve_tasks)."""
        matrix = self._matrix(layer)
        if 2 * len(columns) < matrix.shape[1]:  # few columns go: downdate the (cached) inverse
            return Solve("downdate", matrix, self._inverse(layer), columns)
        return Solve("refit", matrix, self._hessians[layer.key], columns)

    def _item_bytes(self, layer: LinearLayer) -> int:
        """About what one layer's solve item holds: its float64 matrix and a square statistic."""
        return 8 * (np.size(self.weights[layer.weight]) + self._hessians[layer.key].size)

    def _write(self, layer: LinearLayer, matrix: np.ndarray, updates: dict[str, np.ndarray]) -> None:
        weight = updates.setdefault(layer.weight, np.array(self.weights[layer.weight], copy=True))
        has_bias = self._has_bias(layer)
        if layer.bias is not None and has_bias:
            bias = updates.setdefault(layer.bias, np.array(self.weights[layer.bias], copy=True))
            layer.write_back(matrix, weight, bias)
        elif layer.bn_mean is not None and has_bias:
            shift = np.zeros(weight.shape[0], dtype=np.float64)
            layer.write_back(matrix, weight, shift)
            mean = updates.setdefault(layer.bn_mean, np.array(self.weights[layer.bn_mean], copy=True))
            rows = slice(*layer.rows)
            mean[rows] = mean[rows] - shift[rows].astype(mean.dtype)
        else:
            layer.write_back(matrix, weight, None)

    def _describe(self, calibration: Mapping[str, np.ndarray] | None) -> str:
        count = sum(len(v) for v in self.layers.values())
        if self.source == "calibration":
            samples = len(next(iter(calibration.values()))) if calibration else 0
            data = f"Hessians from {samples} calibration samples"
        elif self.source == "data-free" and self.synthesized:
            aim = ("to be classified as each class in turn" + (" and to match the model's BatchNorm statistics"
                                                               if batchnorm_parameters(self._model) else "")
                   if self.synthesis.objective == "inversion" else "to match the model's BatchNorm statistics")
            samples = len(next(iter(self.fit_inputs.values())))
            data = f"data-free Hessians ({samples} inputs synthesised {aim}, {self.synthesis.steps} steps)"
        elif self.source == "data-free":
            data = (f"data-free Hessians ({self.options.samples} synthetic inputs: Gaussian in the normalised "
                    "input space, tokens uniform over the vocabulary; BatchNorm layers re-normalised to batch "
                    "statistics)")
        else:
            data = "identity Hessians (no data: consumer-column L2 saliency, no correction)"
        if self.feeding_note:
            data += f" ({self.feeding_note})"
        text = f"{data}; {count} consumer layers reconstructed"
        if self.skipped:
            text += f", {len(self.skipped)} consumer weights not reconstructible"
        return text


def _columns_by_channel(layer: LinearLayer, member: Member, channels: int) -> list[np.ndarray]:
    """For each group channel, the columns of `layer`'s W that belong to it."""
    per_position = layer.columns_per_position()
    channel_of_column = np.repeat(member.channel_array(), per_position)
    order = np.argsort(channel_of_column, kind="stable")
    starts = np.searchsorted(channel_of_column[order], np.arange(channels + 1))
    return [order[starts[c]:starts[c + 1]] for c in range(channels)]


def _columns_of_positions(layer: LinearLayer, positions: list[int]) -> np.ndarray:
    per_position = layer.columns_per_position()
    base = np.asarray(positions, dtype=np.int64)[:, None] * per_position
    return (base + np.arange(per_position)[None, :]).reshape(-1)


def _checked_calibration(model: onnx.ModelProto, calibration: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializers]
    missing = [name for name in inputs if name not in calibration]
    if missing:
        raise SPAError(f"calibration data: no array for model input(s) {', '.join(missing)} "
                       f"(it has {', '.join(calibration) or 'nothing'})")
    return {name: np.asarray(calibration[name]) for name in inputs}
