"""Rewrite two export habits into forms whose channels SPA can follow and rewrite.

- torch's dynamo exporter stores equal initializers once: every zero bias and every
  LayerNorm scale of ones in a randomly initialised transformer becomes one tensor
  shared by all layers, which would couple the attention heads with the hidden size.
  The dynamo exporter also shares one rotary cos/sin table among all layers, which
  would make every layer drop the same head dims. Each extra use of a shared vector,
  or of any initializer up to 64 KiB, gets its own Identity copy (the analysis treats
  each copy as its own constant). Larger ones stay shared: they are tied weights
  (an embedding and the output projection), and copies would grow the file. So does
  a layer weight of any size that the model applies more than once (ALBERT's shared
  layers, a block called twice): a matrix or kernel of distinct values read only as
  the weight of Conv, ConvTranspose, MatMul or Gemm. Shared, its uses are coupled and
  pruned alike; copied, each use would be pruned its own way and the pruned model
  would hold more parameters than the original. TorchScript's Identity copies of its
  own temporaries (`onnx::MatMul_421`, a transposed weight stored once) are read
  through to find such weights. Exporters also store layers whose weights are merely
  equal once (an untrained stack of deep-copied layers): those are coupled too, which
  is sound, though it prunes them alike.
- `Split` with `num_outputs` (opset 18) has no sizes to rewrite when a channel goes;
  when the split axis has a known size, the sizes become an explicit input.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np
import onnx
from onnx import numpy_helper

from spa.importer.graph_names import fresh_name, known_dims
from spa.importer.subgraph_constants import sub_graphs

COPY_SUFFIX = "__use"
LAYER_WEIGHT_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")  # input 1 is the layer's weight
EXPORTER_TEMPORARY = "onnx::"  # how TorchScript names values that are not the model's own parameters
MAX_COPIED_BYTES = 64 * 1024


def unshare_constants(graph: onnx.GraphProto, detached: Mapping[str, onnx.TensorProto] | None = None) -> int:
    """Give every use but the first of a shared vector or small initializer its own Identity copy,
    unless it is a layer weight applied more than once; returns the number of copies. `detached`
    holds the values of initializers the graph keeps as data-less stubs."""
    listed = {i.name for i in graph.input}
    scopes = [graph, *sub_graphs(graph)]  # a branch reads the main graph's constants too
    _read_weights_directly(graph, scopes, listed)
    vectors = {t.name for t in graph.initializer if t.name not in listed and _copyable(t)}
    vectors -= _reused_layer_weights(graph, scopes, vectors, detached or {})
    taken = {name for scope in scopes for node in scope.node for name in node.output} | {
        t.name for t in graph.initializer}
    seen: set[str] = set()
    copies = []
    for node in (node for scope in scopes for node in scope.node):
        if node.op_type == "Identity":  # already a copy of its own (the way TorchScript shares weights)
            continue
        for slot, name in enumerate(node.input):
            if name not in vectors:
                continue
            if name not in seen:
                seen.add(name)
                continue
            copy = fresh_name(f"{name}{COPY_SUFFIX}", taken)
            copies.append(onnx.helper.make_node("Identity", [name], [copy], name=f"{copy}_copy"))
            node.input[slot] = copy
    if copies:  # their only input is an initializer, so they can run first
        nodes = list(graph.node)
        del graph.node[:]
        graph.node.extend(copies + nodes)
    return len(copies)


def _read_weights_directly(graph: onnx.GraphProto, scopes: list[onnx.GraphProto], listed: set[str]) -> None:
    """TorchScript stores a transposed weight once per use and shares equal ones through Identity nodes
    named as its own temporaries (`onnx::MatMul_421`): layers that read such a copy only as their weight
    read the initializer itself, so that a weight the model applies twice is seen as one."""
    initializers = {t.name for t in graph.initializer} - listed
    outputs = {o.name for scope in scopes for o in scope.output}  # a branch may output an outer value
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in (node for scope in scopes for node in scope.node):
        for slot, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, slot))
    inlined = []
    for node in graph.node:
        if node.op_type != "Identity" or node.input[0] not in initializers or node.output[0] in outputs \
                or not node.output[0].startswith(EXPORTER_TEMPORARY):
            continue
        uses = consumers.get(node.output[0], [])
        if uses and all(_is_layer_weight(user, slot) for user, slot in uses):
            for user, slot in uses:
                user.input[slot] = node.input[0]
            inlined.append(node)
    for node in inlined:
        graph.node.remove(node)


def _is_layer_weight(node: onnx.NodeProto, slot: int) -> bool:
    return slot == 1 and node.op_type in LAYER_WEIGHT_OPS and node.domain in ("", "ai.onnx")


def _reused_layer_weights(graph: onnx.GraphProto, scopes: list[onnx.GraphProto], names: set[str],
                          detached: Mapping[str, onnx.TensorProto]) -> set[str]:
    """Those of `names` read more than once, every time as a layer's weight, holding distinct values
    (an exporter's shared zeros or ones are not one layer's weight, whatever reads them)."""
    slots: dict[str, list[bool]] = {}
    for node in (node for scope in scopes for node in scope.node):
        for slot, name in enumerate(node.input):
            if name in names:
                slots.setdefault(name, []).append(_is_layer_weight(node, slot))
    candidates = {name for name, weights in slots.items() if len(weights) > 1 and all(weights)}
    tensors = {t.name: detached.get(t.name, t) for t in graph.initializer if t.name in candidates}
    return {name for name, tensor in tensors.items() if len(tensor.dims) >= 2 and not _uniform(tensor)}


def _uniform(tensor: onnx.TensorProto) -> bool:
    """All elements equal; False when the values are not at hand (external data)."""
    if tensor.data_location == onnx.TensorProto.EXTERNAL:
        return False
    values = numpy_helper.to_array(tensor)
    return values.size == 0 or bool(np.all(values == values.flat[0]))


def with_copies(names: Iterable[str], constants: Iterable[str]) -> list[str]:
    """`names` and the per-use copies the importer made of them (`<name>__use`, `<name>__use_1`, ...)
    among `constants`: protecting a weight protects every use of it."""
    names = list(names)
    pattern = re.compile("|".join(f"{re.escape(name)}{COPY_SUFFIX}(_[0-9]+)?" for name in names)) if names else None
    return names + [c for c in constants if pattern is not None and pattern.fullmatch(c) and c not in names]


def _copyable(tensor: onnx.TensorProto) -> bool:
    elements = int(np.prod(tensor.dims, dtype=np.int64))
    if elements <= 1:  # scalars carry no channels
        return False
    itemsize = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
    return len(tensor.dims) == 1 or elements * itemsize <= MAX_COPIED_BYTES


def explicit_split_sizes(graph: onnx.GraphProto) -> int:
    """Replace `num_outputs` of Splits over an axis of known size by a sizes initializer; returns the count."""
    dims = known_dims(graph, initializers=True)
    taken = {name for node in graph.node for name in node.output} | {t.name for t in graph.initializer}
    rewritten = 0
    for node in graph.node:
        if node.op_type != "Split" or node.domain not in ("", "ai.onnx") or len(node.input) > 1:
            continue
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        count, shape = attributes.get("num_outputs"), dims.get(node.input[0])
        if count is None or shape is None:
            continue
        axis = attributes.get("axis", 0)
        size = shape[axis] if -len(shape) <= axis < len(shape) else None
        if not isinstance(size, int) or size < count:
            continue
        chunk = -(-size // count)  # ONNX: equal chunks of ceil(size / n), the last one smaller
        sizes = [chunk] * (count - 1) + [size - chunk * (count - 1)]
        name = fresh_name(f"{node.output[0]}_sizes", taken)
        graph.initializer.append(numpy_helper.from_array(np.asarray(sizes, np.int64), name))
        node.input.append(name)
        kept = [a for a in node.attribute if a.name != "num_outputs"]
        del node.attribute[:]
        node.attribute.extend(kept)
        rewritten += 1
    return rewritten
