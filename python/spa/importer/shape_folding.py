"""Fold the shape arithmetic exporters leave in graphs into constants.

PyTorch's exporter computes Reshape and Expand targets at run time from
`Shape` (torch's MultiheadAttention splits its packed q/k/v projection with
`Concat(Shape(x)[:-1], [3, E], ...)`, a class token is expanded by a
`Where(Equal(...))` of its target; the attention scale is `1 / sqrt(Shape(q)[-1])`).
With a dynamic batch, the static entries next to it are split out and evaluated.
SPA can only follow and rewrite targets it can read, and a scale read from a
pruned axis would silently change after pruning; folding the parts that are
static makes both constants. onnxscript's constant folder does the work;
`should_fold` keeps it to integer shape arithmetic and scalars, and the
Identity nodes through which exporters share equal weights are hidden from
it (its Identity forwarding would make two layers share one tensor, coupling
their channels), so no weight is ever folded or re-shared (adapters find
weights by name).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import numpy as np
import onnx

from spa.importer.graph_names import fresh_name, known_dims
from spa.ir.private_domain import hide, restore

SHAPE_OPS = {"Shape", "Size"}
# Operands that hold sizes, pads or axes: computed from constants, they are worth folding.
SHAPE_OPERANDS = {"Pad": (1,), "Reshape": (1,), "Expand": (1,), "Tile": (1,), "Resize": (2, 3), "Split": (1,),
                  "Slice": (1, 2, 3, 4), "ConstantOfShape": (0,), "Unsqueeze": (1,), "Squeeze": (1,)}
HIDDEN_DOMAIN = "spa.weight_copies"  # where Identity copies of weights wait while the folder runs
MAX_INTEGER_ELEMENTS = 4096  # shape-like integer tensors are tiny; anything larger is data


def has_shape_arithmetic(graph: onnx.GraphProto) -> bool:
    """Whether any node reads a shape, or computes a shape-like operand from constants (TorchScript
    writes F.pad's pads as Concat, Reshape, Slice and Transpose of constants): only then is folding
    worth importing onnxscript."""
    default = [node for node in graph.node if node.domain in ("", "ai.onnx")]
    if any(node.op_type in SHAPE_OPS for node in default):
        return True
    computed = {output for node in default if node.op_type != "Constant" for output in node.output}
    return any(node.input[slot] in computed for node in default
               for slot in SHAPE_OPERANDS.get(node.op_type, ()) if slot < len(node.input))


def fold_shape_arithmetic(model: onnx.ModelProto) -> onnx.ModelProto:
    """A new ModelProto with the static shape computations of `model` folded to constants
    (`model` itself gets its static Shape reads replaced by constants)."""
    import onnx_ir as ir
    from onnx_ir.passes.common import RemoveUnusedNodesPass
    from onnxscript.optimizer import fold_constants

    def should_fold(node: ir.Node) -> bool | None:
        """False for anything that reads weights; None (onnxscript's own rules and size limits) otherwise,
        except integer ConstantOfShape fills of shape size, which those rules would skip."""
        for value in node.inputs:
            tensor = None if value is None else value.const_value
            if tensor is None:
                continue
            if isinstance(tensor, ir.ExternalTensor) or tensor.size > MAX_INTEGER_ELEMENTS:
                return False
            if tensor.dtype.is_floating_point() and tensor.size > 1:
                return False
        if node.op_type == "ConstantOfShape":  # without an integer value, a fill is a weight placeholder
            value = node.attributes.get("value")
            shape = node.inputs[0].const_value if node.inputs and node.inputs[0] is not None else None
            if value is None or not value.as_tensor().dtype.is_integer() or shape is None:
                return False
            return int(np.prod(shape.numpy(), dtype=np.int64)) <= MAX_INTEGER_ELEMENTS
        return None

    _resolve_static_shape_entries(model)
    weights = _weights(model.graph)
    hidden = hide(model, HIDDEN_DOMAIN, lambda node: node.op_type == "Identity" and node.input[0] in weights)
    try:
        ir_model = ir.serde.deserialize_model(model)
    finally:
        if hidden:
            restore(model, HIDDEN_DOMAIN)
    with _quiet_logger("onnxscript.optimizer._constant_folding"):  # a node it cannot evaluate stays as it is
        fold_constants(ir_model, should_fold=should_fold, onnx_shape_inference=True)  # shapes of folded pads, ...)
    _resolve_expand_wildcards(ir_model.graph)
    RemoveUnusedNodesPass()(ir_model)  # the arithmetic that became constants
    folded = ir.serde.serialize_model(ir_model)
    if hidden:
        restore(folded, HIDDEN_DOMAIN)
    return folded


@contextlib.contextmanager
def _quiet_logger(name: str) -> Iterator[None]:
    """Hold back a library's warnings for the block: they would reach the user as stray lines."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _resolve_static_shape_entries(model: onnx.ModelProto) -> None:
    """Replace Gather/Slice of a Shape whose selected dims are static by Constants, and split Slices
    that select static and dynamic dims into both (in place).

    The folder only folds a Shape whose dims are all static; with a dynamic batch,
    `Gather(Shape(x), 3)` (Keras reads the channel count this way) would stay computed.
    """
    graph = model.graph
    dims = known_dims(graph)
    constants = _int64_constants(graph)
    shapes = {n.output[0]: dims.get(n.input[0]) for n in graph.node
              if n.op_type == "Shape" and not n.attribute and n.domain in ("", "ai.onnx")}
    rewritten: list[onnx.NodeProto] = []
    split: dict[str, list[str]] = {}  # Slice outputs split into pieces, and the pieces
    taken = {name for n in graph.node for name in (n.name, *n.input, *n.output)} | \
        {v.name for v in [*graph.input, *graph.output, *graph.initializer, *graph.value_info]}
    for node in graph.node:
        shape = shapes.get(node.input[0]) if node.input else None
        values = _selected_dims(node, shape, constants) if shape is not None and \
            node.domain in ("", "ai.onnx") else None
        if values is None or all(v is None for v in values):
            rewritten.append(node)
        elif all(v is not None for v in values):
            scalar = node.op_type == "Gather" and constants[node.input[1]].ndim == 0
            tensor = onnx.numpy_helper.from_array(
                np.array(values[0] if scalar else values, dtype=np.int64), node.output[0])
            rewritten.append(onnx.helper.make_node("Constant", [], [node.output[0]], name=node.name, value=tensor))
        elif node.op_type == "Slice":
            rewritten += _split_slice(node, shape, values, constants, taken)
            split[node.output[0]] = list(rewritten[-1].input)
        else:
            rewritten.append(node)
    for node in rewritten:  # a target built as Concat(split, ...) gets the pieces: SPA reads one Concat level
        if node.op_type == "Concat" and node.output[0] not in split and \
                any(a.name == "axis" and a.i == 0 for a in node.attribute):
            node.input[:] = [piece for name in node.input for piece in split.get(name, [name])]
    del graph.node[:]
    graph.node.extend(rewritten)


def _split_slice(node: onnx.NodeProto, shape: list[int | None], values: list[int | None],
                 constants: dict[str, np.ndarray], taken: set[str]) -> list[onnx.NodeProto]:
    """`Slice(Shape(x), a, b)` over static and dynamic dims as a Concat of Constants (static runs) and
    narrower Slices (dynamic runs): `x.flatten(2)` with a dynamic batch reads (batch, C) this way, and
    the channel count C must be a constant for the channels to be prunable. New names avoid `taken`."""
    def fresh(base: str) -> str:
        return fresh_name(base, taken)

    def constant(name: str, value: list[int]) -> onnx.NodeProto:
        return onnx.helper.make_node("Constant", [], [name], name=fresh(f"{name}_node"),
                                     value=onnx.numpy_helper.from_array(np.array(value, np.int64), name))

    rank = len(shape)
    start = int(constants[node.input[1]].reshape(-1)[0])
    start = min(max(start + rank if start < 0 else start, 0), rank)
    pieces, nodes, run = [], [], 0
    while run < len(values):
        end = run + 1
        while end < len(values) and (values[end] is None) == (values[run] is None):
            end += 1
        name = fresh(f"{node.output[0]}_part{len(pieces)}")
        if values[run] is None:
            bounds = [fresh(f"{name}_start"), fresh(f"{name}_end")]
            nodes += [constant(bounds[0], [start + run]), constant(bounds[1], [start + end]),
                      onnx.helper.make_node("Slice", [node.input[0], *bounds], [name], name=fresh(f"{name}_slice"))]
        else:
            nodes.append(constant(name, values[run:end]))
        pieces.append(name)
        run = end
    return [*nodes, onnx.helper.make_node("Concat", pieces, [node.output[0]], name=node.name, axis=0)]


def _resolve_expand_wildcards(graph) -> None:
    """Evaluate torch's `expand(n, -1, -1)` target where `n` is read from a Shape (onnx_ir graph, in place).

    torch exports the target as `Where(Equal(t, -1), 1, t)` with `t = Concat(n, -1, -1)`; with a dynamic
    batch the folder leaves it computed, so a class token's channel axis would look expanded. Shape reads
    are never -1, so the Where keeps them and the constant pieces are evaluated: `Concat(n, 1, 1)`.
    """
    import onnx_ir as ir

    def const(value) -> np.ndarray | None:
        return None if value is None or value.const_value is None else value.const_value.numpy()

    for node in list(graph):
        if node.op_type != "Where" or node.domain not in ("", "ai.onnx") or len(node.inputs) != 3:
            continue
        condition, replacement, target = node.inputs
        equal = condition.producer() if condition is not None else None
        fill = const(replacement)
        if equal is None or equal.op_type != "Equal" or fill is None or equal.inputs[0] is not target:
            continue
        sentinel = const(equal.inputs[1])
        pieces = _shape_pieces(target)
        if sentinel is None or pieces is None or fill.ndim != 1 or sentinel.shape != fill.shape:
            continue
        entries, start = [], 0  # each piece as it stays (a Shape read) or as its evaluated constant
        for piece, size, known in pieces:
            if known is None:
                if not (_reads_shape(piece) and (sentinel[start:start + size] == -1).all()):
                    break
                entries.append(piece)
            else:
                entries.append(np.where(known == sentinel[start:start + size], fill[start:start + size], known))
            start += size
        else:
            if start != len(fill):
                continue
            values = []
            for entry in entries:
                if isinstance(entry, np.ndarray):
                    constant = ir.node("Constant", [], {"value": ir.tensor(entry.astype(np.int64))})
                    graph.insert_before(node, constant)
                    entry = constant.outputs[0]
                values.append(entry)
            concat = ir.node("Concat", values, {"axis": 0}, name=f"{node.name}_evaluated")
            graph.insert_before(node, concat)
            ir.convenience.replace_all_uses_with(node.outputs[0], concat.outputs[0])


def _shape_pieces(value) -> list | None:
    """(value, length, constant or None) for the 1-D pieces of a Concat (axis 0) building a shape, seen
    through a flattening Reshape to [-1]; None if it is built otherwise."""
    node = value.producer() if value is not None else None
    if node is not None and node.op_type == "Reshape" and node.inputs[1] is not None and \
            node.inputs[1].const_value is not None and node.inputs[1].const_value.numpy().tolist() == [-1]:
        node = node.inputs[0].producer()
    if node is None or node.op_type != "Concat" or node.attributes.get_int("axis", 0) != 0:
        return None
    pieces = []
    for piece in node.inputs:
        shape = piece.shape if piece is not None else None
        if shape is None or len(shape) != 1 or not isinstance(shape[0], int):
            return None
        known = piece.const_value.numpy().reshape(-1) if piece.const_value is not None else None
        pieces.append((piece, shape[0], known))
    return pieces


def _reads_shape(value) -> bool:
    """Whether `value` is entries of a Shape (Gather/Slice of it, maybe unsqueezed): never negative."""
    node = value.producer()
    while node is not None and node.op_type in ("Unsqueeze", "Gather", "Slice", "Squeeze"):
        node = node.inputs[0].producer() if node.inputs[0] is not None else None
    return node is not None and node.op_type == "Shape"


def _int64_constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Scalar and 1-D int64 initializers and Constant nodes by name (detached stubs left out)."""
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer
                 if t.data_type == onnx.TensorProto.INT64 and len(t.dims) <= 1
                 and t.data_location != onnx.TensorProto.EXTERNAL}
    constants.update({n.output[0]: onnx.numpy_helper.to_array(n.attribute[0].t) for n in graph.node
                      if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"
                      and n.attribute[0].t.data_type == onnx.TensorProto.INT64 and len(n.attribute[0].t.dims) <= 1})
    return constants


def _selected_dims(node: onnx.NodeProto, shape: list[int | None],
                   constants: dict[str, np.ndarray]) -> list[int | None] | None:
    """The dims a Gather (axis 0) or unit-step Slice of a shape selects, if its indices are constants."""
    rank = len(shape)
    if node.op_type == "Gather" and len(node.input) == 2 and node.input[1] in constants \
            and all(a.i == 0 for a in node.attribute if a.name == "axis"):
        indices = constants[node.input[1]].reshape(-1)
        if any(not -rank <= int(i) < rank for i in indices):
            return None
        return [shape[int(i)] for i in indices]
    if node.op_type == "Slice" and all(i in constants for i in node.input[1:] if i):
        starts, ends = (constants[node.input[1]].reshape(-1), constants[node.input[2]].reshape(-1))
        axes = constants[node.input[3]].reshape(-1) if len(node.input) > 3 and node.input[3] else [0]
        steps = constants[node.input[4]].reshape(-1) if len(node.input) > 4 and node.input[4] else [1]
        if len(starts) != 1 or list(axes) not in ([0], [-1]) or list(steps) != [1]:
            return None
        first, last = (min(max(int(b) + rank if int(b) < 0 else int(b), 0), rank) for b in (starts[0], ends[0]))
        return shape[first:last]
    return None


def _weights(graph: onnx.GraphProto) -> set[str]:
    """Names of the float tensors with more than one element given as initializers or Constant nodes."""
    def is_weight(tensor: onnx.TensorProto) -> bool:
        floating = tensor.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                                        onnx.TensorProto.BFLOAT16)
        return floating and any(d != 1 for d in tensor.dims)

    names = {t.name for t in graph.initializer if is_weight(t)}
    names |= {n.output[0] for n in graph.node if n.op_type == "Constant" and n.attribute
              and n.attribute[0].name == "value" and is_weight(n.attribute[0].t)}
    return names


def resolve_reshape_wildcards(model: onnx.ModelProto) -> bool:
    """Give Reshape outputs the size of their -1 entry where symbols cancel, and the names of the dims
    they read from Shape (in place); True if any changed.

    With a dynamic batch and sequence, `x.reshape(b, t, heads, -1)` exports as a target read from
    `Shape(x)`, and ONNX's shape inference leaves the -1 unknown; the input's dims (batch, seq, 16)
    and the target's (batch, seq, 4) give 4. Callers run shape inference again to propagate it.
    """
    graph = model.graph
    infos = {i.name: i for i in [*graph.input, *graph.value_info, *graph.output]}
    producers = {output: node for node in graph.node for output in node.output}
    constants = _int64_constants(graph)
    changed = False
    for node in graph.node:
        if node.op_type != "Reshape" or node.domain not in ("", "ai.onnx") or node.output[0] not in infos:
            continue
        dims = _dims(infos.get(node.input[0]))
        target = _target_entries(node.input[1], producers, constants, infos)
        out = infos[node.output[0]].type.tensor_type.shape.dim
        if target is None or len(out) != len(target) or 0 in target:
            continue
        for dim, entry in zip(out, target):  # name dims read from Shape as their source does
            if isinstance(entry, str) and not dim.HasField("dim_value") and dim.dim_param != entry:
                dim.dim_param = entry
                changed = True
        if dims is None or target.count(-1) != 1:
            continue
        wildcard = target.index(-1)
        if out[wildcard].HasField("dim_value"):
            continue
        size = _cancelled_size(dims, [e for e in target if e != -1])
        if size is not None:
            out[wildcard].Clear()
            out[wildcard].dim_value = size
            changed = True
    if changed:  # let inference propagate the names: it keeps any shape already recorded downstream
        keep_only_reshape_shapes(graph)
    return changed


def keep_only_reshape_shapes(graph: onnx.GraphProto) -> None:
    """Drop inferred shapes except those of Reshape outputs (and of custom-domain ops, which inference
    cannot redo), so the next inference propagates what was recorded on the Reshapes (in place)."""
    keep = {o for n in graph.node if n.op_type == "Reshape" or n.domain not in ("", "ai.onnx") for o in n.output}
    kept = [info for info in graph.value_info if info.name in keep]
    del graph.value_info[:]
    graph.value_info.extend(kept)


def _dims(info: onnx.ValueInfoProto | None) -> list[int | str] | None:
    """A value's dims as numbers or symbol names; None if any is anonymous."""
    if info is None or not info.type.tensor_type.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in info.type.tensor_type.shape.dim]
    return None if any(d == "" for d in dims) else dims


def _target_entries(name: str, producers: dict, constants: dict[str, np.ndarray],
                    infos: dict) -> list[int | str] | None:
    """A Reshape target as numbers and symbols: constants, and entries read with Gather/Slice of Shape."""
    if name in constants:
        return constants[name].reshape(-1).tolist()
    node = producers.get(name)
    if node is None:
        return None
    if node.op_type == "Concat":
        entries: list[int | str] = []
        for piece in node.input:
            part = _target_entries(piece, producers, constants, infos)
            if part is None:
                return None
            entries += part
        return entries
    if node.op_type == "Unsqueeze":
        return _target_entries(node.input[0], producers, constants, infos)
    shape = producers.get(node.input[0]) if node.input else None
    if shape is None or shape.op_type != "Shape" or shape.attribute:
        return None
    dims = _dims(infos.get(shape.input[0]))
    selected = _selected_dims(node, dims, constants) if dims else None
    return None if selected is None else list(selected)


def _cancelled_size(dims: list[int | str], known: list[int | str]) -> int | None:
    """prod(dims) / prod(known) when the symbols cancel and the numbers divide, else None."""
    symbols = [d for d in dims if isinstance(d, str)]
    for entry in known:
        if isinstance(entry, str):
            if entry not in symbols:
                return None
            symbols.remove(entry)
    numerator = int(np.prod([d for d in dims if isinstance(d, int)], dtype=np.int64))
    denominator = int(np.prod([e for e in known if isinstance(e, int)], dtype=np.int64))
    if symbols or denominator <= 0 or numerator % denominator:
        return None
    return numerator // denominator
