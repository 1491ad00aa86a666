"""Give an exported model the opset it was imported with (or one asked for).

SPA works at SPA_OPSET: the importer converts older models up, because the
dialect is generated for that opset. Deployment runtimes often accept only
the opset a model came with, so export converts back down with onnx's
version converter (weights detached, so it never copies them). The converter
lacks adapters for many versions that only widened type lists (Identity,
Conv, ...): nodes whose operator has the same inputs, outputs and
attributes at both opsets are carried over unchanged and the result is
checked with strict type inference. Where a real adapter is missing (e.g.
Split 18 -> 17) the model keeps its opset and a SPAWarning says why, or
SPAError when the opset was asked for.
"""

from __future__ import annotations

import warnings

import onnx
from onnx import defs, version_converter

from spa.errors import SPAError, SPAWarning
from spa.importer.model_prep import (
    SPA_OPSET,
    attach_weights,
    check_structure,
    default_opset,
    detach_weights,
)

UNCHANGED_DOMAIN = "spa.unchanged"  # where nodes the converter need not touch wait during conversion


def convert_opset(model: onnx.ModelProto, target: int, ir_version: int | None = None,
                  required: bool = False) -> onnx.ModelProto:
    """`model` at default-domain opset `target` (and at least `ir_version`), or unchanged if it cannot be.

    `required` turns a failed conversion into SPAError instead of a warning.
    """
    current = default_opset(model)
    if target == current:
        return model
    if not 1 <= target <= SPA_OPSET:
        raise SPAError(f"opset {target} is not one SPA can write (1 to {SPA_OPSET})")
    weights = detach_weights(model)
    parked = _park_unchanged(model, current, target)
    try:
        converted = version_converter.convert_version(model, target)
        _unpark(converted)
        check_structure(converted, "the converted model", full_check=True)
    except Exception as error:
        reason = str(error).strip().splitlines()[-1].split("failed:")[-1].strip()
        message = f"onnx's version converter cannot write the model at opset {target} ({reason})"
        if required:
            raise SPAError(message) from None
        warnings.warn(f"{message}; it keeps opset {current}", SPAWarning, stacklevel=3)
        return model
    finally:  # `model` is the caller's: give it its nodes and weights back
        _unpark(model, parked)
        attach_weights(model, weights)
    attach_weights(converted, weights)
    minimum = onnx.helper.find_min_ir_version_for(list(converted.opset_import), ignore_unknown=True)
    converted.ir_version = max(minimum, ir_version or 0)
    return converted


def _signature(schema: defs.OpSchema) -> tuple:
    return ([(i.name, i.option) for i in schema.inputs], [(o.name, o.option) for o in schema.outputs],
            sorted(schema.attributes))


def _park_unchanged(model: onnx.ModelProto, current: int, target: int) -> bool:
    """Move default-domain nodes whose operator signature is the same at both opsets out of the
    converter's way; True if any were moved."""
    same: dict[str, bool] = {}
    parked = False
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type not in same:
            try:
                same[node.op_type] = _signature(defs.get_schema(node.op_type, current)) == \
                    _signature(defs.get_schema(node.op_type, target))
            except defs.SchemaError:  # no such operator at the target opset: the converter decides
                same[node.op_type] = False
        if same[node.op_type]:
            node.domain = UNCHANGED_DOMAIN
            parked = True
    if parked:
        model.opset_import.add(domain=UNCHANGED_DOMAIN, version=1)
    return parked


def _unpark(model: onnx.ModelProto, parked: bool = True) -> None:
    if not parked:
        return
    for node in model.graph.node:
        if node.domain == UNCHANGED_DOMAIN:
            node.domain = ""
    kept = [o for o in model.opset_import if o.domain != UNCHANGED_DOMAIN]
    del model.opset_import[:]
    model.opset_import.extend(kept)
