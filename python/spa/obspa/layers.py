"""The linear layers OBSPA can reconstruct, seen as matrices W (outputs x input features).

A consumer member of a channel group is a weight whose input axis carries
the group's channels. OBSPA works on W as a 2-D matrix whose columns are
input features: a Gemm/MatMul column is one input feature, a Conv column is
one (input channel, kernel row, kernel column) of the im2col matrix. A
grouped Conv is one `LinearLayer` per convolution group, each seeing only
its input channels. A bias (or, for a bias-free Conv feeding only a
BatchNormalization, that BatchNorm's running mean) is an extra column fed
by a constant 1, so OBS also corrects the output means.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from spa.groups import Group


@dataclass(frozen=True)
class ConvGeometry:
    """Kernel, strides, dilations and pads (begin h, begin w, end h, end w) of a 2-D Conv."""

    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]


@dataclass(frozen=True)
class LinearLayer:
    """One matrix OBSPA reconstructs.

    `weight` is the initializer name; `input` the activation that feeds it;
    `kind` "conv", "gemm" or "matmul"; `transposed` says W = weight^T
    (Gemm without transB, MatMul); `input_channels` is the slice of the
    input's feature axis this layer reads (a convolution group);
    `rows` the slice of the weight's output axis it writes; `bias` names the bias
    initializer, or `bn_mean` the running mean of the BatchNorm that takes
    the place of a bias. Which group channel a position belongs to comes from
    the group member of the weight.
    """

    weight: str
    input: str
    kind: str
    transposed: bool
    input_channels: tuple[int, int]
    rows: tuple[int, int]
    geometry: ConvGeometry | None
    bias: str | None
    bn_mean: str | None

    @property
    def key(self) -> tuple[str, int]:
        """Unique per layer: the weight and the first output row it writes."""
        return (self.weight, self.rows[0])

    @property
    def features_key(self) -> tuple:
        """Equal for layers that multiply the same feature matrix (q, k and v; gate and up): one Hessian."""
        if self.kind == "conv":
            return (self.input, self.input_channels, self.geometry)
        return (self.input,)

    @property
    def input_axis(self) -> int:
        """The weight axis that runs over input features."""
        return 1 if self.kind == "conv" or not self.transposed else 0

    def columns_per_position(self) -> int:
        """Columns of W per input position: the kernel area for a Conv, else 1."""
        return int(np.prod(self.geometry.kernel)) if self.geometry else 1

    def matrix(self, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        """W (rows x columns, float64), with the bias as a last column when there is one."""
        rows = slice(*self.rows)
        if self.kind == "conv":
            w = weight[rows].reshape(self.rows[1] - self.rows[0], -1)
        else:
            w = (weight.T if self.transposed else weight)[rows]
        w = w.astype(np.float64)
        if bias is not None:
            w = np.concatenate([w, bias[rows].astype(np.float64)[:, None]], axis=1)
        return w

    def write_back(self, matrix: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> None:
        """Store a corrected W into (writable copies of) the weight and bias arrays."""
        rows = slice(*self.rows)
        columns = matrix[:, :-1] if bias is not None else matrix
        if bias is not None:
            bias[rows] = matrix[:, -1]
        if self.kind == "conv":
            weight[rows] = columns.reshape(weight[rows].shape)
        elif self.transposed:
            weight[:, rows] = columns.T
        else:
            weight[rows] = columns


def _attribute(node: onnx.NodeProto, name: str, default):
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _conv_geometry(node: onnx.NodeProto, weight_shape: tuple[int, ...], input_shape: list[int] | None
                   ) -> ConvGeometry | None:
    """The geometry of a 2-D Conv, or None for other ranks or unresolvable auto_pad."""
    if len(weight_shape) != 4:
        return None
    kernel = tuple(weight_shape[2:])
    strides = tuple(_attribute(node, "strides", [1, 1]))
    dilations = tuple(_attribute(node, "dilations", [1, 1]))
    auto_pad = _attribute(node, "auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("NOTSET", "VALID"):
        pads = tuple(_attribute(node, "pads", [0, 0, 0, 0])) if auto_pad == "NOTSET" else (0, 0, 0, 0)
    else:
        if input_shape is None or len(input_shape) != 4 or any(d <= 0 for d in input_shape[2:]):
            return None
        begin, end = [], []
        for size, k, s, d in zip(input_shape[2:], kernel, strides, dilations):
            out = -(-size // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - size)
            small, large = total // 2, total - total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else large)
            end.append(large if auto_pad == "SAME_UPPER" else small)
        pads = (begin[0], begin[1], end[0], end[1])
    return ConvGeometry(kernel, strides, dilations, pads)  # type: ignore[arg-type]


def find_layers(model: onnx.ModelProto, groups: list[Group], weights: Mapping[str, np.ndarray]
                ) -> tuple[dict[str, list[LinearLayer]], dict[str, str]]:
    """The reconstructible layers of every consumer member of a prunable group.

    Returns (weight name -> its layers, one per convolution group) and
    (weight name -> why it is not reconstructible) for consumer weights that
    are not: Conv that is not 2-D, depthwise, MatMul with a batched weight,
    Gemm with transA, a weight that is not an initializer, a weight used twice.
    """
    consumers = {m.tensor for g in groups if g.prunable for m in g.members if m.role == "consumer"}
    initializers = {t.name for t in model.graph.initializer}
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    shapes = _input_shapes(model)
    layers: dict[str, list[LinearLayer]] = {}
    skipped: dict[str, str] = {}
    for name in sorted(consumers):
        nodes = users.get(name, [])
        if name not in initializers:
            skipped[name] = "the weight is computed, not an initializer"
            continue
        found = _transposed_matmul(nodes[0], name, weights, users) if len(nodes) == 1 else None
        if found is None:
            if len(nodes) != 1 or list(nodes[0].input).count(name) != 1 or nodes[0].input[0] == name:
                skipped[name] = "the weight is used by several ops"
                continue
            found = _layers_of(nodes[0], name, weights, users, shapes)
        if isinstance(found, str):
            skipped[name] = found
        else:
            layers[name] = found
    return layers, skipped


def _transposed_matmul(node: onnx.NodeProto, name: str, weights: Mapping[str, np.ndarray],
                       users: dict[str, list[onnx.NodeProto]]) -> list[LinearLayer] | None:
    """MatMul(x, Transpose(W)) with W (outputs x inputs), as unfolded PyTorch Linear exports are; else None."""
    weight = weights[name]
    if node.op_type != "Transpose" or weight.ndim != 2 or list(_attribute(node, "perm", [1, 0])) != [1, 0]:
        return None
    followers = users.get(node.output[0], [])
    if len(followers) != 1 or followers[0].op_type != "MatMul" or followers[0].input[1] != node.output[0]:
        return None
    outputs, inputs = weight.shape
    bias = None
    adds = users.get(followers[0].output[0], [])
    if len(adds) == 1 and adds[0].op_type == "Add":
        other = [i for i in adds[0].input if i != followers[0].output[0]]
        if len(other) == 1 and other[0] in weights and tuple(weights[other[0]].shape) == (outputs,):
            bias = other[0]
    return [LinearLayer(name, followers[0].input[0], "matmul", False, (0, inputs), (0, outputs), None, bias, None)]


def _layers_of(node: onnx.NodeProto, name: str, weights: Mapping[str, np.ndarray],
               users: dict[str, list[onnx.NodeProto]], shapes: dict[str, list[int]]) -> list[LinearLayer] | str:
    weight = weights[name]
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if node.op_type == "Conv":
        geometry = _conv_geometry(node, weight.shape, shapes.get(node.input[0]))
        if geometry is None:
            return f"{node.op_type} {node.name!r}: only 2-D convolutions with resolvable padding are reconstructed"
        groups = int(_attribute(node, "group", 1))
        if weight.shape[1] == 1 and groups > 1:
            return f"Conv {node.name!r} is depthwise"
        if bias is not None and (bias not in weights or tuple(weights[bias].shape) != (weight.shape[0],)):
            bias = None
        bn_mean = None
        followers = users.get(node.output[0], [])
        if bias is None and len(followers) == 1 and followers[0].op_type == "BatchNormalization":
            bn_mean = followers[0].input[3] if followers[0].input[3] in weights else None
        per_group_out, per_group_in = weight.shape[0] // groups, weight.shape[1]
        return [LinearLayer(name, node.input[0], "conv", False, (g * per_group_in, (g + 1) * per_group_in),
                            (g * per_group_out, (g + 1) * per_group_out), geometry, bias, bn_mean)
                for g in range(groups)]
    if node.op_type == "Gemm":
        if _attribute(node, "transA", 0):
            return f"Gemm {node.name!r} has transA"
        transposed = not _attribute(node, "transB", 0)
        outputs = weight.shape[1] if transposed else weight.shape[0]
        if bias is not None and (bias not in weights or tuple(weights[bias].shape) != (outputs,)):
            bias = None  # a broadcast or computed bias: reconstruct the weight only
        inputs = weight.shape[0] if transposed else weight.shape[1]
        return [LinearLayer(name, node.input[0], "gemm", transposed, (0, inputs), (0, outputs), None, bias, None)]
    if node.op_type == "MatMul" and weight.ndim == 2 and node.input[1] == name:
        return [LinearLayer(name, node.input[0], "matmul", True, (0, weight.shape[0]), (0, weight.shape[1]),
                            None, None, None)]
    return f"{node.op_type} {node.name!r}: not a Conv, Gemm or 2-D MatMul weight"


def _input_shapes(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Static shapes (-1 for unknown dims) of the values shape inference knows."""
    shapes = {}
    for info in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
            shapes[info.name] = [d.dim_value if d.HasField("dim_value") else -1
                                 for d in info.type.tensor_type.shape.dim]
    return shapes
