"""Layer Hessians H = E[x x^T] over each layer's input features, from onnxruntime activations.

Three sources:
- calibration: the user's inputs are run through the dense model;
- data-free: synthetic inputs are run through a copy of the model in which every BatchNormalization normalises with the statistics of
  the batch instead of its running statistics, so that each normalised
  channel has the mean (beta) and spread (|gamma|) it had on the training
  data; the correlations between channels then come from the weights
  themselves. Float inputs are standard-normal noise in the model's normalised
  input space: when the graph starts with `(x - mean) / std` on constants,
  the noise is mapped back through it (x = mean + std * z), else the model
  is assumed to take normalised inputs; token ids are uniform over the
  vocabulary (the rows of the embedding they index) and masks are ones;
- identity: H = I (no data at all; OBS then reduces to consumer-column L2
  saliency with no correction).
Features are im2col columns for a Conv (one row per output pixel), the
last axis for Gemm/MatMul. A layer with a bias gets a constant-1 feature.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

from spa.errors import SPAError
from spa.obspa.layers import LinearLayer
from spa.verify.inputs import GraphInput, graph_inputs, index_bounds, is_floating, resolve_shapes


def layer_features(layer: LinearLayer, activation: np.ndarray) -> np.ndarray:
    """The (samples x columns) float32 feature matrix `layer` multiplies by W^T."""
    x = np.asarray(activation, dtype=np.float32)
    if layer.kind != "conv":
        if layer.kind == "gemm" and x.ndim != 2:
            raise SPAError(f"Gemm weight {layer.weight}: expected a 2-D input, got shape {list(x.shape)}")
        return x.reshape(-1, x.shape[-1])
    g = layer.geometry
    x = x[:, slice(*layer.input_channels)]
    top, left, bottom, right = g.pads
    x = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    span = [(k - 1) * d + 1 for k, d in zip(g.kernel, g.dilations)]
    windows = np.lib.stride_tricks.sliding_window_view(x, span, axis=(2, 3))
    windows = windows[:, :, ::g.strides[0], ::g.strides[1], ::g.dilations[0], ::g.dilations[1]]
    # (N, C, oh, ow, kh, kw) -> (N, oh, ow, C, kh, kw): columns ordered like the weight's (C, kh, kw)
    return np.ascontiguousarray(windows.transpose(0, 2, 3, 1, 4, 5)).reshape(-1, windows.shape[1] * g.kernel[0]
                                                                             * g.kernel[1])


class HessianAccumulator:
    """Running sums of x x^T (and of x, for layers with a bias) per distinct feature matrix: layers
    reading the same input the same way (LinearLayer.features_key) share them."""

    def __init__(self, layers: list[LinearLayer]) -> None:
        self.layers = layers
        self._distinct = {layer.features_key: layer for layer in layers}  # one layer per feature matrix
        self.gram: dict[tuple, np.ndarray] = {}
        self.sums: dict[tuple, np.ndarray] = {}
        self.count: dict[tuple, int] = {}

    def add(self, activations: Mapping[str, np.ndarray]) -> None:
        """Add one batch: activation name -> array (the inputs of the layers)."""
        for key, layer in self._distinct.items():
            features = layer_features(layer, activations[layer.input])
            gram = features.T @ features
            if key in self.gram:
                self.gram[key] += gram  # widened to float64 as it is added: no float64 copy of every batch's
                self.sums[key] += features.sum(axis=0, dtype=np.float64)
                self.count[key] += features.shape[0]
            else:
                self.gram[key] = gram.astype(np.float64)
                self.sums[key] = features.sum(axis=0, dtype=np.float64)
                self.count[key] = features.shape[0]

    def merge(self, other: HessianAccumulator) -> None:
        """Add the sums of `other` (another share of the batches), as if its batches had been added here."""
        for key, gram in other.gram.items():
            if key in self.gram:
                self.gram[key] += gram
                self.sums[key] += other.sums[key]
                self.count[key] += other.count[key]
            else:
                self.gram[key], self.sums[key], self.count[key] = gram.copy(), other.sums[key].copy(), other.count[key]

    def hessian(self, layer: LinearLayer, with_bias: bool) -> np.ndarray:
        """E[x x^T] of `layer` (float64), augmented by the constant-1 feature when `with_bias`."""
        key = layer.features_key
        n = self.count[key]
        gram = self.gram[key] / n
        if not with_bias:
            return gram
        mean = self.sums[key] / n
        size = gram.shape[0] + 1
        augmented = np.empty((size, size))
        augmented[:-1, :-1] = gram
        augmented[:-1, -1] = augmented[-1, :-1] = mean
        augmented[-1, -1] = 1.0
        return augmented


def batch_statistics_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` whose BatchNormalization nodes normalise with the batch's own statistics."""
    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    opset = next((o.version for o in result.opset_import if o.domain in ("", "ai.onnx")), 18)
    ranks = {info.name: len(info.type.tensor_type.shape.dim)
             for info in list(graph.value_info) + list(graph.input) if info.type.tensor_type.HasField("shape")}
    nodes = []
    for index, node in enumerate(graph.node):
        if node.op_type != "BatchNormalization":
            nodes.append(node)
            continue
        epsilon = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "epsilon"), 1e-5)
        x, scale, bias = node.input[0], node.input[1], node.input[2]
        rank = ranks.get(x) or 4
        axes = [0, *range(2, rank)]
        p = f"spa_batch_stats_{index}"
        graph.initializer.extend([
            numpy_helper.from_array(np.array(axes, dtype=np.int64), f"{p}_axes"),
            numpy_helper.from_array(np.array([1, -1] + [1] * (rank - 2), dtype=np.int64), f"{p}_shape"),
            numpy_helper.from_array(np.array(epsilon, dtype=np.float32), f"{p}_eps"),
        ])

        def reduce_mean(source: str, target: str, p: str = p, axes: list[int] = axes) -> onnx.NodeProto:
            if opset >= 18:
                return helper.make_node("ReduceMean", [source, f"{p}_axes"], [target])
            return helper.make_node("ReduceMean", [source], [target], axes=axes)

        nodes += [
            reduce_mean(x, f"{p}_mean"),
            helper.make_node("Sub", [x, f"{p}_mean"], [f"{p}_centred"]),
            helper.make_node("Mul", [f"{p}_centred", f"{p}_centred"], [f"{p}_square"]),
            reduce_mean(f"{p}_square", f"{p}_var"),
            helper.make_node("Add", [f"{p}_var", f"{p}_eps"], [f"{p}_var_eps"]),
            helper.make_node("Sqrt", [f"{p}_var_eps"], [f"{p}_std"]),
            helper.make_node("Div", [f"{p}_centred", f"{p}_std"], [f"{p}_normal"]),
            helper.make_node("Reshape", [scale, f"{p}_shape"], [f"{p}_scale"]),
            helper.make_node("Reshape", [bias, f"{p}_shape"], [f"{p}_bias"]),
            helper.make_node("Mul", [f"{p}_normal", f"{p}_scale"], [f"{p}_scaled"]),
            helper.make_node("Add", [f"{p}_scaled", f"{p}_bias"], [node.output[0]]),
        ]
    del graph.node[:]
    graph.node.extend(nodes)
    return result


