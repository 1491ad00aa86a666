"""`spa verify ORIGINAL PRUNED [--plan PLAN.json]`: the checks of verify-on-write, for users' own pipelines.

Without a plan, PRUNED must pass the onnx checker, run in onnxruntime and
give outputs of ORIGINAL's count, dtypes and shapes. With the plan SPA wrote
(`spa prune --plan-out`), SPA also prunes ORIGINAL with it, taking the
corrected weights the plan names from PRUNED (their digests must be the ones
the plan recorded): that reproduction must pass every check of
verify-on-write (the zero-mask oracle included), and PRUNED must compute what
it computes. A pruned model whose weights were changed in any other way fails.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from spa.errors import SPAError, first_line
from spa.groups import Group, Plan
from spa.verify.checks import Failure, Runner, check_equal, check_signature, check_validity
from spa.verify.inputs import generated_inputs, read_inputs
from spa.verify.masking import constant_value


def verify_files(original_path: str, pruned_path: str, plan_path: str | None = None,
                 inputs_path: str | None = None, input_shapes: Mapping[str, Sequence[int]] | None = None
                 ) -> list[str]:
    """The checks that held, one line each; raises SPAError naming the first that failed."""
    original, pruned = _read(original_path), _read(pruned_path)
    feeds = read_inputs(inputs_path, original, limit=8) if inputs_path else generated_inputs(original, input_shapes)
    lines = [_validity(original, pruned, pruned_path)]
    reference = Runner(original).run(feeds)
    if isinstance(reference, Failure) and reference.check == "onnxruntime load":
        lines.append(f"not run: onnxruntime cannot load {original_path} ({reference.message})")
        return lines
    if isinstance(reference, Failure):
        raise SPAError(f"{original_path}: does not run on the inputs ({reference.message}); give real ones "
                       "with --inputs DATA.npz or sizes with --input-shape NAME:DIMS")
    outputs = Runner(pruned).run(feeds)
    names = [o.name for o in original.graph.output]
    failure = outputs if isinstance(outputs, Failure) else check_signature(reference, outputs, names)
    if failure is not None:
        raise SPAError(f"{pruned_path}: {failure.line()}")
    shapes = ", ".join(f"{name} {value.dtype}{list(value.shape)}" for name, value in feeds.items())
    lines.append(f"onnxruntime runs it ({shapes}); outputs keep the original's dtypes and shapes")
    if plan_path:
        lines += _against_plan(original_path, pruned, pruned_path, plan_path, feeds, outputs, names)
    return lines


def tensor_digest(array: np.ndarray) -> str:
    """A SHA-256 of a tensor's dtype, shape and values: how a plan pins the corrected weights it wrote."""
    array = np.ascontiguousarray(array)
    header = f"{array.dtype.str}{list(array.shape)}".encode()
    return hashlib.sha256(header + array.tobytes()).hexdigest()


def corrected_digests(plan_entries: Mapping[str, Any], pruned: onnx.ModelProto) -> dict[str, str]:
    """Name -> digest of every corrected weight the plan names, as the pruned model holds it."""
    return {name: tensor_digest(constant_value(pruned, name)) for name in plan_entries.get("corrected", [])}


def _read(path: str) -> onnx.ModelProto:
    if not Path(path).is_file():
        raise SPAError(f"{path}: no such file")
    try:
        return onnx.load(path)
    except Exception as error:  # noqa: BLE001 - onnx raises DecodeError, OSError, ValueError ...
        raise SPAError(f"{path}: not a readable ONNX model ({first_line(error)})") from None


def _validity(original: onnx.ModelProto, pruned: onnx.ModelProto, pruned_path: str) -> str:
    full = check_validity(original, True) is None
    failure = check_validity(pruned, full)
    if failure is not None:
        raise SPAError(f"{pruned_path}: {failure.line()}")
    return "onnx checker (full)" if full else "onnx checker (plain; the original fails the full check)"


