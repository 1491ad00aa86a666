"""Hugging Face configs for pruned widths.

A `transformers` model is rebuilt from its config, so a pruned one must be
described by a config: one `hidden_size`, one `intermediate_size`, one head
count for every layer. `ConfigWidths` learns how a model's parameter shapes
follow its config's width fields by instantiating it on the meta device with
each field doubled (a dimension that doubles depends on that field), then
solves for the field values that give a set of pruned shapes (least squares
on log-ratios, rounded) and confirms them by instantiating that config.
`hold_inexpressible` uses it before pruning: each kind of channel group
(the same tensors in every layer) is tried with one unit removed, and
kinds no config can express are held with a reason. BERT's hidden size, say,
also sets its attention width, so only its MLP width changes.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from spa.errors import SPAError, SPAWarning, first_line
from spa.groups import Group
from spa.importer.canonical_forms import COPY_SUFFIX

# Width fields under their canonical names (configs map aliases such as GPT-2's n_embd to these).
WIDTH_FIELDS = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim",
                "n_inner", "hidden_dim", "ffn_dim", "d_ff", "d_kv", "encoder_ffn_dim", "decoder_ffn_dim")
HEAD_COUNTS = ("num_attention_heads", "num_key_value_heads")
HEAD_SIZES = ("head_dim", "d_kv")
# Fields a config may leave None, and the value its model then uses (made explicit so they can change).
DERIVED_DEFAULTS = {
    "n_inner": lambda config: 4 * config.hidden_size,
    "intermediate_size": lambda config: 4 * config.hidden_size,
    "head_dim": lambda config: config.hidden_size // config.num_attention_heads,
}
DISFAVOURED = 1e-3  # column weight of fields the solver should change only when nothing else fits

Shapes = dict[str, tuple[int, ...]]


def is_transformers_model(module: Any) -> bool:
    """True for a `transformers.PreTrainedModel` (checked without importing transformers)."""
    return any(kind.__name__ == "PreTrainedModel" and kind.__module__.startswith("transformers")
               for kind in type(module).__mro__)


def shapes_of(model_class: type, config: Any) -> Shapes:
    """Parameter and persistent-buffer shapes of `model_class(config)`, built on the meta device."""
    import torch

    with torch.device("meta"):
        model = model_class(config)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


class ConfigWidths:
    """How the state shapes of `module` (a transformers model) follow its config's width fields.
    `heads` ("whole" or "dims") says which to prefer when a product such as heads × head size changed."""

    def __init__(self, module: Any, heads: str = "whole") -> None:
        self.model_class = type(module)
        try:
            self.config, written = _explicit_config(module)
            self.base = shapes_of(self.model_class, self.config)
        except Exception as error:  # noqa: BLE001 - a class that cannot be built from its own config
            raise SPAError(f"{self.model_class.__name__} cannot be built again from its config on the meta "
                           f"device, so a pruned copy cannot be rebuilt: {first_line(error)}") from error
        self._built: dict[tuple[tuple[str, int], ...], Shapes | None] = {}  # shapes per tried field values
        actual = {name: tuple(tensor.shape) for name, tensor in module.state_dict().items()}
        self.tied = _tied_names(module)
        self.held_fields: set[str] = set()  # widths the model's code derives values from (Gemma's sqrt(hidden))
        if actual != self.base:
            raise SPAError(f"{self.model_class.__name__}: its parameters do not have the shapes its config "
                           "gives, so a pruned copy cannot be rebuilt from a config")
        disfavoured = HEAD_SIZES if heads == "whole" else HEAD_COUNTS
        self.fields, columns = [], []
        for field in WIDTH_FIELDS:
            column = self._dependence(field)
            if column is not None:
                self.fields.append(field)
                columns.append(column)
        for field in set(written) - set(self.fields):  # written out but not read by this family
            if hasattr(module.config, field):
                setattr(self.config, field, getattr(module.config, field))
            else:
                delattr(self.config, field)
        self.dims = [(name, axis) for name, shape in self.base.items() for axis, size in enumerate(shape) if size]
        self.exponents = np.array([[column.get(dim, 0.0) for column in columns] for dim in self.dims])
        self.weights = np.array([DISFAVOURED if f in disfavoured else 1.0 for f in self.fields])

    def _dependence(self, field: str) -> dict[tuple[str, int], float] | None:
        """Exponent of `field` in each dimension (1 when the dimension doubles with it), or None when
        the config has no such integer field, the model cannot be built with it doubled, or no
        dimension changes with it."""
        value = getattr(self.config, field, None)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return None
        trial = copy.deepcopy(self.config)
        setattr(trial, field, 2 * value)
        try:
            doubled = shapes_of(self.model_class, trial)
        except Exception:  # the config rejects the doubled value: the field stays fixed
            return None
        if doubled.keys() != self.base.keys():
            return None
        column = {(name, axis): math.log2(new / old) for name, shape in self.base.items()
                  for axis, (old, new) in enumerate(zip(shape, doubled[name])) if old and new != old}
        return column or None  # a field no shape follows is not a width of this family

    def changed_fields(self, config: Any) -> set[str]:
        """The width fields whose value in `config` differs from the model's."""
        return {field for field in self.fields if getattr(config, field) != getattr(self.config, field)}

    def solve(self, shapes: Mapping[str, tuple[int, ...]]) -> tuple[Any, list[str]]:
        """A config for `shapes` (pruned state shapes by name; names left out keep theirs), and the
        names whose shapes it does not give (empty when it describes them all)."""
        target = {**self.base, **shapes}
        for names in self.tied:  # an exporter names a tied weight once (lm_head.weight after the embedding)
            changed = [target[name] for name in names if target[name] != self.base[name]]
            for name in names:
                target[name] = changed[0] if changed else target[name]
        values = self._least_squares(target)
        mismatched = self._mismatches(values, target)
        for _ in range(len(self.fields)):  # sums such as a fused qkv's (heads + 2 kv heads) x head size
            if not mismatched:
                break
            values, mismatched = self._refined(values, mismatched, target)
        return self._config(values), mismatched

    def _least_squares(self, target: Shapes) -> dict[str, int]:
        """Field values from the dimensions that are products of fields (log-ratios, rounded)."""
        usable = [i for i, (name, axis) in enumerate(self.dims)
                  if target[name][axis] > 0 and np.allclose(self.exponents[i], np.round(self.exponents[i]))]
        ratios = np.array([math.log(target[name][axis] / self.base[name][axis])
                           for name, axis in (self.dims[i] for i in usable)])
        solution = np.linalg.lstsq(self.exponents[usable] * self.weights, ratios, rcond=None)[0] * self.weights \
            if self.fields and usable else np.zeros(len(self.fields))
        return {field: max(1, round(getattr(self.config, field) * math.exp(change)))
                for field, change in zip(self.fields, solution)}

    def _refined(self, values: dict[str, int], mismatched: list[str], target: Shapes
                 ) -> tuple[dict[str, int], list[str]]:
        """One round of coordinate search: each field a dimension of `mismatched` depends on tries the
        values that would scale that dimension to its target; the best change is kept."""
        best = (len(mismatched), values, mismatched)
        wrong = set(mismatched)
        for column, field in enumerate(self.fields):
            original = getattr(self.config, field)
            candidates = {max(1, round(original * target[name][axis] / self.base[name][axis]))
                          for row, (name, axis) in enumerate(self.dims)
                          if name in wrong and self.exponents[row, column]}
            for candidate in candidates - {values[field]}:
                trial = {**values, field: candidate}
                missing = self._mismatches(trial, target)
                if len(missing) < best[0]:
                    best = (len(missing), trial, missing)
        return best[1], best[2]

    def _config(self, values: Mapping[str, int]) -> Any:
        config = copy.deepcopy(self.config)
        for field, value in values.items():
            setattr(config, field, value)
        return config

    def _mismatches(self, values: Mapping[str, int], target: Shapes) -> list[str]:
        """Names whose shapes a config of `values` does not give (when the config is refused: every
        name the target changes)."""
        key = tuple(sorted(values.items()))
        if key not in self._built:  # the solver and hold_inexpressible try the same values again and again
            try:
                self._built[key] = shapes_of(self.model_class, self._config(values))
            except Exception:  # noqa: BLE001 - the config rejects these values
                self._built[key] = None
        built = self._built[key]
        if built is None:
            return sorted(name for name in target if target[name] != self.base.get(name))
        return sorted(name for name in target if built.get(name) != target[name])


