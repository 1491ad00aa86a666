"""Rewrite two export habits into forms whose channels SPA can follow and rewrite.

- torch's dynamo exporter stores equal initializers once: every zero bias and every
  LayerNorm scale of ones in a randomly initialised transformer becomes one tensor
  shared by all layers, which would couple the attention heads with the hidden size.
  The dynamo exporter also shares one rotary cos/sin table among all layers, which
  would make every layer drop the same head dims. Each extra use of a shared vector,
  or of any initializer up to 64 KiB, gets its own Identity copy (the analysis treats
  each copy as its own constant). Larger ones stay shared: they are tied weights
  (an embedding and the output projection), and copies would grow the file.
- `Split` with `num_outputs` (opset 18) has no sizes to rewrite when a channel goes;
  when the split axis has a known size, the sizes become an explicit input.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from spa.importer.graph_names import fresh_name, known_dims
from spa.importer.subgraph_constants import sub_graphs

COPY_SUFFIX = "__use"
MAX_COPIED_BYTES = 64 * 1024


def unshare_constants(graph: onnx.GraphProto) -> int:
    """Give every use but the first of a shared vector or small initializer its own Identity copy;
    returns the number of copies."""
    listed = {i.name for i in graph.input}
    vectors = {t.name for t in graph.initializer if t.name not in listed and _copyable(t)}
    scopes = [graph, *sub_graphs(graph)]  # a branch reads the main graph's constants too
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