def _against_plan(original_path: str, pruned: onnx.ModelProto, pruned_path: str, plan_path: str,
                  feeds: Mapping[str, np.ndarray], outputs: list[np.ndarray], names: list[str]) -> list[str]:
    import spa

    entries = read_plan(plan_path)
    model = spa.load(original_path)
    model.heads = entries.get("heads") or "dims"
    plan = _plan(entries, model.coupling_groups(), pruned, plan_path)
    trial = model.trial(feeds)
    made = trial.run(plan)
    if isinstance(made, Failure):
        raise SPAError(f"{plan_path}: SPA's prune of {original_path} with this plan fails: {made.line()}")
    again = made.runner().run(feeds)
    failure = again if isinstance(again, Failure) else check_equal(again, outputs, names, "same as the plan's prune")
    if failure is not None:
        raise SPAError(f"{pruned_path}: {failure.line()} (its weights or graph differ from what the plan makes "
                       f"of {original_path})")
    return [f"{trial.oracle_line(plan) or 'zero-mask oracle over no group'} of the plan",
            f"computes what the plan makes of {original_path} ({len(plan.removed)} groups, "
            f"{len(plan.weight_updates)} corrected weights)"]


def read_plan(path: str) -> dict[str, Any]:
    """The JSON of a plan file that spa prune --plan-out wrote; SPAError if it is not one."""
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise SPAError(f"{path}: not a readable plan ({first_line(error)})") from None
    if not isinstance(entries, dict) or not isinstance(entries.get("groups"), list):
        raise SPAError(f'{path}: not a plan written by spa prune --plan-out (no "groups" list)')
    return entries


def _plan(entries: Mapping[str, Any], groups: list[Group], pruned: onnx.ModelProto, path: str) -> Plan:
    """The plan's removals, checked against ORIGINAL's groups, with corrected weights from PRUNED."""
    removed = planned_removals(entries, groups, path)
    digests = entries.get("digests") or {}
    changed = [name for name, digest in corrected_digests(entries, pruned).items()
               if name in digests and digests[name] != digest]
    if changed:
        raise SPAError(f"{path}: the corrected weight {changed[0]} in the pruned model is not the one the plan "
                       "wrote (its digest differs): the pruned model was changed after pruning")
    updates = {name: _expanded(name, entries["groups"], pruned, path) for name in entries.get("corrected", [])}
    return Plan(removed, updates, heads=entries.get("heads"))


def planned_removals(entries: Mapping[str, Any], groups: list[Group], path: str) -> dict[int, tuple[int, ...]]:
    """Group id -> removed channels of a plan's JSON, checked against the original model's `groups`."""
    by_id = {group.id: group for group in groups}
    removed: dict[int, tuple[int, ...]] = {}
    for entry in entries["groups"]:
        group = by_id.get(entry.get("id")) if isinstance(entry, dict) else None
        if group is None or entry.get("channels") != group.channels:
            raise SPAError(f"{path}: group {entry.get('id') if isinstance(entry, dict) else entry!r} does not "
                           "match the original model's groups (was the plan made for another model?)")
        removed[group.id] = tuple(int(c) for c in entry.get("removed", []))
    return removed


def _expanded(name: str, entries: list[dict[str, Any]], pruned: onnx.ModelProto, path: str) -> np.ndarray:
    """A corrected weight at its unpruned shape: PRUNED's values at the kept positions, zero elsewhere."""
    try:
        value = constant_value(pruned, name)
    except SPAError:
        raise SPAError(f"{path}: the pruned model has no constant {name!r} the plan says was corrected") from None
    removed: dict[int, set[int]] = {}
    for entry in entries:
        for member in entry.get("members", []):
            if member.get("tensor") == name:
                removed.setdefault(int(member["axis"]), set()).update(member["indices"])
    shape = list(value.shape)
    kept = []
    for axis in range(value.ndim):
        size = shape[axis] + len(removed.get(axis, ()))
        kept.append(np.setdiff1d(np.arange(size), sorted(removed.get(axis, ()))))
        shape[axis] = size
    full = np.zeros(shape, value.dtype)
    full[np.ix_(*kept)] = value
    return full