def input_normalisation(model: onnx.ModelProto, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of a leading `Sub(name, mean)` [`Div(., std)`] on constants, else (0, 1)."""
    constants = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for value in node.input:
            users.setdefault(value, []).append(node)
    mean, std = np.zeros(1, np.float32), np.ones(1, np.float32)
    first = users.get(name, [])
    if len(first) != 1 or first[0].op_type != "Sub" or first[0].input[0] != name \
            or first[0].input[1] not in constants:
        return mean, std
    mean = constants[first[0].input[1]].astype(np.float32)
    second = users.get(first[0].output[0], [])
    if len(second) == 1 and second[0].op_type == "Div" and second[0].input[1] in constants:
        std = constants[second[0].input[1]].astype(np.float32)
    return mean, std


def require_sized_floats(inputs: Sequence[GraphInput], given: Mapping[str, Sequence[int]]) -> None:
    """Raise SPAError naming the first float input with a dynamic dimension besides the batch and no
    size in `given`: data-free inputs of a guessed size would not be the model's."""
    for graph_input in inputs:
        dynamic = [d for d in graph_input.dims[1:] if not (isinstance(d, int) and d > 0)]
        if dynamic and is_floating(graph_input.dtype) and graph_input.name not in given:
            raise SPAError(f"data-free OBSPA: input {graph_input.name!r} has dynamic dimensions besides the "
                           f"batch ({list(graph_input.dims)}); say its size with --input-shape "
                           f"{graph_input.name}:1x... (input_shapes in the API) or give calibration data")


def synthetic_batches(model: onnx.ModelProto, samples: int, batch_size: int, seed: int,
                      input_shapes: Mapping[str, Sequence[int]] | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Synthetic inputs, `batch_size` samples at a time; the first dim of every input is the batch.

    Float inputs are standard normal in the input's normalised space; integer
    inputs that index a table (token and position ids) are uniform over its
    rows, other integer and bool inputs are ones (masks). The other dims come
    from the model, or for dynamic ones from `input_shapes` (the batch given
    there is ignored); a dynamic integer dim (a sequence length) defaults to
    16. Raises SPAError naming the input when a float input has a dynamic
    dimension besides the batch and no shape was given.
    """
    inputs = graph_inputs(model)
    given = dict(input_shapes or {})
    require_sized_floats(inputs, given)
    shapes = {name: shape[1:] for name, shape in resolve_shapes(inputs, given).items()}
    scales = {i.name: input_normalisation(model, i.name) for i in inputs if is_floating(i.dtype)}
    bounds = index_bounds(model)
    rng = np.random.default_rng(seed)
    for start in range(0, samples, batch_size):
        n = min(batch_size, samples - start)
        batch = {}
        for graph_input in inputs:
            shape, name = (n, *shapes[graph_input.name]), graph_input.name
            if name in scales:
                mean, std = scales[name]
                batch[name] = (mean + std * rng.standard_normal(shape, dtype=np.float32)).astype(graph_input.dtype)
            elif name in bounds:
                batch[name] = rng.integers(0, max(1, bounds[name]), shape).astype(graph_input.dtype)
            else:
                batch[name] = np.ones(shape, graph_input.dtype)
        yield batch


def calibration_batches(inputs: Mapping[str, np.ndarray], batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Slices of the calibration arrays (input name -> (N, ...) array) of `batch_size` samples."""
    sizes = {len(array) for array in inputs.values()}
    if len(sizes) != 1:
        raise SPAError(f"calibration data: the inputs have different sample counts ({sorted(sizes)})")
    total = sizes.pop()
    for start in range(0, total, batch_size):
        yield {name: np.ascontiguousarray(array[start:start + batch_size]) for name, array in inputs.items()}
