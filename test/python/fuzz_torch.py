"""The block grammar of fuzz_graphs.py as PyTorch modules, exported by TorchScript or by dynamo.

`torch_models()` draws a module (an image stem or a token embedding, random
blocks at random widths, a head) and exports it with one of torch's two
exporters; the batch is dynamic or fixed at 1.
"""

from __future__ import annotations

import io
import warnings

import onnx
import torch
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

widths = st.integers(2, 12)
ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "hardswish": nn.Hardswish, "gelu": nn.GELU}


class ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 1, groups: int = 1, act: str = "relu") -> None:
        super().__init__(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups), nn.BatchNorm2d(cout),
                         ACTIVATIONS[act]())


class Residual(nn.Module):
    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, kernel, padding=kernel // 2), nn.BatchNorm2d(channels))

    def forward(self, x):
        return x + self.body(x)


class Branches(nn.Module):
    def __init__(self, cin: int, outs: list[int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Conv2d(cin, c, 1) for c in outs)

    def forward(self, x):
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class SplitJoin(nn.Module):
    def __init__(self, channels: int, first: int, width: int) -> None:
        super().__init__()
        self.sizes = [first, channels - first]
        self.conv = nn.Conv2d(channels - first, width, 1)

    def forward(self, x):
        a, b = torch.split(x, self.sizes, dim=1)
        return torch.cat([a, self.conv(b)], dim=1)


class Shuffle(nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        return x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class Spatial(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def forward(self, x):
        if self.kind == "max":
            return F.max_pool2d(x, 2)
        if self.kind == "resize":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        if self.kind == "pad":
            return F.pad(x, (1, 1, 1, 1))
        return x[:, : max(1, x.shape[1] - 1)]  # a channel slice


class RMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.rand(dim) + 0.5)

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x):
        return x + self.down(F.gelu(self.up(x)))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, packed: bool) -> None:
        super().__init__()
        self.heads, self.packed = heads, packed
        self.qkv = nn.Linear(dim, 3 * dim) if packed else nn.ModuleList(nn.Linear(dim, dim) for _ in range(3))
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        n, t, d = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=-1) if self.packed else (layer(x) for layer in self.qkv)
        q, k, v = (y.reshape(n, t, self.heads, d // self.heads).transpose(1, 2) for y in (q, k, v))
        mixed = torch.softmax(q @ k.transpose(-2, -1) / (d // self.heads) ** 0.5, dim=-1) @ v
        return x + self.proj(mixed.transpose(1, 2).reshape(n, t, d))


class ToSequence(nn.Module):
    def forward(self, x):
        return x.flatten(2).transpose(1, 2)


class Head(nn.Module):
    def __init__(self, dim: int, sequence: bool) -> None:
        super().__init__()
        self.sequence, self.fc = sequence, nn.Linear(dim, 5)

    def forward(self, x):
        return self.fc(x.mean(1) if self.sequence else x.mean((2, 3)))


@st.composite
def image_block(draw, channels: int) -> tuple[nn.Module, int]:
    kind = draw(st.sampled_from(["conv", "depthwise", "grouped", "residual", "branches", "split", "shuffle",
                                 "spatial"]))
    divisors = [g for g in (2, 3, 4) if channels % g == 0]
    if kind == "depthwise":
        return ConvBN(channels, channels, 3, channels, draw(st.sampled_from(sorted(ACTIVATIONS)))), channels
    if kind == "grouped" and divisors:
        groups = draw(st.sampled_from(divisors))
        out = groups * draw(st.integers(1, 3))
        return ConvBN(channels, out, 3, groups), out
    if kind == "residual":
        return Residual(channels, draw(st.sampled_from([1, 3]))), channels
    if kind == "branches":
        outs = draw(st.lists(widths, min_size=2, max_size=3))
        return Branches(channels, outs), sum(outs)
    if kind == "split" and channels > 1:
        first, width = draw(st.integers(1, channels - 1)), draw(widths)
        return SplitJoin(channels, first, width), first + width
    if kind == "shuffle" and divisors:
        return Shuffle(draw(st.sampled_from(divisors))), channels
    if kind == "spatial":
        spatial = draw(st.sampled_from(["max", "resize", "pad", "slice"]))
        return Spatial(spatial), max(1, channels - 1) if spatial == "slice" else channels
    out = draw(widths)
    return ConvBN(channels, out, draw(st.sampled_from([1, 3])), act=draw(st.sampled_from(sorted(ACTIVATIONS)))), out


@st.composite
def sequence_block(draw, dim: int) -> nn.Module:
    kind = draw(st.sampled_from(["layer_norm", "rms_norm", "mlp", "attention"]))
    if kind == "layer_norm":
        return nn.LayerNorm(dim)
    if kind == "rms_norm":
        return RMSNorm(dim)
    if kind == "mlp":
        return MLP(dim, draw(st.integers(2, 24)))
    heads = draw(st.sampled_from([h for h in (1, 2, 4) if dim % h == 0]))
    return Attention(dim, heads, draw(st.booleans()))


@st.composite
def torch_models(draw) -> onnx.ModelProto:
    """A random module from the blocks above, exported by TorchScript or dynamo (see the module doc)."""
    torch.manual_seed(draw(st.integers(0, 2**16)))
    layers: list[nn.Module] = []
    if draw(st.booleans()):  # tokens
        dim = draw(st.sampled_from([4, 8, 12]))
        layers.append(nn.Embedding(30, dim))
        example = torch.randint(0, 30, (1, draw(st.integers(2, 6))))
        sequence = True
    else:
        channels = draw(widths)
        layers.append(ConvBN(3, channels, 3))
        for _ in range(draw(st.integers(1, 4))):
            block, channels = draw(image_block(channels))
            layers.append(block)
        example = torch.randn(1, 3, 8, 8)
        sequence = draw(st.booleans())
        if sequence:
            layers.append(ToSequence())
        dim = channels
    if sequence:
        for _ in range(draw(st.integers(1 if len(layers) == 1 else 0, 3))):
            layers.append(draw(sequence_block(dim)))
    layers.append(Head(dim, sequence))
    module = nn.Sequential(*layers).eval()
    for norm in module.modules():  # trained-looking BatchNorm statistics
        if isinstance(norm, nn.BatchNorm2d):
            norm.running_mean.uniform_(-0.3, 0.3)
            norm.running_var.uniform_(0.5, 1.5)
    return _export(module, example, dynamo=draw(st.booleans()), dynamic_batch=draw(st.booleans()))


def _export(module: nn.Module, example: torch.Tensor, dynamo: bool, dynamic_batch: bool) -> onnx.ModelProto:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if dynamo:
            shapes = ({0: torch.export.Dim("batch", min=1, max=64)},) if dynamic_batch else None
            return torch.onnx.export(module, (example,), dynamo=True, dynamic_shapes=shapes, verbose=False,
                                     optimize=True).model_proto
        buffer = io.BytesIO()
        torch.onnx.export(module, (example,), buffer, dynamo=False, input_names=["input"],
                          dynamic_axes={"input": {0: "batch"}} if dynamic_batch else None)
        return onnx.load_from_string(buffer.getvalue())
