"""Write nodes in an older opset's form where onnx's version converter has no working down adapter.

Dropout took its ratio as an attribute until opset 12, then as an optional
input (with a training_mode input). onnx converts it up but not back, so a
model that came with an opset-7..11 Dropout (AlexNet, VGG, ...) could not be
written at its own opset after pruning. A Dropout whose ratio is a constant
and whose training mode is absent or a constant false means the same as the
old form with the ratio as an attribute.

Softmax, LogSoftmax and Hardmax normalised everything from `axis` on (the
input coerced to 2-D) until opset 13, and only `axis` since; onnx's adapter
from 13 down fails on the Flatten/Reshape its own upgrade wrote. Over the
last axis both mean the same, so such a node only needs that axis spelled
non-negatively (older opsets allow no negative axis).

Constants that folders write as value_ints (opset 12) are written as tensors.

Nodes written so are moved out of the converter's way (see opset.py).
GroupNormalization, which SPA fuses torch's GroupNorm into, is written back
as those primitives below opset 21, for the converter to take down.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from spa.ir.group_norm import PER_CHANNEL_GROUP_NORM, GraphConstants, unfuse_group_norms, value_ranks

DROPOUT_RATIO_INPUT = 12  # the opset at which Dropout's ratio became an input
DROPOUT_RATIO_ATTRIBUTE = 7  # the oldest opset with today's attribute form (no is_test)
SINGLE_AXIS_SOFTMAX = 13  # the opset at which the Softmax family stopped coercing its input to 2-D
SOFTMAX_FAMILY = ("Softmax", "LogSoftmax", "Hardmax")
CONSTANT_LISTS = 12  # the opset at which Constant gained value_int(s)/value_float(s) (folders write them)
OLDER_FORMS = ("Dropout", "Constant", *SOFTMAX_FAMILY)  # the operators write_older_forms may rewrite


def write_older_forms(model: onnx.ModelProto, target: int) -> set[str]:
    """Rewrite the nodes of `model` (at opset `target` or newer) that the converter cannot take down to
    `target` into their form at `target`; returns their names (each given one if it had none), for the
    caller to keep the converter off them."""
    written: set[str] = set()
    if target < CONSTANT_LISTS:
        for node in _default_domain(model, ("Constant",)):
            if _write_tensor_constant(node):
                written.add(_named(node, len(written)))
    softmaxes = _default_domain(model, SOFTMAX_FAMILY) if target < SINGLE_AXIS_SOFTMAX else []
    if softmaxes:
        ranks = value_ranks(model)  # shape inference only when there is something to ask it about
        for node in softmaxes:
            if _write_last_axis(node, ranks.get(node.input[0])):
                written.add(_named(node, len(written)))
    if DROPOUT_RATIO_ATTRIBUTE <= target < DROPOUT_RATIO_INPUT:
        constants = GraphConstants(model.graph)
        released: set[str] = set()
        for node in _default_domain(model, ("Dropout",)):
            inputs = set(node.input[1:])
            if _write_old_dropout(node, constants):
                written.add(_named(node, len(written)))
                released |= inputs - {""}
        _drop_unused_constants(model.graph, released)
    return written


def write_group_norm_primitives(model: onnx.ModelProto, target: int) -> None:
    """Below opset 21, GroupNormalization (which SPA fuses torch's GroupNorm into) as torch's primitives, for
    the converter to take down (see ir/group_norm). onnx infers no shape past a GroupNormalization,
    so each round's primitives give the ranks the next one needs."""
    if target < PER_CHANNEL_GROUP_NORM and _default_domain(model, ("GroupNormalization",)):
        while unfuse_group_norms(model, value_ranks(model)):
            pass


def _default_domain(model: onnx.ModelProto, op_types: tuple[str, ...]) -> list[onnx.NodeProto]:
    return [node for node in model.graph.node if node.op_type in op_types and node.domain in ("", "ai.onnx")]


def _named(node: onnx.NodeProto, index: int) -> str:
    node.name = node.name or f"spa_older_form_{index}"
    return node.name


def _write_tensor_constant(node: onnx.NodeProto) -> bool:
    """A Constant holding value_int(s)/value_float(s) with its value as a tensor (the only form before
    opset 12); False, unchanged, for any other Constant."""
    if len(node.attribute) != 1:
        return False
    attribute = node.attribute[0]
    forms = {"value_int": (np.int64, attribute.i), "value_ints": (np.int64, list(attribute.ints)),
             "value_float": (np.float32, attribute.f), "value_floats": (np.float32, list(attribute.floats))}
    if attribute.name not in forms:
        return False
    dtype, value = forms[attribute.name]
    del node.attribute[:]
    node.attribute.append(onnx.helper.make_attribute("value", numpy_helper.from_array(np.array(value, dtype))))
    return True


def _write_last_axis(node: onnx.NodeProto, rank: int | None) -> bool:
    """A Softmax-family node over its input's last axis, with that axis written as rank - 1; False,
    unchanged, when the axis is another one or the rank is unknown."""
    axis = next((a.i for a in node.attribute if a.name == "axis"), -1)
    if not rank or axis % rank != rank - 1:
        return False
    del node.attribute[:]
    node.attribute.append(onnx.helper.make_attribute("axis", rank - 1))
    return True


def _write_old_dropout(node: onnx.NodeProto, constants: GraphConstants) -> bool:
    """Dropout(data, ratio, training_mode) -> Dropout(data) with a ratio attribute, when both are constant
    (and the training mode off); False, unchanged, otherwise."""
    ratio = constants.array(node.input[1]) if len(node.input) > 1 and node.input[1] else np.array(0.5)
    mode = constants.array(node.input[2]) if len(node.input) > 2 and node.input[2] else np.array(False)
    if ratio is None or mode is None:
        return False
    if bool(mode.reshape(-1)[0]):
        return False  # dropout in training mode has no form with a ratio attribute
    ratio = float(ratio.reshape(-1)[0])
    del node.input[1:]
    node.attribute.append(onnx.helper.make_attribute("ratio", ratio))
    return True


def _drop_unused_constants(graph: onnx.GraphProto, released: set[str]) -> None:
    """Remove the `released` constants (ratios, modes) nothing reads any more (a runtime would warn)."""
    used = {name for node in graph.node for name in node.input} | {value.name for value in graph.output}
    used |= {value.name for value in graph.input}  # an initializer that is also an input stays an input
    unused = released - used
    for index in reversed(range(len(graph.node))):
        if graph.node[index].op_type == "Constant" and graph.node[index].output[0] in unused:
            del graph.node[index]
    for index in reversed(range(len(graph.initializer))):
        if graph.initializer[index].name in unused:
            del graph.initializer[index]
