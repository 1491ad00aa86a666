"""How the Keras adapter calls a model, and the adapter's side of the protocol (spa.frameworks.protocol)."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from spa.frameworks.pipeline import PrunedExport
from spa.frameworks.protocol import FrameworkAdapter, as_list


def call(model: Any, inputs: tuple[np.ndarray, ...]) -> Any:
    """`model` on `inputs`: a Keras model takes several inputs as one list (a second positional is `training`)."""
    return model(inputs[0] if len(inputs) == 1 else list(inputs))


class KerasAdapter(FrameworkAdapter):
    """Keras 3 for spa.frameworks.protocol. It only runs models: export and the pruned copy take the torch
    backend, in this process or a child (see on_torch and worker)."""

    model_name = "model"

    def __init__(self) -> None:
        import keras

        self.label = f"Keras adapter ({keras.backend.backend()} backend)"

    def export(self, model: Any, inputs: tuple) -> onnx.ModelProto:
        raise NotImplementedError("Keras models are exported on the torch backend (see on_torch)")

    def pruned_copy(self, model: Any, pruned: PrunedExport) -> Any:
        raise NotImplementedError("Keras models are rebuilt or patched on the torch backend (see on_torch)")

    def outputs(self, model: Any, inputs: tuple) -> list[np.ndarray]:
        import keras

        return [np.asarray(keras.ops.convert_to_numpy(e)) for e in as_list(call(model, inputs))]

    def feeds(self, pruned: onnx.ModelProto, inputs: tuple) -> dict[str, np.ndarray]:
        return super().feeds(pruned, tuple(np.asarray(x, np.float32) for x in inputs))