def _tied_names(module: Any) -> list[list[str]]:
    """State names that share one tensor (tied input and output embeddings), in sets of two or more."""
    by_storage: dict[tuple[int, tuple[int, ...]], list[str]] = {}
    for name, tensor in module.state_dict(keep_vars=True).items():
        by_storage.setdefault((tensor.data_ptr(), tuple(tensor.shape)), []).append(name)
    return [names for names in by_storage.values() if len(names) > 1]


def _explicit_config(module: Any) -> tuple[Any, list[str]]:
    """A copy of the module's config with derived widths written out (GPT-2's `n_inner=None`; a
    `head_dim` that Qwen2 or Phi-3 read with getattr and would otherwise derive from the hidden size),
    where writing them out leaves the model's shapes as they are; and the fields written."""
    config, written = copy.deepcopy(module.config), []
    base = shapes_of(type(module), config)
    for field, default in DERIVED_DEFAULTS.items():
        if getattr(config, field, None) is None:
            trial = copy.deepcopy(config)
            try:
                setattr(trial, field, default(config))
                if shapes_of(type(module), trial) == base:
                    config = trial
                    written.append(field)
            except Exception:  # the default does not apply to this family
                continue
    return config, written


def kind_of(group: Group) -> frozenset[str]:
    """Groups of one kind touch the same tensors in different layers: member names with numbers blanked."""
    return frozenset(re.sub(r"\d+", "#", member.tensor) for member in group.members)


