"""A grammar of the blocks real models are made of, as hypothesis strategies that build ONNX graphs.

`onnx_models()` draws a model directly with onnx.helper: an image stem or a
token embedding, a random sequence of blocks at random widths, and a head.
Image blocks: conv + BN + activation, depthwise and grouped convs, residual
adds, concat, split (sizes or num_outputs), channel shuffle, channel slices,
pooling, resize, pad, a custom-domain op (com.microsoft Gelu, which
onnxruntime runs) and an If with two branches. Sequence blocks: LayerNorm,
RMSNorm, MLPs, multi-head attention with separate q/k/v and with a packed
projection, flatten/reshape and transpose between the two.
`torch_modules()` draws the same kinds of blocks as PyTorch modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

OPSET = 18


@dataclass
class Builder:
    """The graph so far: `value` is the current tensor, `shape` its shape (batch as 'N' or an int)."""

    rng: np.random.Generator
    nodes: list = field(default_factory=list)
    initializers: list = field(default_factory=list)
    value: str = ""
    shape: tuple = ()
    count: int = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}_{self.count}"

    def weight(self, shape: tuple[int, ...], scale: float | None = None) -> str:
        name = self.name("w")
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        data = self.rng.standard_normal(shape) * (scale if scale is not None else 1 / np.sqrt(max(fan_in, 1)))
        self.initializers.append(numpy_helper.from_array(data.astype(np.float32), name))
        return name

    def constant(self, values, dtype=np.int64) -> str:
        name = self.name("c")
        self.initializers.append(numpy_helper.from_array(np.asarray(values, dtype=dtype), name))
        return name

    def node(self, op: str, inputs: list[str], domain: str = "", outputs: int = 1, **attributes) -> list[str]:
        names = [self.name(op.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=self.name(f"n_{op}"), domain=domain,
                                           **attributes))
        return names

    def apply(self, op: str, inputs: list[str], shape: tuple, **attributes) -> str:
        self.value, self.shape = self.node(op, inputs, **attributes)[0], shape
        return self.value

    @property
    def channels(self) -> int:
        return self.shape[1] if len(self.shape) == 4 else self.shape[-1]


widths = st.integers(2, 12)
activations = st.sampled_from(["Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSwish"])


# -- image blocks ---------------------------------------------------------------------------------


def conv(b: Builder, out: int, kernel: int = 1, group: int = 1, bias: bool = True) -> str:
    n, c, h, w = b.shape
    inputs = [b.value, b.weight((out, c // group, kernel, kernel))]
    if bias:
        inputs.append(b.weight((out,), 0.1))
    return b.apply("Conv", inputs, (n, out, h, w), kernel_shape=[kernel, kernel], pads=[kernel // 2] * 4, group=group)


def batch_norm(b: Builder) -> str:
    c = b.channels
    rng = b.rng
    parameters = [b.constant(rng.uniform(low, high, c), np.float32)
                  for low, high in ((0.5, 1.5), (-0.2, 0.2), (-0.2, 0.2), (0.5, 1.5))]  # scale, shift, mean, var
    return b.apply("BatchNormalization", [b.value, *parameters], b.shape)


@st.composite
def conv_bn_act(draw, b: Builder) -> None:
    conv(b, draw(widths), draw(st.sampled_from([1, 3])), bias=draw(st.booleans()))
    batch_norm(b)
    b.apply(draw(activations), [b.value], b.shape)


@st.composite
def depthwise(draw, b: Builder) -> None:
    conv(b, b.channels, 3, group=b.channels)
    b.apply(draw(activations), [b.value], b.shape)


@st.composite
def grouped(draw, b: Builder) -> None:
    groups = draw(st.sampled_from([g for g in (2, 3, 4) if b.channels % g == 0] or [1]))
    conv(b, groups * draw(st.integers(1, 4)), 3, group=groups)


@st.composite
def residual(draw, b: Builder) -> None:
    skip, shape = b.value, b.shape
    conv(b, b.channels, draw(st.sampled_from([1, 3])))
    batch_norm(b)
    b.apply("Add", [skip, b.value], shape)


@st.composite
def concat(draw, b: Builder) -> None:
    start, shape = b.value, b.shape
    branches = []
    for _ in range(draw(st.integers(2, 3))):
        b.value, b.shape = start, shape
        conv(b, draw(widths))
        branches.append((b.value, b.channels))
    n, _, h, w = shape
    b.apply("Concat", [v for v, _ in branches], (n, sum(c for _, c in branches), h, w), axis=1)


@st.composite
def split(draw, b: Builder) -> None:
    n, c, h, w = b.shape
    if c < 2:
        return
    if draw(st.booleans()) and c % 2 == 0:
        parts = b.node("Split", [b.value], outputs=2, axis=1, num_outputs=2)
        sizes = [c // 2, c // 2]
    else:
        first = draw(st.integers(1, c - 1))
        sizes = [first, c - first]
        parts = b.node("Split", [b.value, b.constant(sizes)], outputs=2, axis=1)
    outs = []
    for part, size in zip(parts, sizes):
        b.value, b.shape = part, (n, size, h, w)
        if draw(st.booleans()):
            conv(b, draw(widths))
        outs.append((b.value, b.channels))
    b.apply("Concat", [v for v, _ in outs], (n, sum(s for _, s in outs), h, w), axis=1)


@st.composite
def shuffle(draw, b: Builder) -> None:
    n, c, h, w = b.shape
    groups = draw(st.sampled_from([g for g in (2, 3, 4) if c % g == 0] or [1]))
    if groups == 1:
        return
    b.apply("Reshape", [b.value, b.constant([0, groups, c // groups, h, w])], (n, groups, c // groups, h, w))
    b.apply("Transpose", [b.value], (n, c // groups, groups, h, w), perm=[0, 2, 1, 3, 4])
    b.apply("Reshape", [b.value, b.constant([0, c, h, w])], (n, c, h, w))


@st.composite
def channel_slice(draw, b: Builder) -> None:
    n, c, h, w = b.shape
    if c < 3:
        return
    end = draw(st.integers(1, c - 1))
    b.apply("Slice", [b.value, b.constant([0]), b.constant([end]), b.constant([1])], (n, end, h, w))


@st.composite
def spatial(draw, b: Builder) -> None:
    n, c, h, w = b.shape
    kind = draw(st.sampled_from(["MaxPool", "AveragePool", "Resize", "Pad"]))
    if kind in ("MaxPool", "AveragePool") and h >= 2:
        b.apply(kind, [b.value], (n, c, h // 2, w // 2), kernel_shape=[2, 2], strides=[2, 2])
    elif kind == "Resize" and h <= 8:
        scales = b.constant([1, 1, 2, 2], np.float32)
        b.apply("Resize", [b.value, "", scales], (n, c, h * 2, w * 2), mode="nearest")
    elif kind == "Pad":
        b.apply("Pad", [b.value, b.constant([0, 0, 1, 1, 0, 0, 1, 1])], (n, c, h + 2, w + 2))


@st.composite
def custom_op(draw, b: Builder) -> None:
    b.value = b.node("Gelu", [b.value], domain="com.microsoft")[0]


@st.composite
def if_branches(draw, b: Builder) -> None:
    branches = {}
    for branch, op in (("then_branch", "Relu"), ("else_branch", "Sigmoid")):
        out = b.name(branch)
        branches[branch] = helper.make_graph([helper.make_node(op, [b.value], [out])], branch, [],
                                             [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)])
    out = b.name("if_out")
    b.nodes.append(helper.make_node("If", [b.constant(draw(st.booleans()), np.bool_)], [out], **branches))
    b.value = out


IMAGE_BLOCKS = [conv_bn_act, depthwise, grouped, residual, concat, split, shuffle, channel_slice, spatial,
                custom_op, if_branches]


# -- sequence blocks ------------------------------------------------------------------------------


def linear(b: Builder, out: int, bias: bool = True) -> str:
    n, t, d = b.shape
    b.apply("MatMul", [b.value, b.weight((d, out), 1 / np.sqrt(d))], (n, t, out))
    if bias:
        b.apply("Add", [b.value, b.weight((out,), 0.1)], (n, t, out))
    return b.value


@st.composite
def layer_norm(draw, b: Builder) -> None:
    d = b.channels
    scale = b.constant(b.rng.uniform(0.5, 1.5, d), np.float32)
    if draw(st.booleans()):
        b.apply("LayerNormalization", [b.value, scale, b.weight((d,), 0.1)], b.shape, axis=-1)
        return
    x, shape = b.value, b.shape  # RMSNorm as Llama exports it
    square = b.node("Mul", [x, x])[0]
    mean = b.node("ReduceMean", [square, b.constant([-1])], keepdims=1)[0]
    root = b.node("Sqrt", [b.node("Add", [mean, b.constant(1e-5, np.float32)])[0]])[0]
    b.apply("Mul", [b.node("Div", [x, root])[0], scale], shape)


@st.composite
def mlp(draw, b: Builder) -> None:
    skip, shape = b.value, b.shape
    linear(b, draw(st.integers(2, 24)))
    b.apply(draw(st.sampled_from(["Relu", "Tanh", "Sigmoid"])), [b.value], b.shape)
    linear(b, shape[-1])
    b.apply("Add", [skip, b.value], shape)


@st.composite
def attention(draw, b: Builder) -> None:
    n, t, d = b.shape
    heads = draw(st.sampled_from([h for h in (1, 2, 4) if d % h == 0]))
    head_dim = d // heads
    skip = b.value
    if draw(st.booleans()):  # separate q, k, v projections
        q, k, v = (linear(_at(b, skip, (n, t, d)), d) for _ in range(3))
    else:  # one packed projection, split three ways
        packed = linear(_at(b, skip, (n, t, d)), 3 * d)
        q, k, v = b.node("Split", [packed, b.constant([d, d, d])], outputs=3, axis=-1)

    def heads_first(value: str, perm: list[int]) -> str:
        split_heads = b.node("Reshape", [value, b.constant([0, 0, heads, head_dim])])[0]
        return b.node("Transpose", [split_heads], perm=perm)[0]

    scores = b.node("MatMul", [heads_first(q, [0, 2, 1, 3]), heads_first(k, [0, 2, 3, 1])])[0]
    scaled = b.node("Mul", [scores, b.constant(1 / np.sqrt(head_dim), np.float32)])[0]
    weights = b.node("Softmax", [scaled], axis=-1)[0]
    mixed = b.node("MatMul", [weights, heads_first(v, [0, 2, 1, 3])])[0]
    merged = b.node("Transpose", [mixed], perm=[0, 2, 1, 3])[0]
    _at(b, b.node("Reshape", [merged, b.constant([0, 0, d])])[0], (n, t, d))
    linear(b, d)
    b.apply("Add", [skip, b.value], (n, t, d))


def _at(b: Builder, value: str, shape: tuple) -> Builder:
    b.value, b.shape = value, shape
    return b


SEQUENCE_BLOCKS = [layer_norm, mlp, attention]


# -- whole models ---------------------------------------------------------------------------------


def _to_sequence(b: Builder) -> None:
    n, c, h, w = b.shape
    b.apply("Reshape", [b.value, b.constant([0, c, h * w])], (n, c, h * w))
    b.apply("Transpose", [b.value], (n, h * w, c), perm=[0, 2, 1])


@st.composite
def onnx_models(draw) -> onnx.ModelProto:
    """A random model built from the blocks above (see the module doc)."""
    b = Builder(np.random.default_rng(draw(st.integers(0, 2**31))))
    batch = draw(st.sampled_from(["N", 1, 2]))
    tokens = draw(st.booleans())
    if tokens:
        length, width, vocab = draw(st.integers(2, 6)), draw(st.sampled_from([4, 8, 12])), 30
        inputs = [helper.make_tensor_value_info("ids", TensorProto.INT64, [batch, length])]
        b.apply("Gather", [b.weight((vocab, width), 1.0), "ids"], (batch, length, width))
    else:
        size = draw(st.sampled_from([4, 6, 8]))
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, size, size])]
        b.value, b.shape = "x", (batch, 3, size, size)
        conv(b, draw(widths), 3)
        for block in draw(st.lists(st.sampled_from(IMAGE_BLOCKS), min_size=1, max_size=5)):
            draw(block(b))
        if draw(st.booleans()):
            _to_sequence(b)
    if len(b.shape) == 3:
        for block in draw(st.lists(st.sampled_from(SEQUENCE_BLOCKS), min_size=1 - tokens, max_size=4)):
            draw(block(b))
        n, t, d = b.shape
        b.apply("ReduceMean", [b.value, b.constant([1])], (n, d), keepdims=0)
    else:
        n, c, _, _ = b.shape
        b.apply("GlobalAveragePool", [b.value], (n, c, 1, 1))
        b.apply("Flatten", [b.value], (n, c), axis=1)
    b.apply("Gemm", [b.value, b.weight((5, b.shape[1])), b.weight((5,), 0.1)], (b.shape[0], 5), transB=1)
    outputs = [helper.make_tensor_value_info(b.value, TensorProto.FLOAT, [batch, 5])]
    graph = helper.make_graph(b.nodes, "fuzzed", inputs, outputs, b.initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                   helper.make_opsetid("com.microsoft", 1)])
