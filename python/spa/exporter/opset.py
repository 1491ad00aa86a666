"""Give an exported model the opset it was imported with (or one asked for).

SPA works at SPA_OPSET: the importer converts older models up, because the
dialect is generated for that opset. Deployment runtimes often accept only
the opset a model came with, so export converts back down with onnx's
version converter, on a copy of the graph without its big weights. The converter
lacks adapters for many versions that only widened type lists, renamed an
input or added an attribute (Identity, BatchNormalization, Reshape's
allowzero, ...): nodes whose inputs, outputs and attribute defaults fit both
opsets and that leave new attributes unset are carried over unchanged, and
the result is checked with strict type inference. Where a real adapter is missing (e.g.
Split 18 -> 17) the model keeps its opset and a SPAWarning says why, or
SPAError when the opset was asked for. Operators newer than the target that
ONNX defines as functions (Gelu) are written as their bodies first, and
Dropout and last-axis Softmax, whose onnx down adapters are missing or fail,
in their older forms (see down_adapters).
"""

from __future__ import annotations

import warnings

import onnx
from onnx import defs, version_converter

from spa.errors import SPAError, SPAWarning, last_line
from spa.exporter.down_adapters import OLDER_FORMS, write_group_norm_primitives, write_older_forms
from spa.exporter.function_expansion import expand_newer_functions
from spa.ir.names import SPA_OPSET
from spa.ir.onnx_model import check_structure, default_opset, is_big
from spa.ir.private_domain import hide, restore

UNCHANGED_DOMAIN = "spa.unchanged"  # where nodes the converter need not touch wait during conversion


def convert_opset(model: onnx.ModelProto, target: int, ir_version: int | None = None,
                  required: bool = False) -> onnx.ModelProto:
    """Convert `model` in place to default-domain opset `target` (IR version at least `ir_version`);
    returns it, unchanged if onnx cannot convert it. `required` turns that case into SPAError
    instead of a SPAWarning. Big weights are neither copied nor touched.
    """
    current = default_opset(model)
    if target == current:
        return model
    if not 1 <= target <= SPA_OPSET:
        raise SPAError(f"opset {target} is not one SPA can write (1 to {SPA_OPSET})")
    structure = _structure(model)
    write_group_norm_primitives(structure, target)  # before functions: GroupNormalization 18 is one too
    structure = expand_newer_functions(structure, target)
    written = write_older_forms(structure, target)
    hide(structure, UNCHANGED_DOMAIN, lambda node: node.name in written and node.op_type in OLDER_FORMS)
    _park_unchanged(structure, current, target)
    try:
        converted = version_converter.convert_version(structure, target)
        restore(converted, UNCHANGED_DOMAIN)
        check_structure(converted, "the converted model", full_check=True)
    except Exception as error:  # noqa: BLE001 - the converter raises RuntimeError or ValueError
        reason = last_line(error).split("failed:")[-1].strip()
        message = f"onnx's version converter cannot write the model at opset {target} ({reason})"
        if required:
            raise SPAError(message) from None
        warnings.warn(f"{message}; it keeps opset {current}", SPAWarning, stacklevel=3)
        return model
    _graft(model, converted)
    minimum = onnx.helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)
    model.ir_version = max(minimum, ir_version or 0)
    return model


def _structure(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` whose big initializers are data-less stubs (what the converter needs)."""
    structure = onnx.ModelProto(ir_version=model.ir_version, opset_import=model.opset_import,
                                functions=model.functions)
    graph, source = structure.graph, model.graph
    graph.name = source.name
    for field in ("node", "input", "output", "value_info", "sparse_initializer"):
        getattr(graph, field).extend(getattr(source, field))
    for tensor in source.initializer:
        if is_big(tensor):
            graph.initializer.add(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims,
                                  data_location=onnx.TensorProto.EXTERNAL).external_data.add(key="location",
                                                                                            value="spa-stub")
        else:
            graph.initializer.append(tensor)
    return structure


def _graft(model: onnx.ModelProto, converted: onnx.ModelProto) -> None:
    """Give `model` the converted nodes, opsets and small initializers, keeping its big ones in place."""
    graph, new = model.graph, converted.graph
    for field in ("node", "value_info"):
        del getattr(graph, field)[:]
        getattr(graph, field).extend(getattr(new, field))
    del model.opset_import[:]
    model.opset_import.extend(converted.opset_import)
    stubs = {t.name for t in new.initializer if t.data_location == onnx.TensorProto.EXTERNAL and
             any(e.value == "spa-stub" for e in t.external_data)}
    for index in reversed(range(len(graph.initializer))):  # by index: the big tensors are never copied
        tensor = graph.initializer[index]
        if not (is_big(tensor) and tensor.name in stubs):
            del graph.initializer[index]
    graph.initializer.extend(t for t in new.initializer if t.name not in stubs)


def _carries_over(node: onnx.NodeProto, current: defs.OpSchema, target: defs.OpSchema) -> bool:
    """Whether `node` means the same at both schemas' opsets: both take the inputs and outputs it uses
    (renamed or made optional is fine: BatchNormalization's mean, Gemm's C), every attribute both know has
    the same default (Softmax's axis changed at 13), the target has no attribute the current one dropped, and
    the node leaves attributes added since the target unset (Reshape's allowzero). Type changes are left to the
    strict check afterwards."""
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
        return False  # If/Loop/Scan: their bodies need converting too
    Option = defs.OpSchema.FormalParameterOption
    for mine, theirs, names, low, high in ((current.inputs, target.inputs, node.input, target.min_input,
                                            target.max_input),
                                           (current.outputs, target.outputs, node.output, target.min_output,
                                            target.max_output)):
        if not low <= len(names) <= high:
            return False
        for position, name in enumerate(names):
            mine_option, theirs_option = (formals[min(position, len(formals) - 1)].option
                                          for formals in (mine, theirs))
            if (mine_option == Option.Variadic) != (theirs_option == Option.Variadic) or \
                    (not name and theirs_option != Option.Optional):
                return False
    set_here = {a.name for a in node.attribute}
    for name in current.attributes.keys() | target.attributes.keys():
        mine, theirs = current.attributes.get(name), target.attributes.get(name)
        if theirs is None:  # added since the target: fine while unset
            if name in set_here:
                return False
        elif mine is None:  # removed since the target (BatchNormalization's is_test): its meaning moved elsewhere
            return False
        elif mine.default_value.SerializeToString() != theirs.default_value.SerializeToString():
            return False
    return True


def _park_unchanged(model: onnx.ModelProto, current: int, target: int) -> None:
    """Move default-domain nodes that mean the same at both opsets out of the converter's way."""
    schemas: dict[str, tuple[defs.OpSchema, defs.OpSchema] | None] = {}

    def unchanged(node: onnx.NodeProto) -> bool:
        if node.op_type not in schemas:
            try:
                schemas[node.op_type] = (defs.get_schema(node.op_type, current),
                                         defs.get_schema(node.op_type, target))
            except defs.SchemaError:  # no such operator at the target opset: the converter decides
                schemas[node.op_type] = None
        pair = schemas[node.op_type]
        return pair is not None and _carries_over(node, *pair)

    hide(model, UNCHANGED_DOMAIN, unchanged)
