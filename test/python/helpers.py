"""Helpers SPA's Python tests share: onnxruntime sessions, random feeds and output comparisons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

LIGHT_MODEL_DIR = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
LIGHT_MODELS = sorted(LIGHT_MODEL_DIR.glob("light_*.onnx"))

_NUMPY_INPUT_TYPES = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.INT64: np.int64,
                      onnx.TensorProto.BOOL: np.bool_, onnx.TensorProto.INT32: np.int32}


def session(model: onnx.ModelProto | str | Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # keep test output to errors
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def random_inputs(model: onnx.ModelProto, seed: int = 0, dim: int = 2) -> dict[str, np.ndarray]:
    """Random feeds for the graph inputs that are not initializers (symbolic dims -> `dim`)."""
    rng = np.random.default_rng(seed)
    initializers = {t.name for t in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else dim for d in tensor.shape.dim]
        dtype = _NUMPY_INPUT_TYPES[tensor.elem_type]
        if dtype == np.float32:
            feeds[value.name] = rng.standard_normal(shape).astype(np.float32)
        else:
            feeds[value.name] = rng.integers(0, 2, shape).astype(dtype)
    return feeds


def run(model: onnx.ModelProto | str | Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return session(model).run(None, feeds)


def assert_same_outputs(expected: list[np.ndarray], actual: list[np.ndarray], atol: float = 1e-5) -> None:
    assert len(expected) == len(actual)
    for want, got in zip(expected, actual):
        assert want.shape == got.shape
        np.testing.assert_allclose(got, want, atol=atol, rtol=0)


def scaling_rewrite(prune_copy, weight: str, factor: float = 1.01):
    """A Trial's `prune_copy` that also scales the kept values of `weight`: a stand-in for a rewrite
    bug that leaves shapes valid, which only the zero-mask oracle can catch."""
    from spa.model import Model

    def scaled(plan):
        module = prune_copy(plan)
        copy = Model(module)
        copy.set_weights({weight: copy.weights()[weight] * factor})
        return module

    return scaled
