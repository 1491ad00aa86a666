"""The zero-mask oracle's reference model.

Pruning channels S of a function-preserving group must give the same outputs
as the unpruned model in which every constant slice of the group at S is set
to zero. `masked_model` makes that reference from an unpruned model exported
by SPA (so its constant names are the plan's), after writing any corrected
weights the plan carries (`with_arrays`). `masked_initializers` gives the same
change as new initializer values, for onnxruntime to use in place of the
model's own: no copy of the model is made or serialised.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from spa.errors import SPAError


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    result = onnx.ModelProto()
    result.CopyFrom(model)
    return result


class _Constants:
    """Where each named constant of a graph lives, and reading and replacing its value; `memory`
    holds the arrays of initializers that are in-memory stubs (spa.exporter.external_data.InMemoryData)."""

    def __init__(self, model: onnx.ModelProto, memory: Mapping[str, np.ndarray] | None = None) -> None:
        self.memory = memory or {}
        self.graph = model.graph
        self.initializers = {t.name: i for i, t in enumerate(model.graph.initializer)}
        self.nodes = {node.output[0]: node for node in model.graph.node
                      if node.op_type in ("Constant", "ConstantOfShape", "Identity") and node.output}

    def value(self, name: str) -> np.ndarray:
        if name in self.memory:
            return np.array(self.memory[name])
        if name in self.initializers:
            return numpy_helper.to_array(self.graph.initializer[self.initializers[name]]).copy()
        node = self.nodes.get(name)
        if node is None:
            raise SPAError(f"zero-mask oracle: no constant named {name!r} in the model")
        attribute = next((a for a in node.attribute if a.name == "value"), None)
        if node.op_type == "Identity":
            return self.value(node.input[0])
        if node.op_type == "Constant" and attribute is not None:
            return numpy_helper.to_array(attribute.t).copy()
        if node.op_type == "ConstantOfShape":
            shape = tuple(int(d) for d in self.value(node.input[0]))
            fill = numpy_helper.to_array(attribute.t).reshape(-1)[0] if attribute is not None else np.float32(0)
            return np.full(shape, fill)
        raise SPAError(f"zero-mask oracle: constant {name!r} is a {node.op_type} SPA cannot read")

    def replace(self, name: str, array: np.ndarray) -> None:
        """Give `name` the value `array`; a node becomes a Constant holding it (an Identity of a
        shared initializer too, so the initializer's other users keep their value)."""
        tensor = numpy_helper.from_array(np.ascontiguousarray(array), name)
        if name in self.initializers:
            self.graph.initializer[self.initializers[name]].CopyFrom(tensor)
            return
        node = self.nodes[name]
        del node.input[:]
        del node.attribute[:]
        node.op_type, node.domain = "Constant", ""
        node.attribute.append(helper.make_attribute("value", tensor))


def with_arrays(model: onnx.ModelProto, arrays: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    """A copy of `model` whose constants named in `arrays` hold those arrays (cast to their type)."""
    result = _copy(model)
    constants = _Constants(result)
    for name, value in _new_values(constants, arrays).items():
        constants.replace(name, value)
    return result


def _new_values(constants: _Constants, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`arrays` as new values of those constants: same shapes (SPAError otherwise), cast to their type."""
    values = {}
    for name, array in arrays.items():
        old = constants.value(name)
        if old.shape != np.shape(array):
            raise SPAError(f"zero-mask oracle: {name} has shape {list(old.shape)}, got {list(np.shape(array))}")
        values[name] = np.array(array, dtype=old.dtype)
    return values


def materialise_constants(model: onnx.ModelProto, names: Iterable[str],
                          memory: Mapping[str, np.ndarray] | None = None) -> None:
    """Give each of `names` that is the output of a Constant or of an Identity of a constant (a
    weight an exporter stored once for several users) an initializer of its own, in place: the
    graph computes the same, and `masked_initializers` can then give those names new values."""
    constants = _Constants(model, memory)
    outputs = {o.name for o in model.graph.output}
    wanted = {n for n in names if n in constants.nodes and n not in outputs
              and constants.nodes[n].op_type in ("Constant", "Identity")}
    values = {}
    for name in wanted:
        try:
            values[name] = constants.value(name)
        except SPAError:
            continue  # a constant SPA cannot read: masked_model's path handles plans that touch it
    if not values:
        return
    kept = [node for node in model.graph.node if not (node.output and node.output[0] in values)]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    model.graph.initializer.extend(numpy_helper.from_array(array, name) for name, array in values.items())


def _masked_arrays(constants: _Constants | _Overlay, plan_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Copies of every constant the plan cuts, with its member slices set to zero."""
    slices: dict[str, list[tuple[int, list[int]]]] = {}
    for group in plan_dict["groups"]:
        for member in group["members"]:
            if member["indices"]:
                slices.setdefault(member["tensor"], []).append((member["axis"], member["indices"]))
    arrays = {name: constants.value(name) for name in slices}  # all read first: an Identity reads its source
    for name, cuts in slices.items():
        for axis, indices in cuts:
            index: list[Any] = [slice(None)] * arrays[name].ndim
            index[axis] = indices
            arrays[name][tuple(index)] = 0
    return arrays


def masked_model(base: onnx.ModelProto, plan_dict: Mapping[str, Any],
                 arrays: Mapping[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """A copy of `base` with every member slice of the plan (`spa.groups.plan_to_dict`) set to zero,
    after writing `arrays` (constant name -> new value of the same shape: corrected weights)."""
    result = with_arrays(base, arrays) if arrays else _copy(base)
    constants = _Constants(result)
    for name, array in _masked_arrays(constants, plan_dict).items():
        constants.replace(name, array)
    return result


def masked_initializers(base: onnx.ModelProto, plan_dict: Mapping[str, Any],
                        arrays: Mapping[str, np.ndarray] | None = None,
                        memory: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray] | None:
    """What `masked_model` would change, as new values of `base`'s initializers (name -> array), for
    onnxruntime to use in place of the model's own (no copy of the model); None when the plan or
    `arrays` touch a constant that is not an initializer (a Constant node, an Identity of a shared
    weight): `masked_model` handles those. `memory` as for _Constants."""
    constants = _Constants(base, memory)
    names = {m["tensor"] for g in plan_dict["groups"] for m in g["members"] if m["indices"]} | set(arrays or ())
    if not names <= constants.initializers.keys():
        return None
    values = _new_values(constants, arrays or {})
    overlay = _Overlay(constants, values)
    values.update(_masked_arrays(overlay, plan_dict))
    return values


class _Overlay:
    """A `_Constants` view in which some names already have new values."""

    def __init__(self, constants: _Constants, values: Mapping[str, np.ndarray]) -> None:
        self.constants, self.values = constants, values

    def value(self, name: str) -> np.ndarray:
        return self.values[name] if name in self.values else self.constants.value(name)


def constant_value(model: onnx.ModelProto, name: str) -> np.ndarray:
    """The value of the constant `name` (initializer, Constant, ConstantOfShape or Identity of one)."""
    return _Constants(model).value(name)