def torch_name(tensor: str) -> str:
    """The state-dict name of an ONNX constant: SPA's per-use copies of a shared one are `<name>__use[_k]`."""
    return re.sub(rf"{COPY_SUFFIX}(_\d+)?$", "", tensor)


def shapes_after(groups: list[Group], removed: Mapping[int, int], base: Shapes) -> Shapes:
    """State shapes after `removed[group id]` channels of each group go (the first ones; counts matter)."""
    shapes = {name: list(shape) for name, shape in base.items()}
    for group in groups:
        if removed.get(group.id):
            sliced = set()  # a constant and SPA's per-use copies of it are one state tensor
            for member in group.members:
                name = torch_name(member.tensor)
                if name in shapes and (name, member.axis) not in sliced:
                    sliced.add((name, member.axis))
                    shapes[name][member.axis] -= len(group.positions(member, range(removed[group.id])))
    return {name: tuple(shape) for name, shape in shapes.items()}


def hold_inexpressible(model: Any, widths: ConfigWidths) -> list[str]:
    """Mark the prunable groups of `model` (a spa.Model) whose kind no config can express as not
    prunable, kind by kind; returns one line per held kind."""
    kinds: dict[frozenset[str], list[Group]] = {}
    for group in model.coupling_groups():
        if group.prunable:
            kinds.setdefault(kind_of(group), []).append(group)
    accepted: dict[int, int] = {}
    held, notes = [], []
    for kind, members in sorted(kinds.items(), key=lambda item: min(g.id for g in item[1])):
        alone = {g.id: g.divisor for g in members}
        changes = widths.changed_fields(widths.solve(shapes_after(model.coupling_groups(), alone, widths.base))[0])
        if changes & widths.held_fields:
            held += [g.id for g in members]
            notes.append(f"{len(members)} group(s) through {sorted(kind)[0]}: the model computes something from "
                         f"{', '.join(sorted(changes & widths.held_fields))} (rebuilt, it would differ)")
            continue
        trial = {**accepted, **alone}
        _, mismatched = widths.solve(shapes_after(model.coupling_groups(), trial, widths.base))
        if mismatched:
            held += [g.id for g in members]
            notes.append(f"{len(members)} group(s) through {sorted(kind)[0]}: {type(widths.config).__name__} has "
                         f"no field for that width alone (a config giving it would also change {mismatched[0]})")
        else:
            accepted = trial
    model.hold_groups(held, f"the {type(widths.config).__name__} of a rebuilt transformers model cannot express "
                            "this width")
    return notes


def config_problem(config: Any) -> str | None:
    """Why transformers would refuse `config` on save or load (its own validation), or None."""
    validate = getattr(config, "validate", None)
    if validate is None:
        return None
    try:
        validate()
    except Exception as error:  # transformers raises several kinds; each means the same here
        return first_line(error)
    return None


def rounding_for_config(model: Any, plan: Any, widths: ConfigWidths) -> dict[str, Any] | None:
    """Plan options under which the config of `plan`'s widths validates, when it does not: transformers
    wants a Llama-style hidden size that divides by the head count, so every kept width is rounded to a
    multiple of the original head count (None when the plan's config is already valid)."""
    removed = {group_id: len(channels) for group_id, channels in plan.removed.items()}
    config, mismatched = widths.solve(shapes_after(model.coupling_groups(), removed, widths.base))
    problem = None if mismatched else config_problem(config)
    heads = getattr(widths.config, "num_attention_heads", None)
    if problem is None or not isinstance(heads, int):
        return None
    warnings.warn(f"{problem}: planned again with every width a multiple of {heads}", SPAWarning, stacklevel=4)
    return {"round_to": heads}
