"""One verification trial: prune the original with (part of) a plan, export it, and run every check.

A `Trial` holds what all trials of one plan share: the original model as
SPA exports it (`base`, which it owns: weights that several nodes share
through Identity or Constant nodes get initializers of their own, so that the
zero-mask reference is `base` with new initializer values), the feeds, and
the reference outputs. `run(plan)`
prunes a fresh copy (through the caller's `prune_copy`), exports it as it
would be written (`export`), and returns the pruned module and model, or the
first `Failure`:

1. rewrite and export succeed;
2. the onnx checker passes (full, or plain when the original fails the full one);
3. onnxruntime loads and runs it on the feeds;
4. its outputs have the original's count, dtypes and shapes;
5. it gives the outputs of `base` with the plan's channels zeroed (and any
   corrected weights written), where the ops that make a group not
   function-preserving compute over kept channels only (spa.verify.emulation).
   Groups with an op that has no such masked form are left out: the others,
   pruned alone, are compared instead.

When onnxruntime cannot load the original at all (a custom-domain operator,
say), checks 3-5 are skipped and `skipped` says why. Each model is
serialised once (the checker and onnxruntime read the same bytes, and they
are what gets written); onnxruntime runs the pruned model in a second thread
while the reference is made, unless the model is big enough that holding both
in memory matters more than the time.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import onnx

from spa.errors import SPAError, first_line
from spa.groups import Group, Plan, plan_to_dict
from spa.ir.bindings import ir
from spa.verify.checks import LARGE_MODEL_BYTES, Failure, Runner, check_equal, check_signature, check_validity
from spa.exporter.external_data import InMemoryData, initializer_bytes, inlined
from spa.exporter.graph_exporter import TensorSink
from spa.ir.onnx_model import check_structure
from spa.verify.emulation import emulate
from spa.verify.masking import masked_initializers, masked_model, materialise_constants

PruneCopy = Callable[[Plan], ir.Module]
PARALLEL_RUN_BYTES = 512 << 20  # above this, the pruned model and the reference run one after the other
# Above this much weight data the pruned model is checked as in-memory stubs over its module's arrays
# (no copy into protobuf, which cannot hold over 2 GB anyway), and written by a fresh export. Measured
# on ViT-B/16 (346 MB): the same time, 2.2 GB peak instead of 2.8 GB; a 0.75 GB Llama: half the time.
IN_MEMORY_BYTES = LARGE_MODEL_BYTES
Export = Callable[[ir.Module, bool, "TensorSink | None"], onnx.ModelProto]  # (module, as_written, sink) -> model


@dataclass
class Pruned:
    """A pruned copy that passed every check: its module, the ONNX model to write (and its
    serialised bytes), and the warnings its export gave (held back during trials; the caller
    re-issues the chosen one's). For a model over IN_MEMORY_BYTES the ONNX model holds stubs whose
    arrays are `memory` (views of the module's weights): write the module, not these bytes."""

    module: ir.Module
    model: onnx.ModelProto
    blob: bytes
    warnings: list[warnings.WarningMessage]
    memory: dict[str, np.ndarray] = field(default_factory=dict)

    def runner(self) -> Runner:
        """An onnxruntime session of the pruned model."""
        return Runner(self.blob, external=self.memory or None)

    def weight_bytes(self) -> int:
        """The model's size with its in-memory weights."""
        return len(self.blob) + sum(array.nbytes for array in self.memory.values())


class Trial:
    """Runs the checks on plans over one original model (see the module doc)."""

    def __init__(self, base: onnx.ModelProto, groups: Sequence[Group], feeds: Mapping[str, np.ndarray],
                 prune_copy: PruneCopy, export: Export, label: str,
                 memory: Mapping[str, np.ndarray] | None = None) -> None:
        self.base = base
        self.memory = dict(memory or {})  # the arrays of base's in-memory stubs
        self.plain = onnx.ModelProto()  # the original as exported, before the reference's rewrites (small:
        self.plain.CopyFrom(base)  # its weights are stubs)
        self.groups = {group.id: group for group in groups}
        materialise_constants(base, {m.tensor for g in groups if g.prunable for m in g.members}, self.memory)
        self.emulation = emulate(base, groups)
        self.feeds = dict(feeds)
        self.prune_copy = prune_copy
        self.export = export
        self.label = label
        self.output_names = [o.name for o in base.graph.output]
        self.full_check = True
        self.runnable = True  # until onnxruntime is found unable to load the original
        self.skipped: list[str] = []
        self.count = 0
        self.reference_outputs: list[np.ndarray] | None = None  # of the last reference run
        self._blob: bytes | None = None

    def run(self, plan: Plan) -> Pruned | Failure:
        """Prune a copy with `plan` and check it; the Pruned copy, or the first Failure."""
        self.count += 1
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            made = self._make(plan, as_written=True)
        if isinstance(made, Failure):
            return made
        module, model, blob, memory = made
        pruned = Pruned(module, model, blob, caught, memory)
        failure = self._validity(pruned)
        if failure is None and self.runnable:
            failure = self._behaviour(plan, pruned)
        return failure or pruned

    def oracle_line(self, plan: Plan) -> str | None:
        """What the zero-mask oracle covers of `plan`, as a line of the report (None: no group)."""
        removed = [g for g, channels in plan.removed.items() if channels]
        preserving = sum(1 for g in removed if self.groups[g].function_preserving)
        emulated = sum(1 for g in removed if g in self.emulation.groups)
        if not preserving + emulated:
            return None
        line = f"zero-mask oracle over {preserving} function-preserving groups"
        if emulated:
            line += f" and {emulated} whose normalisations were masked"
        left = len(removed) - preserving - emulated
        return line + (f" ({left} other groups pruned, checked by the signature only)" if left else "")

    def _make(self, plan: Plan, as_written: bool
              ) -> tuple[ir.Module, onnx.ModelProto, bytes, dict[str, np.ndarray]] | Failure:
        """(pruned module, its export, the export serialised, the arrays of its in-memory stubs)."""
        try:
            module = self.prune_copy(plan)
        except SPAError as error:
            return Failure("rewrite", first_line(error))
        memory = InMemoryData() if initializer_bytes(module) > IN_MEMORY_BYTES else None
        try:
            model = self.export(module, as_written, memory)
        except SPAError as error:
            return Failure("export", first_line(error))
        return module, model, model.SerializeToString(), memory.arrays if memory is not None else {}

    def _validity(self, pruned: Pruned) -> Failure | None:
        failure = _checked(pruned.model, pruned.blob, pruned.memory, self.full_check)
        if failure is not None and self.full_check and _checked(self.base, None, self.memory, True) is not None:
            self.full_check = False  # the original fails the full check itself: hold the output to the plain one
            self.skipped.append("the original model fails onnx's full check, so the plain check was applied")
            failure = _checked(pruned.model, pruned.blob, pruned.memory, False)
        return failure

    def _behaviour(self, plan: Plan, pruned: Pruned) -> Failure | None:
        removed = [g for g in plan.removed if plan.removed[g]]
        checked = [g for g in removed if self.groups[g].function_preserving or g in self.emulation.groups]
        reference_plan = plan.restricted(checked)
        if pruned.weight_bytes() > PARALLEL_RUN_BYTES:  # one model in onnxruntime at a time
            outputs = pruned.runner().run(self.feeds)
            reference = self._reference_outputs(reference_plan)
        else:
            with ThreadPoolExecutor(1) as pool:  # onnxruntime runs the pruned model while the reference is made
                running = pool.submit(lambda: pruned.runner().run(self.feeds))
                reference = self._reference_outputs(reference_plan)
                outputs = running.result()
        if reference is None:
            return None  # onnxruntime cannot run the original: nothing to compare with
        if isinstance(outputs, Failure):
            return outputs
        failure = check_signature(reference, outputs, self.output_names)
        if failure is not None or not checked:
            return failure
        if len(checked) != len(removed):  # some groups' ops have no masked form: prune the others alone
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                made = self._make(reference_plan, as_written=False)
            if isinstance(made, Failure):
                return made
            outputs = Pruned(*made[:3], [], made[3]).runner().run(self.feeds)
            if isinstance(outputs, Failure):
                return outputs
        return check_equal(reference, outputs, self.output_names)

    def _reference_outputs(self, plan: Plan) -> list[np.ndarray] | None:
        """Outputs of `base` with the plan's corrected weights written and its channels zeroed; None
        (and `runnable` False) when onnxruntime cannot load the original. Raises SPAError when the
        original rejects the feeds."""
        plan_dict = plan_to_dict(plan, [self.groups[g] for g in plan.removed])
        arrays = {**(plan.weight_updates or {}), **self.emulation.values(plan.removed)}
        overrides = masked_initializers(self.base, plan_dict, arrays, self.memory)
        outputs = self._base_runner(overrides).run(self.feeds) if overrides is not None else None
        if outputs is None or (isinstance(outputs, Failure) and outputs.check == "onnxruntime load"):
            del overrides  # a Constant node to mask, or onnxruntime refused the overrides: a masked copy
            outputs = self._masked_copy_outputs(plan_dict, arrays)
        if isinstance(outputs, list):
            self.reference_outputs = outputs
            return outputs
        # The original itself, as exported (not rewritten for the reference): is it the model or SPA?
        original = Runner(self.plain.SerializeToString(), external=self.memory or None).run(self.feeds)
        if isinstance(original, Failure) and original.check == "onnxruntime load":
            self.runnable = False
            self.skipped.append(f"onnxruntime cannot load the original model ({original.message}), so the "
                                "checks that run the model were skipped")
            return None
        if isinstance(original, Failure):
            shapes = ", ".join(f"{name} {value.dtype}{list(value.shape)}" for name, value in self.feeds.items())
            raise SPAError(f"{self.label}: verification: the original model does not run on the inputs ({shapes}): "
                           f"{original.message}; give real inputs with --inputs DATA.npz, sizes with "
                           "--input-shape NAME:DIMS, or skip verification with --no-verify")
        raise SPAError(f"{self.label}: verification: the zero-mask reference model fails ({outputs.line()})")

    def _masked_copy_outputs(self, plan_dict, arrays: Mapping[str, np.ndarray]) -> list[np.ndarray] | Failure:
        try:
            reference = masked_model(self._full_base(), plan_dict, arrays).SerializeToString()
        except ValueError as error:  # protobuf cannot hold a model over 2 GB
            return Failure("zero-mask reference", first_line(error))
        return Runner(reference).run(self.feeds)

    def _base_runner(self, overrides: Mapping[str, np.ndarray]) -> Runner:
        """An onnxruntime session of `base` with `overrides` (name -> array) in place of its own
        values, over one serialisation of `base` for all trials."""
        if self._blob is None:
            self._blob = self.base.SerializeToString()
        external = {name: overrides.get(name, array) for name, array in self.memory.items()}
        replaced = {name: array for name, array in overrides.items() if name not in self.memory}
        return Runner(self._blob, initializers=replaced, external=external)

    def _full_base(self) -> onnx.ModelProto:
        """`base` holding all its weights (for onnx's checker, and references made by copying)."""
        return inlined(self.base, self.memory) if self.memory else self.base


def _checked(model: onnx.ModelProto, blob: bytes | None, memory: Mapping[str, np.ndarray], full: bool
             ) -> Failure | None:
    """onnx's checker on a model's bytes or, when its weights are in-memory stubs, on its structure."""
    if not memory:
        return check_validity(blob if blob is not None else model, full)
    try:
        check_structure(model, "the model", full)
    except SPAError as error:
        return Failure("onnx checker" + (" (full)" if full else ""), first_line(error))
    return None
