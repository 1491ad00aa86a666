"""The Python API: load a model, look at its channel groups, prune it, save it.

    import spa
    model = spa.load("model.onnx")
    plan = model.plan(criterion="l1", ratio=0.3)
    model.prune(plan)
    model.save("pruned.onnx")
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from spa.mlir_bindings import ir

from spa import passes, select, stats, tensors
from spa.criteria import make_criterion, score_groups
from spa.errors import SPAError
from spa.exporter import EXTERNAL_DATA_THRESHOLD, export_module, save_model, save_module
from spa.exporter.external_data import initializer_bytes
from spa.groups import Group, Plan
from spa.importer import ImportConfig, import_model
from spa.importer.model_prep import SPA_OPSET
from spa.obspa import OBSPA, OBSPAOptions
from spa.providers import Provider
from spa.verify import Trial, Verification, generated_inputs, verified_prune
from spa.verify.checks import Failure, Runner, check_signature, check_validity

HEAD_PRUNING = ("dims", "whole")


class Model:
    """An ONNX model held as an onnx-dialect MLIR module."""

    def __init__(self, module: ir.Module, label: str = "<model>"):
        self.module = module
        self.label = label
        self._groups: list[Group] | None = None
        self._heads = "dims"
        self._state: onnx.ModelProto | None = None  # the current state at SPA's opset
        self._written: tuple[int | None, onnx.ModelProto] | None = None  # (opset, verified model)
        self._reference: tuple[dict[str, np.ndarray], list[np.ndarray] | None] | None = None  # feeds, outputs
        self.verification: Verification | None = None  # what the last prune's verification checked

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
            self._groups = passes.coupling_groups(self.module, self._heads)
        return self._groups

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
             target_flops: float | None = None, global_ranking: bool = False, round_to: int = 1,
             protect: Iterable[str] = (), seed: int = 0, provider: Provider | None = None,
             calibration: Mapping[str, np.ndarray] | None = None, obspa: OBSPAOptions | None = None,
             criterion_options: Mapping[str, object] | None = None) -> Plan:
        """Choose channels to remove.

        Exactly one of `ratio` (fraction of each group's channels, or of all
        channels with `global_ranking`), `target_params` or `target_flops`
        (fraction of the model's parameters / MACs to remove: by the same
        ratio in every group, or by global ranking with `global_ranking`)
        must be given.
        `protect` names initializers whose groups are left alone. `criterion`
        is a name from spa.criteria.CRITERIA or "obspa"; derivative criteria
        read their data from `provider` (see spa.providers); OBSPA uses
        `calibration` (graph input name -> (N, ...) array) when given, else
        data-free Hessians, with `obspa` options, and the returned plan
        carries its weight corrections. `criterion_options` go to the
        criterion's constructor. `plan.data_used` says what data was read.
        """
        given = [v is not None for v in (ratio, target_params, target_flops)]
        if sum(given) != 1:
            raise SPAError("give exactly one of ratio, target_params and target_flops")
        if calibration is not None and criterion != "obspa":
            raise SPAError(f"calibration data is only used by the obspa criterion, not {criterion}")
        groups = self.coupling_groups()
        weights = self.weights()  # one walk over the constants for scores, names and shapes
        unknown = set(protect) - set(weights)
        if unknown:
            raise SPAError(f"--protect: no initializer named {', '.join(sorted(unknown))}")
        pruner = None
        if criterion == "obspa":
            pruner = OBSPA(self._state_onnx(), groups, weights, calibration,
                           obspa or OBSPAOptions(seed=seed))
            scores, data_used = pruner.scores(), pruner.description
        else:
            options = dict(criterion_options or {})
            if criterion == "random":
                options.setdefault("seed", seed)
            chosen = make_criterion(criterion, **options)
            scores = score_groups(chosen, groups, weights, self._graph_data(weights), provider)
            data_used = _data_used(chosen, provider, len(scores), sum(g.prunable for g in groups))
        plan = self._select(groups, weights, scores, ratio, target_params, target_flops, global_ranking,
                            round_to, tuple(protect))
        updates = pruner.updates(plan) if pruner is not None else {}
        return Plan(plan.removed, updates, data_used, self._heads)

    def _select(self, groups: list[Group], weights: Mapping[str, np.ndarray], scores: dict[int, np.ndarray],
                ratio: float | None, target_params: float | None, target_flops: float | None,
                global_ranking: bool, round_to: int, protect: tuple[str, ...]) -> Plan:
        shapes = {name: array.shape for name, array in weights.items()}
        if ratio is not None:
            chooser = select.select_global if global_ranking else select.select_per_group
            return chooser(groups, scores, ratio, round_to=round_to, protected=protect)
        if target_params is not None:
            costs = {g.id: select.params_per_channel(g, shapes) for g in groups}
            total, target, measure = self.stats().params, target_params, "params"
        else:
            costs = self._macs_per_channel(groups, shapes)
            total, target, measure = self.stats().macs, target_flops, "macs"

        if not global_ranking:  # the same ratio in every group, the smallest that meets the target
            def same_ratio(fraction: float) -> Plan:
                return select.select_per_group(groups, scores, fraction, round_to=round_to, protected=protect)

            return self._calibrate(same_ratio, target, measure, 0.0, 0.99, steps=10)

        def plan_for(fraction: float) -> Plan:
            return select.select_target(groups, scores, costs, total, fraction, round_to=round_to, protected=protect)

        return self._calibrate(plan_for, target, measure, target, min(0.999, max(target, 0.0) * 3 + 0.01))

    def _calibrate(self, plan_for, target: float, measure: str, low: float, high: float, steps: int = 8) -> Plan:
        """The plan whose *measured* reduction first reaches `target`.

        `plan_for(x)` makes a plan for a selection setting x in [low, high]
        whose reduction grows with x: a per-group ratio, or the global
        selection's own cost target (per-channel costs add up the producer and
        consumer sides of each layer separately, which overestimates what
        removing both sides saves). x is bisected until pruning a copy of the
        model removes at least `target` of the parameters or MACs.
        """
        before = getattr(self.stats(), measure)
        if before == 0:
            return plan_for(target)

        def achieved(plan: Plan) -> float:
            trial = Model(self._clone(), self.label)
            trial.heads = self._heads  # group ids depend on the head granularity
            trial.prune(plan, verify=False)
            return 1 - getattr(trial.stats(), measure) / before

        best = plan_for(high)
        if achieved(best) < target:
            return best  # the target cannot be reached; this is the most the selection removes
        for _ in range(steps):
            middle = (low + high) / 2
            plan = plan_for(middle)
            if achieved(plan) >= target:
                high, best = middle, plan
            else:
                low = middle
        first = plan_for(low)
        return first if achieved(first) >= target else best

    def _clone(self) -> ir.Module:
        """A deep copy of the module (through bytecode: weights stay binary)."""
        with self.module.context:
            return ir.Module.parse(self._bytecode())

    def _macs_per_channel(self, groups: list[Group], shapes: Mapping[str, tuple[int, ...]]) -> dict[int, float]:
        macs = stats.macs_per_weight(self.module)
        costs = {}
        for group in groups:
            cost = 0.0
            for member in group.members:
                if member.tensor in macs and group.channels:
                    share = member.positions_in_group() / shapes[member.tensor][member.axis]
                    cost += macs[member.tensor] * share / group.channels
            costs[group.id] = cost
        return costs

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
        trial = self.trial(inputs, input_shapes, opset)
        pruned, applied, self.verification = verified_prune(trial, plan)
        for caught in pruned.warnings:
            warnings.warn_explicit(caught.message, caught.category, caught.filename, caught.lineno)
        self.module = pruned.module
        self._changed()
        self._written = (opset, pruned.model)
        self._reference = (trial.feeds, Runner(trial.base).run(trial.feeds) if trial.runnable else None)
        return applied

    def trial(self, inputs: Mapping[str, np.ndarray] | None = None,
              input_shapes: Mapping[str, Sequence[int]] | None = None, opset: int | None = None) -> Trial:
        """A verification Trial over the current state: `Trial.run(plan)` prunes a copy and checks it
        (see prune for the arguments, and spa.verify.trial)."""
        base = self._state_onnx()
        feeds = dict(inputs) if inputs is not None else generated_inputs(base, input_shapes)
        original, groups = self._bytecode(), self.coupling_groups()

        def export(module: ir.Module, as_written: bool) -> onnx.ModelProto:
            return export_module(module, opset=opset if as_written else SPA_OPSET)

        return Trial(base, groups, feeds, lambda plan: self._pruned_copy(original, plan, groups), export,
                     self.label)

    def _pruned_copy(self, original: bytes, plan: Plan, groups: list[Group]) -> ir.Module:
        """A copy of the module saved in `original` (bytecode), with `plan` applied."""
        with self.module.context:
            copy = Model(ir.Module.parse(original), self.label)
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

        After a verified prune this is the verified model itself (do not modify it).
        """
        if self._written is not None and self._written[0] == opset:
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
        if self._reference is not None and (self._written is None or self._written[0] != opset):
            model = export_module(self.module, opset=opset)
            self._check_conversion(model)
            self._written = (opset, model)
        if self._written is not None and self._written[0] == opset and not external_data \
                and initializer_bytes(self.module) <= EXTERNAL_DATA_THRESHOLD:
            save_model(self._written[1], path)
            return
        save_module(self.module, path, external_data, opset)

    def _check_conversion(self, model: onnx.ModelProto) -> None:
        feeds, reference = self._reference
        failure = check_validity(model)
        if failure is None and reference is not None:
            outputs = Runner(model).run(feeds)
            failure = outputs if isinstance(outputs, Failure) else \
                check_signature(reference, outputs, [o.name for o in model.graph.output])
        if failure is not None:
            raise SPAError(f"{self.label}: the pruned model at the requested opset fails verification "
                           f"({failure.line()})")

    def _bytecode(self) -> bytes:
        buffer = io.BytesIO()
        self.module.operation.write_bytecode(buffer)
        return buffer.getvalue()


_NORM_OPS = ("onnx.BatchNormalization", "onnx.InstanceNormalization", "onnx.LayerNormalization",
             "onnx.GroupNormalization")


def _data_used(criterion, provider: Provider | None, scored: int, prunable: int) -> str:
    """A sentence on what data a criterion read and how many groups it could score."""
    if criterion.name == "random":
        text = "no data (random scores)"
    elif criterion.name == "bn_scale":
        text = "normalisation scales from the graph"
    elif criterion.needs:
        text = f"{', '.join(criterion.needs)} from {type(provider).__name__}"
    else:
        text = "weights only"
    if scored < prunable:
        text += f"; {prunable - scored} of {prunable} prunable groups could not be scored and are kept"
    return text


FOR_PRUNING = ImportConfig(fold_shapes=True)


def load(source: str | Path | onnx.ModelProto, config: ImportConfig = FOR_PRUNING) -> Model:
    """Import an ONNX file or ModelProto as a Model (by default with static shape arithmetic folded,
    so that computed Reshape/Expand targets can be pruned; see ImportConfig)."""
    label = str(source) if not isinstance(source, onnx.ModelProto) else (source.graph.name or "<model>")
    return Model(import_model(source, config), label)
