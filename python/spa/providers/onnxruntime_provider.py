"""Activations of an ONNX model computed by onnxruntime, batch by batch.

OBSPA's layer Hessians read the inputs of its consumer layers through this
provider; any criterion that needs activations can do the same:

    provider = ActivationProvider(model_proto, ["conv2_input"])
    for batch in provider.run(batches):     # batches: iterable of {input name: array}
        use(batch["conv2_input"])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
import onnx
from onnx import helper

from spa.errors import SPAError


class ActivationProvider:
    """Runs `model` with the values `names` exposed as extra outputs (graph inputs are passed through), on
    `threads` onnxruntime threads (None: its default)."""

    def __init__(self, model: onnx.ModelProto, names: Sequence[str], threads: int | None = None) -> None:
        import onnxruntime as ort

        graph_inputs = {i.name for i in model.graph.input}
        self.names = list(names)
        self.passed_through = [n for n in self.names if n in graph_inputs]
        self.computed = [n for n in self.names if n not in graph_inputs]
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        existing = {o.name for o in probe.graph.output}
        probe.graph.output.extend(helper.ValueInfoProto(name=n) for n in self.computed if n not in existing)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads is not None:  # a fixed count: the same activations on any machine's worker
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(probe.SerializeToString(), options,
                                                providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise SPAError(f"onnxruntime cannot load the model to read activations: {error}") from None

    def run(self, batches: Iterable[Mapping[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
        """For each batch of inputs (input name -> array), the requested activations by name."""
        for feeds in batches:
            try:
                values = self.session.run(self.computed, dict(feeds)) if self.computed else []
            except Exception as error:  # noqa: BLE001
                shapes = ", ".join(f"{k} {list(np.shape(v))}" for k, v in feeds.items())
                raise SPAError(f"onnxruntime rejected the inputs ({shapes}): "
                               f"{str(error).splitlines()[0]}") from None
            result = dict(zip(self.computed, values))
            result.update({n: np.asarray(feeds[n]) for n in self.passed_through})
            yield result
