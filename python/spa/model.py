"""The Python API: load a model, look at its channel groups, prune it, save it.

    import spa
    model = spa.load("model.onnx")
    plan = model.plan(criterion="l1", ratio=0.3)
    model.prune(plan)
    model.save("pruned.onnx")
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from spa.ir.bindings import ir

from spa import passes, sensitivity, stats
from spa.ir import tensors
from spa.calibration import held_out_split
from spa.ir.context import new_context
from spa.criteria import make_criterion, score_groups
from spa.errors import SPAError
from spa.execution import Backend
from spa.exporter import EXTERNAL_DATA_THRESHOLD, export_module, save_module, write_bytes_atomically
from spa.exporter.external_data import InMemoryData, initializer_bytes
from spa.exporter.graph_exporter import TensorSink
from spa.groups import Group, Plan
from spa.importer import ImportConfig, import_model
from spa.importer.canonical_forms import with_copies
from spa.ir.names import SPA_OPSET
from spa.latency import LatencyMeter
from spa.latency_table import LatencyTable, measure_table
from spa.obspa import OBSPA, OBSPAOptions
from spa.planning import Planner, choose_allocation
from spa.target import Target
from spa.progress import phase
from spa.providers import Provider
from spa.sensitivity import (
    PlanDamage,
    SensitivityTable,
    allocate,
    allocation_options,
    least_damage,
    measurement_data,
    sensitivity_table,
)
from spa.verify import Trial, Verification, generated_inputs, verified_prune
from spa.verify.checks import LARGE_MODEL_BYTES, Failure, Runner, check_signature, check_validity

HEAD_PRUNING = ("dims", "whole")
ROUNDINGS = (1, 8, 16)  # kept-channel multiples tried for a latency target (CPU kernels block by 8 or 16)


class Model:
    """An ONNX model held as an onnx-dialect MLIR module."""

    def __init__(self, module: ir.Module, label: str = "<model>"):
        self.module = module
        self.label = label
        self._groups: list[Group] | None = None
        self._heads = "dims"
        self._state: onnx.ModelProto | None = None  # the current state at SPA's opset
        self._written: tuple[int | None, onnx.ModelProto, bytes] | None = None  # opset, verified model, bytes
        self._reference: tuple[dict[str, np.ndarray], list[np.ndarray] | None] | None = None  # feeds, outputs
        self.verification: Verification | None = None  # what the last prune's verification checked
        self._latency_meter: LatencyMeter | None = None  # set by a plan for a latency target
        self._latency_tables: tuple[object, dict[tuple, LatencyTable]] = (None, {})  # (their meter, by key)
        self._latency_reference: tuple = (None, None, b"")  # (its meter, the state, that state serialised)

    @property
    def heads(self) -> str:
        """How attention heads are pruned: "dims" (the same head dims in every head; the default)
        or "whole" (whole heads). Setting it recomputes the groups."""
        return self._heads

    @heads.setter
    def heads(self, value: str) -> None:
        if value not in HEAD_PRUNING:
            raise SPAError(f"heads must be one of {', '.join(HEAD_PRUNING)}, not {value!r}")
        if value != self._heads:
            self._heads, self._groups = value, None

    # -- reading ---------------------------------------------------------------
    def coupling_groups(self) -> list[Group]:
        """The groups of coupled channels (computed once per model state)."""
        if self._groups is None:
            with phase("channel coupling analysis"):
                self._groups = passes.coupling_groups(self.module, self._heads)
        return self._groups

    def hold_groups(self, group_ids: Iterable[int], reason: str) -> None:
        """Make the groups `group_ids` not prunable, with `reason` (until the groups are recomputed:
        after pruning or a change of `heads`). Adapters hold widths their framework cannot represent."""
        held = set(group_ids)
        self._groups = [dataclasses.replace(g, prunable=False, reasons=(*g.reasons, reason)) if g.id in held else g
                        for g in self.coupling_groups()]

    def input_names(self) -> list[str]:
        """Names of the graph inputs (in order)."""
        with self.module.context:
            terminator = stats.main_ops(self.module)[-1]
            if "onnx.input_names" in terminator.attributes:
                return [ir.StringAttr(n).value for n in ir.ArrayAttr(terminator.attributes["onnx.input_names"])]
        return [i.name for i in self.to_onnx(opset=SPA_OPSET).graph.input]

    def weights(self) -> dict[str, np.ndarray]:
        """Every constant's data by ONNX name: initializers (read-only views, no
        copies), Constant nodes and ConstantOfShape fills (broadcast views)."""
        result = {}
        with self.module.context:
            for op in stats.main_ops(self.module):
                attributes = op.attributes
                if op.name == "onnx.Initializer":
                    result[ir.StringAttr(attributes["tensor_name"]).value] = tensors.to_array(attributes["value"])
                elif op.name in ("onnx.Constant", "onnx.ConstantOfShape", "onnx.Identity") \
                        and "onnx.output_names" in attributes:
                    name = ir.StringAttr(ir.ArrayAttr(attributes["onnx.output_names"])[0]).value
                    shape = op.results[0].type
                    if op.name == "onnx.Constant" and "value" in attributes:
                        result[name] = tensors.to_array(attributes["value"])
                    elif op.name == "onnx.Identity" and not isinstance(op.operands[0].owner, ir.Block) \
                            and op.operands[0].owner.name == "onnx.Initializer":
                        source = ir.StringAttr(op.operands[0].owner.attributes["tensor_name"]).value
                        result[name] = result[source]
                    elif op.name == "onnx.ConstantOfShape" and shape.has_static_shape:
                        fill = tensors.to_array(attributes["value"]).reshape(-1)[0] if "value" in attributes \
                            else np.float32(0)
                        result[name] = np.broadcast_to(fill, shape.shape)  # a scalar fill fits any rank, even 0
        return result

    def stats(self) -> stats.ModelStats:
        """Parameter and MAC counts."""
        return stats.module_stats(self.module)

    # -- pruning ---------------------------------------------------------------
    def plan(self, criterion: str = "l1", ratio: float | None = None, target_params: float | None = None,
             target_flops: float | None = None, global_ranking: bool = False, round_to: int | str = 1,
             protect: Iterable[str] = (), seed: int = 0, provider: Provider | None = None,
             calibration: Mapping[str, np.ndarray] | None = None, obspa: OBSPAOptions | None = None,
             criterion_options: Mapping[str, object] | None = None, allocation: str | None = None,
             input_shapes: Mapping[str, Sequence[int]] | None = None, quiet: bool = False,
             target_latency: float | None = None, latency_threads: int = 1,
             backend: Backend | None = None, target: Target | None = None) -> Plan:
        """Choose channels to remove.

        `target` (a spa.Target: `Target.macs(0.3)` removes 30 % of the MACs)
        says how much to remove; `ratio`, `target_params`, `target_flops` and
        `target_latency` are shorthands for Target.channels, .params, .macs
        and .latency. Exactly one of the five must be given.
        Latency is measured on `latency_threads` threads, on inputs made from
        the declared ones (`input_shapes` sizes dynamic dims; the batch is
        one of them), and cached per model and machine. `round_to` keeps a
        multiple of that many channels per group; "auto" (the default with a
        latency target) measures the candidates in ROUNDINGS and keeps the one
        that meets the target removing the fewest channels. `backend`
        (spa.execution) runs the sensitivity table's measurements,
        OBSPA's Hessian accumulation and, on Ray, its large reconstruction
        solves (default: the table on local processes for a large model,
        the rest in this process); it is not used after plan returns. `allocation` says how they are shared among groups:
        "uniform" (the same ratio in each), "global" (channels ranked across
        groups; `global_ranking=True` says the same) or "sensitivity" (per-group
        counts from a measured sensitivity table with the least predicted
        damage; see spa.planning); the default is sensitivity for obspa with a
        params/MACs target, else uniform.
        `protect` names initializers whose groups are left alone. `criterion`
        is a name from spa.criteria.CRITERIA or "obspa"; derivative criteria
        read their data from `provider` (see spa.providers). OBSPA and the
        sensitivity table use `calibration` (graph input name -> (N, ...)
        array) when given, else synthetic inputs (sized by `input_shapes`
        where dims are dynamic), with `obspa` options; the returned plan
        carries OBSPA's weight corrections. `criterion_options` go to the
        criterion's constructor. `plan.data_used` says what data was read;
        `quiet` silences progress displays.
        """
        target = Target.of(target, ratio, target_params, target_flops, target_latency)
        allocation = choose_allocation(allocation, criterion, target, global_ranking)
        roundings = self._roundings(round_to, target, input_shapes, latency_threads)
        if calibration is not None and criterion != "obspa" and allocation != "sensitivity":
            raise SPAError(f"calibration data is only used by the obspa criterion and sensitivity allocation, "
                           f"not {criterion}")
        groups = self.coupling_groups()
        weights = self.weights()  # one walk over the constants for scores, names and shapes
        protect = _protected(protect, weights)
        options = obspa or OBSPAOptions(seed=seed)
        if input_shapes and not options.input_shapes:
            options = dataclasses.replace(options, input_shapes=dict(input_shapes))
        fit, held_out = calibration, calibration
        if allocation == "sensitivity" and criterion == "obspa" and calibration is not None:
            fit, held_out = held_out_split(calibration, sensitivity.SAMPLES)  # OBSPA's refit would look perfect on its own samples
        pruner, scores, data_used = self._score(criterion, groups, weights, provider, fit, options,
                                                criterion_options, seed, quiet, backend)
        refit = pruner.reconstruction if pruner is not None else (lambda plan, quiet: {})
        shapes = {n: a.shape for n, a in weights.items()}
        candidates = []
        for rounding in roundings:
            planner = Planner(self, groups, shapes, scores, rounding, tuple(protect))
            with phase(f"selection ({target.measure} target, kept widths multiples of {rounding})", quiet):
                candidates.append((rounding, *self._allocate(planner, target, allocation, criterion, pruner,
                                                             held_out, options, quiet, backend)))
        rounding, plan, updates, note, table = self._least_removal(candidates, target)
        self._forget_latency_reference()
        data_used += note
        if updates is None:
            updates = refit(plan, quiet)
        if pruner is None:
            return Plan(plan.removed, {}, data_used, self._heads, sensitivity=table, round_to=rounding)
        if pruner.sequential_used:
            data_used += "; layers refitted sequentially on the pruned model's own inputs"
        data_used += f"; {pruner.batchnorm_reestimated} BatchNorms re-estimated" if pruner.batchnorm_reestimated else ""
        pruner.backend = None  # a later refit (healing a blocked group) runs here: the caller may close it
        return Plan(plan.removed, updates, data_used, self._heads, sensitivity=table, round_to=rounding,
                    refit=lambda removed: pruner.reconstruction(Plan(removed), quiet))

    def _roundings(self, round_to: int | str, target: Target, input_shapes: Mapping[str, Sequence[int]] | None,
                   threads: int) -> tuple[int, ...]:
        """The roundings to try; sets up the latency meter a latency target needs."""
        if target.measure == "latency":
            self._latency_meter = LatencyMeter(generated_inputs(self._state_onnx(), input_shapes), threads)
            round_to = "auto" if round_to == 1 else round_to
        if round_to == "auto":
            if target.measure != "latency":
                raise SPAError("round_to='auto' chooses the rounding by measured latency: give target_latency")
            return ROUNDINGS
        if isinstance(round_to, str) or round_to < 1:
            raise SPAError(f"round_to must be a positive integer or 'auto', not {round_to!r}")
        return (round_to,)

    def _allocate(self, planner: Planner, target: Target, allocation: str, criterion: str, pruner: OBSPA | None,
                  held_out, options: OBSPAOptions, quiet: bool, backend: Backend | None) -> tuple:
        """(plan, its weight updates or None when the refit is still to run, a note for data_used, sensitivity
        table)."""
        if allocation != "sensitivity":
            plan = planner.uniform(target) if allocation == "uniform" else planner.global_ranking(target)
            return plan, None, "", {}
        proposed, note, judge, measured = self._by_sensitivity(planner, target, criterion, pruner, held_out,
                                                               options, quiet, backend)
        # The candidates are judged with one-shot corrections, as the table measured them; only the one
        # kept gets the (sequential) refit, which on ResNet-50 costs as much as the whole table.
        one_shot = pruner.updates if pruner is not None else (lambda plan: {})
        plan, updates, verdict = least_damage({"sensitivity": proposed, "uniform": planner.uniform(target)},
                                              one_shot, judge)
        table = {g: (tuple(int(c) for c in measured.counts[g]), tuple(float(d) for d in measured.damages[g]))
                 for g in measured.counts}
        judged = ", judged with one-shot corrections" if pruner is not None and "kept" in verdict else ""
        final = None if pruner is not None and pruner.options.sequential else updates  # else already the refit
        return plan, final, f"; {note}; {verdict}{judged}", table

    def _least_removal(self, candidates: list[tuple], target: Target) -> tuple:
        """Of (rounding, plan, updates, note, table) candidates, the one that meets the target removing the
        fewest channels (or, when none does, that comes nearest); with its rounding also in the note."""
        if len(candidates) == 1:
            return candidates[0]
        before = self.current_stat(target.measure)
        achieved = [1 - self.remaining(c[1], target.measure, before) for c in candidates]
        meeting = [i for i, a in enumerate(achieved) if a >= target.fraction]
        best = min(meeting, key=lambda i: candidates[i][1].removed_count()) if meeting else \
            max(range(len(candidates)), key=lambda i: achieved[i])
        measured = ", ".join(f"{c[0]}: {1 - a:.0%}" for c, a in zip(candidates, achieved))
        rounding, plan, updates, note, table = candidates[best]
        return rounding, plan, updates, f"{note}; kept channels rounded to multiples of {rounding}, chosen by " \
                                        f"measured onnxruntime latency (pruned/original by multiple: {measured})", table

    def _forget_latency_reference(self) -> None:
        """Free what timing candidates against this model held: its bytes and the meter's session of it."""
        meter = self._latency_reference[0]
        if hasattr(meter, "forget_reference"):
            meter.forget_reference()
        self._latency_reference = (None, None, b"")

    def current_stat(self, measure: str) -> float:
        """The model's params or MACs, or its latency in ms (measured by the meter a latency target set up)."""
        if measure == "latency":
            if self._latency_meter is None:
                raise SPAError("latency is measured only for a plan with target_latency")
            return self._latency_meter(self._state_onnx())
        return getattr(self.stats(), measure)

    def _score(self, criterion: str, groups: list[Group], weights: Mapping[str, np.ndarray],
               provider: Provider | None, calibration: Mapping[str, np.ndarray] | None, options: OBSPAOptions,
               criterion_options: Mapping[str, object] | None, seed: int, quiet: bool = False,
               backend: Backend | None = None) -> tuple[OBSPA | None, dict[int, np.ndarray], str]:
        """(the OBSPA pruner or None, group id -> per-channel scores, what data was read)."""
        if criterion == "obspa":
            pruner = OBSPA(self._state_onnx(), groups, weights, calibration, options, quiet, self.stats().macs,
                           backend)
            return pruner, pruner.scores(), pruner.description
        settings = dict(criterion_options or {})
        if criterion == "random":
            settings.setdefault("seed", seed)
        chosen = make_criterion(criterion, **settings)
        scores = score_groups(chosen, groups, weights, self._graph_data(weights), provider)
        return None, scores, _data_used(chosen, provider, len(scores), sum(g.prunable for g in groups))

    def _by_sensitivity(self, planner: Planner, target: Target, criterion: str, pruner: OBSPA | None,
                        calibration: Mapping[str, np.ndarray] | None, options: OBSPAOptions, quiet: bool,
                        backend: Backend | None = None) -> tuple[Plan, str, Callable[[Plan], object], SensitivityTable]:
        """The plan of a sensitivity allocation, a note on how the table was measured, a judge (the
        end-to-end Judgement of any plan, with its weight updates, on the same samples) and the table."""
        eligible = planner.eligible()
        synthesized = calibration is None and pruner is not None and pruner.held_out_inputs is not None
        if synthesized:  # the model's own synthesised inputs say more about its damage than Gaussian ones
            calibration = pruner.held_out_inputs
        how, run_model, batches = measurement_data(self._state_onnx(), calibration, sensitivity.SAMPLES,
                                                   options.input_shapes, options.seed + 1)  # not OBSPA's samples
        original = self._bytecode()

        def prune_model(plan: Plan) -> onnx.ModelProto:
            groups = self.coupling_groups()
            return how.prepare(export_module(self._pruned_copy(original, plan, groups), opset=SPA_OPSET))

        correction = (lambda g, removed: pruner.updates(Plan({g: removed}))) if pruner is not None else None
        note = f"{criterion} {options} heads={self._heads} damage=centred-logit-mse"  # what the cache key covers
        table = sensitivity_table(run_model, batches, eligible, planner.scores, planner.round_to, note,
                                  correction, prune_model, quiet, backend)
        choices = allocation_options(eligible, table, planner.costs(target.measure, target.fraction), planner.round_to)
        samples = sum(len(next(iter(b.values()))) for b in batches)
        measured = sum(len(c) for c in table.counts.values())
        return (planner.by_counts(target, lambda cost: allocate(choices, cost)),
                f"per-group counts from a sensitivity table ({measured} measurements over {len(table.counts)} "
                f"groups, {samples} {_sample_kind(calibration, synthesized)} samples)",
                PlanDamage(run_model, batches, prune_model), table)

    def remaining(self, plan: Plan, measure: str, before: float | None = None) -> float:
        """pruned/original params, MACs or latency (see current_stat) of a copy pruned by `plan` (not
        verified); `before` is this model's own figure when the caller has it. Latency is timed against
        this model in alternation (LatencyMeter.ratio), as an upper estimate, when the meter can."""
        trial, meter = self._pruned_trial(plan), self._latency_meter
        if measure == "latency" and hasattr(meter, "ratio"):
            state = self._state_onnx()  # a new object after every prune or weight change
            if self._latency_reference[0] is not meter or self._latency_reference[1] is not state:
                self._latency_reference = (meter, state, state.SerializeToString())
            return meter.ratio(self._latency_reference[2], trial._state_onnx())
        before = self.current_stat(measure) if before is None else before
        return trial.current_stat(measure) / before if before else 1.0

    def latency_table(self, plan_at: Callable[[float], Plan], key: tuple) -> LatencyTable | None:
        """Layer times over channel counts (spa.latency_table), profiled by the latency meter a latency
        target set up on copies pruned by `plan_at(kept fraction)`; None without a meter that profiles
        layers. Measured once per meter, head granularity and `key` (what else `plan_at` depends on:
        the rounding, as a width off a kernel's block costs more, and the protected weights)."""
        meter = self._latency_meter
        if meter is None or not hasattr(meter, "weight_times"):
            return None
        if self._latency_tables[0] is not meter:
            self._latency_tables = (meter, {})
        tables, key = self._latency_tables[1], (self._heads, *key)
        if key not in tables:
            def times_at(kept: float) -> dict[str, float]:
                trial = self if kept >= 1 else self._pruned_trial(plan_at(kept))
                return meter.weight_times(trial._state_onnx())

            tables[key] = measure_table(times_at)
        return tables[key]

    def _pruned_trial(self, plan: Plan) -> Model:
        """A copy of this model pruned by `plan` (not verified), sharing its latency meter."""
        trial = Model(self._clone(), self.label)
        trial.heads = self._heads  # group ids depend on the head granularity
        trial._latency_meter = self._latency_meter
        trial.prune(plan, verify=False)
        return trial

    def _clone(self) -> ir.Module:
        """A deep copy of the module (through bytecode: weights stay binary), in a context of its own:
        a context keeps every weight blob parsed into it until it goes, so copies made for a trial
        in this model's context would stay in memory as long as the model."""
        return ir.Module.parse(self._bytecode(), context=new_context())

    def _graph_data(self, weights: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
        """Data kinds the graph itself supplies: the scale tensor of every normalisation op."""
        scales = {}
        with self.module.context:
            for op in stats.main_ops(self.module):
                if op.name in _NORM_OPS and len(op.operands) > 1:
                    name = stats.constant_name(op.operands[1])
                    if name in weights:
                        scales[name] = weights[name]
        return {"norm_scales": scales}

    def set_weights(self, arrays: Mapping[str, np.ndarray]) -> None:
        """Replace the data of initializers (name -> array of the same shape; cast to their type).

        A name that is an Identity of an initializer (how TorchScript exports
        share equal weights) gets an initializer of its own, so the other
        users keep the old data. Raises SPAError for a name that is no
        initializer or a shape that differs.
        """
        remaining = dict(arrays)
        with self.module.context:
            for op in stats.main_ops(self.module):
                if op.name == "onnx.Initializer":
                    name = ir.StringAttr(op.attributes["tensor_name"]).value
                elif op.name == "onnx.Identity" and "onnx.output_names" in op.attributes \
                        and not isinstance(op.operands[0].owner, ir.Block) \
                        and op.operands[0].owner.name == "onnx.Initializer":
                    name = ir.StringAttr(ir.ArrayAttr(op.attributes["onnx.output_names"])[0]).value
                else:
                    continue
                if name in remaining:
                    self._replace_constant(op, name, remaining.pop(name))
        self._state = self._written = None
        if remaining:
            raise SPAError(f"set_weights: no initializer named {', '.join(sorted(remaining))}")

    def _replace_constant(self, op: ir.Operation, name: str, array: np.ndarray) -> None:
        """Give the initializer (or initializer Identity) `op` named `name` the data `array`."""
        source = op if op.name == "onnx.Initializer" else op.operands[0].owner
        old_type = ir.RankedTensorType(source.results[0].type)
        if tuple(array.shape) != tuple(old_type.shape):
            raise SPAError(f"set_weights: {name} has shape {list(old_type.shape)}, got {list(array.shape)}")
        data = np.ascontiguousarray(array, dtype=tensors.to_array(source.attributes["value"]).dtype)
        value = ir.DenseResourceElementsAttr.get_from_buffer(memoryview(data.reshape(-1)), f"{name}_updated",
                                                             source.attributes["value"].type)
        if op.name == "onnx.Initializer":
            op.attributes["value"] = value
            return
        with ir.InsertionPoint(op), op.location:
            fresh = ir.Operation.create("onnx.Initializer", results=[op.results[0].type],
                                        attributes={"tensor_name": ir.StringAttr.get(name), "value": value})
        op.results[0].replace_all_uses_with(fresh.results[0])
        op.erase()

    def prune(self, plan: Plan, verify: bool = True, inputs: Mapping[str, np.ndarray] | None = None,
              input_shapes: Mapping[str, Sequence[int]] | None = None, opset: int | None = None) -> Plan:
        """Write the plan's weight updates, then remove its channels (in place); returns the plan applied.

        With `verify` (the default) the pruned model is checked as it would be
        written at `opset` (see to_onnx) before the model takes it: the onnx
        checker, onnxruntime runs on `inputs` (graph input name -> array; made
        from the declared inputs when None, dynamic dims sized by
        `input_shapes`), outputs keep their dtypes and shapes, and the
        function-preserving groups match the zero-mask oracle. Groups whose
        rewrite breaks a check are left unpruned: the returned plan lists them
        in `blocked` with the reason, and `self.verification` says what was
        checked. Raises SPAError when nothing valid can be made.
        """
        if plan.heads is not None and plan.heads != self._heads:
            raise SPAError(f"the plan was made with heads={plan.heads!r} but the model is set to "
                           f"heads={self._heads!r}; its group ids would name other groups")
        groups = self.coupling_groups()
        if not verify:
            if plan.weight_updates:
                self.set_weights(plan.weight_updates)
            passes.apply_plan(self.module, plan, groups, self._heads)
            self._changed()
            return plan
        with self._saved_state() as original:
            trial = self._trial(original, inputs, input_shapes, opset, consume=True)
            try:
                with phase("pruning and verification"):
                    pruned, applied, self.verification = verified_prune(trial, plan)
            except SPAError:
                self.module = _parsed(original)  # the first trial pruned it
                self._changed()
                raise
        for caught in pruned.warnings:
            warnings.warn_explicit(caught.message, caught.category, caught.filename, caught.lineno)
        self.module = pruned.module
        self._changed()
        # Checked at `opset`; a model checked as stubs is written by a fresh export, not from these bytes.
        self._written = (opset, None, None) if pruned.memory else (opset, pruned.model, pruned.blob)
        self._reference = (trial.feeds, trial.reference_outputs if trial.runnable else None)
        return applied

    def trial(self, inputs: Mapping[str, np.ndarray] | None = None,
              input_shapes: Mapping[str, Sequence[int]] | None = None, opset: int | None = None) -> Trial:
        """A verification Trial over the current state: `Trial.run(plan)` prunes a copy and checks it
        (see prune for the arguments, and spa.verify.trial)."""
        return self._trial(self._bytecode(), inputs, input_shapes, opset)

    def _trial(self, original: bytes | Path, inputs: Mapping[str, np.ndarray] | None,
               input_shapes: Mapping[str, Sequence[int]] | None, opset: int | None, consume: bool = False) -> Trial:
        """A Trial whose copies come from `original` (this module as bytecode); with `consume`, the
        first trial prunes the module itself (one parse less: prune replaces it anyway)."""
        memory = InMemoryData()  # weights stay in the module: the export is small, its arrays are views
        base = export_module(self.module, tensor_sink=memory, opset=SPA_OPSET)
        feeds = dict(inputs) if inputs is not None else generated_inputs(base, input_shapes)
        groups = self.coupling_groups()
        unused = [self.module] if consume else []

        def prune_copy(plan: Plan) -> ir.Module:
            return self._pruned_copy(unused.pop() if unused else original, plan, groups)

        def export(module: ir.Module, as_written: bool, sink: TensorSink | None = None) -> onnx.ModelProto:
            return export_module(module, sink or tensors.to_tensor_proto, opset if as_written else SPA_OPSET)

        return Trial(base, groups, feeds, prune_copy, export, self.label, memory.arrays)

    def _pruned_copy(self, source: bytes | Path | ir.Module, plan: Plan, groups: list[Group]) -> ir.Module:
        """`source` (a module, or one saved as bytecode, in memory or in a file) with `plan` applied."""
        copy = Model(source if isinstance(source, ir.Module) else _parsed(source), self.label)
        copy._heads, copy._groups = self._heads, groups
        if plan.weight_updates:
            copy.set_weights(plan.weight_updates)
        passes.apply_plan(copy.module, plan, groups, self._heads)
        return copy.module

    def _changed(self) -> None:
        """Forget what was derived from the module's previous state."""
        self._groups = None
        self._state = None
        self._written = None

    # -- writing ---------------------------------------------------------------
    def to_onnx(self, opset: int | None = None) -> onnx.ModelProto:
        """The model as ONNX, at `opset` or (None) the opset it was loaded with where onnx can convert back.

        After a verified prune of a model with up to 64 MB of weights this is the verified model
        itself (do not modify it); bigger ones were checked with their weights left in the module
        and are exported again.
        """
        if self._written is not None and self._written[0] == opset and self._written[1] is not None:
            return self._written[1]
        if opset == SPA_OPSET:
            return self._state_onnx()
        return export_module(self.module, opset=opset)

    def _state_onnx(self) -> onnx.ModelProto:
        """The current state at SPA's opset (exported once per state)."""
        if self._state is None:
            self._state = export_module(self.module, opset=SPA_OPSET)
        return self._state

    def save(self, path: str | Path, external_data: bool | None = None, opset: int | None = None) -> None:
        """Write the model as ONNX (atomically; external data above 2 GB or when asked; `opset` as in to_onnx).

        After a verified prune, a model written at another opset than the one
        verified is checked again (checker, onnxruntime, output signature)
        first; SPAError if it fails, and nothing is written.
        """
        with phase(f"export to {Path(path).name}"):
            self._save(path, external_data, opset)

    def _save(self, path: str | Path, external_data: bool | None, opset: int | None) -> None:
        if self._reference is not None and (self._written is None or self._written[0] != opset):
            model = export_module(self.module, opset=opset)
            blob = model.SerializeToString()
            self._check_conversion(model, blob)
            self._written = (opset, model, blob)
        if self._written is not None and self._written[0] == opset and self._written[2] is not None \
                and not external_data \
                and initializer_bytes(self.module) <= EXTERNAL_DATA_THRESHOLD:
            write_bytes_atomically(path, self._written[2])
            return
        save_module(self.module, path, external_data, opset)

    def _check_conversion(self, model: onnx.ModelProto, blob: bytes) -> None:
        feeds, reference = self._reference
        failure = check_validity(blob)
        if failure is None and reference is not None:
            outputs = Runner(blob).run(feeds)
            failure = outputs if isinstance(outputs, Failure) else \
                check_signature(reference, outputs, [o.name for o in model.graph.output])
        if failure is not None:
            raise SPAError(f"{self.label}: the pruned model at the requested opset fails verification "
                           f"({failure.line()})")

    def _bytecode(self) -> bytes:
        buffer = io.BytesIO()
        self.module.operation.write_bytecode(buffer)
        return buffer.getvalue()

    @contextlib.contextmanager
    def _saved_state(self) -> Iterator[bytes | Path]:
        """This module as bytecode, to copy or restore it: in memory, or for a model over 64 MB of weights
        in a temporary file (one copy of the weights less in memory while verification holds others)."""
        if initializer_bytes(self.module) <= LARGE_MODEL_BYTES:
            yield self._bytecode()
            return
        with tempfile.TemporaryDirectory(prefix="spa-") as folder:
            path = Path(folder) / "original.mlirbc"
            try:
                with open(path, "wb") as file:
                    self.module.operation.write_bytecode(file)
            except OSError:  # no room in the temporary folder: keep it in memory after all
                path.unlink(missing_ok=True)
                yield self._bytecode()
                return
            yield path


def _parsed(source: bytes | Path) -> ir.Module:
    """A module saved by Model._saved_state, parsed into a context of its own."""
    if isinstance(source, Path):
        return ir.Module.parseFile(str(source), context=new_context())
    return ir.Module.parse(source, context=new_context())


_NORM_OPS = ("onnx.BatchNormalization", "onnx.InstanceNormalization", "onnx.LayerNormalization",
             "onnx.GroupNormalization")


def _protected(protect: Iterable[str], weights: Mapping[str, np.ndarray]) -> list[str]:
    """The weights `protect` names and every copy of them; SPAError naming any that do not exist."""
    protect = list(protect)
    unknown = set(protect) - set(weights)
    if unknown:
        raise SPAError(f"--protect: no initializer named {', '.join(sorted(unknown))}")
    return with_copies(protect, weights)  # every use of a protected weight


def _sample_kind(calibration: Mapping[str, np.ndarray] | None, synthesized: bool) -> str:
    return "synthesised" if synthesized else "calibration" if calibration is not None else "synthetic"


def _data_used(criterion, provider: Provider | None, scored: int, prunable: int) -> str:
    """A sentence on what data a criterion read and how many groups it could score."""
    text = criterion.data_read(provider)
    if scored < prunable:
        text += f"; {prunable - scored} of {prunable} prunable groups could not be scored and are kept"
    return text


FOR_PRUNING = ImportConfig(fold_shapes=True, canonicalise=True)


def load(source: str | Path | onnx.ModelProto, config: ImportConfig = FOR_PRUNING) -> Model:
    """Import an ONNX file or ModelProto as a Model (by default with static shape arithmetic folded,
    so that computed Reshape/Expand targets can be pruned; see ImportConfig)."""
    label = str(source) if not isinstance(source, onnx.ModelProto) else (source.graph.name or "<model>")
    with phase(f"import of {Path(label).name}"):
        return Model(import_model(source, config), label)
