"""One onnxruntime session that can run a model with some of its constants replaced, and show inner values.

Sensitivity measurements and sequential reconstruction run the same model
many times with a few weights changed (zeroed slices, refitted layers).
Building a session per change would copy every weight each time; instead
the chosen constants become initializers listed as graph inputs, which
onnxruntime lets a run override, and chosen inner values become outputs.
Constants that exporters keep as nodes (Constant, ConstantOfShape, an
Identity of a shared initializer) become initializers of their own first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from spa.errors import SPAError
from spa.verify.checks import Runner
from spa.verify.masking import constant_value


class OverridableModel:
    """`model` with the constants `names` overridable and the values `exposed` readable, run on
    `threads` onnxruntime threads (None: its default)."""

    def __init__(self, model: onnx.ModelProto, names: Sequence[str], exposed: Sequence[str] = (),
                 threads: int | None = None) -> None:
        self.names = sorted(set(names))
        prepared = with_overridable(model, self.names)
        existing = {o.name for o in prepared.graph.output}
        self.graph_inputs = {i.name for i in model.graph.input}  # exposed inputs are read from the feeds
        prepared.graph.output.extend(helper.ValueInfoProto(name=n) for n in exposed
                                     if n not in existing and n not in self.graph_inputs)
        self.values = {name: constant_value(prepared, name) for name in self.names}
        self.output_names = [o.name for o in model.graph.output]
        self.runner = Runner(prepared.SerializeToString(), threads)
        if self.runner.failure is not None:
            raise SPAError(f"onnxruntime cannot load the model to run it with changed weights "
                           f"({self.runner.failure.message})")

    def run(self, batches: Sequence[Mapping[str, np.ndarray]], overrides: Mapping[str, np.ndarray] | None = None,
            outputs: Sequence[str] | None = None) -> list[np.ndarray] | None:
        """The `outputs` (default: the model's own) over all batches, joined along the batch axis;
        None when a run fails with these values."""
        computed = [n for n in outputs if n not in self.graph_inputs] if outputs is not None else None
        parts = []
        for batch in batches:
            result = self.runner.run({**batch, **(overrides or {})}, computed)
            if not isinstance(result, list):
                return None
            if outputs is not None:
                found = dict(zip(computed, result))
                result = [found[n] if n in found else np.asarray(batch[n]) for n in outputs]
            parts.append(result)
        return [np.concatenate([np.atleast_1d(p[i]) for p in parts]) for i in range(len(parts[0]))]


def with_overridable(base: onnx.ModelProto, names: Sequence[str]) -> onnx.ModelProto:
    """A copy in which every constant of `names` is an initializer listed as a graph input."""
    model = onnx.ModelProto()
    model.CopyFrom(base)
    wanted = set(names)
    initializers = {t.name for t in model.graph.initializer}
    kept_nodes = []
    for node in model.graph.node:
        if node.output and node.output[0] in wanted and node.output[0] not in initializers \
                and node.op_type in ("Constant", "ConstantOfShape", "Identity"):
            value = constant_value(base, node.output[0])  # a node constant becomes an initializer of its own
            model.graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(value), node.output[0]))
            continue
        kept_nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(kept_nodes)
    listed = {i.name for i in model.graph.input}
    for tensor in model.graph.initializer:
        if tensor.name in wanted and tensor.name not in listed:
            model.graph.input.append(helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    return model
