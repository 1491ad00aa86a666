"""Small PyTorch models covering the coupling patterns SPA must handle.

Each builder returns (module, example_input). Weights are random but fixed by
the seed; the models are exported to ONNX by the tests with both of
PyTorch's exporters.
"""

from __future__ import annotations

import io

import onnx
import torch
from torch import nn


class Residual(nn.Module):
    """Conv-BN-ReLU stem and a basic residual block (residual add)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                   nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16))
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.block(x))
        return self.head(x.mean(dim=(2, 3)))


class Concat(nn.Module):
    """Two branches joined by a channel concat, then a 1x1 conv."""

    def __init__(self):
        super().__init__()
        self.left = nn.Conv2d(3, 8, 3, padding=1)
        self.right = nn.Conv2d(3, 12, 1)
        self.fuse = nn.Conv2d(20, 6, 1)

    def forward(self, x):
        return self.fuse(torch.cat([torch.relu(self.left(x)), torch.sigmoid(self.right(x))], dim=1))


class GroupedConv(nn.Module):
    """Grouped conv (4 groups) between two dense convs, with a flatten + linear head."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(16, 32, 3, padding=1, groups=4), nn.ReLU(),
                                  nn.Conv2d(32, 8, 1))
        self.head = nn.Linear(8 * 8 * 8, 5)

    def forward(self, x):
        return self.head(torch.flatten(self.body(x), 1))


class DepthwiseResidual(nn.Module):
    """MobileNetV2-style inverted residual: expand, depthwise, project, add."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.expand = nn.Sequential(nn.Conv2d(8, 24, 1), nn.BatchNorm2d(24), nn.ReLU6())
        self.depthwise = nn.Sequential(nn.Conv2d(24, 24, 3, padding=1, groups=24), nn.BatchNorm2d(24), nn.Hardswish())
        self.project = nn.Sequential(nn.Conv2d(24, 8, 1), nn.BatchNorm2d(8))

    def forward(self, x):
        x = self.stem(x)
        return x + self.project(self.depthwise(self.expand(x)))


class Attention(nn.Module):
    """A transformer encoder layer: multi-head attention, LayerNorm, GELU MLP."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(12, 32)
        self.layer = nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64,
                                                dropout=0.0, activation="gelu", batch_first=True)
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, 3)

    def forward(self, x):
        return self.head(self.norm(self.layer(self.embed(x))))


ZOO = {
    "residual": (Residual, (1, 3, 8, 8)),
    "concat": (Concat, (1, 3, 8, 8)),
    "grouped_conv": (GroupedConv, (1, 3, 8, 8)),
    "depthwise_residual": (DepthwiseResidual, (1, 3, 8, 8)),
    "attention": (Attention, (2, 5, 12)),
}


def export_dynamic(name: str, seed: int = 0) -> onnx.ModelProto:
    """Export zoo model `name` (TorchScript) with dynamic batch and sequence axes."""
    torch.manual_seed(seed)
    builder, shape = ZOO[name]
    buffer = io.BytesIO()
    torch.onnx.export(builder().eval(), (torch.randn(*shape),), buffer, dynamo=False, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "batch", 1: "seq"}})
    return onnx.load_from_string(buffer.getvalue())


def export(name: str, dynamo: bool, seed: int = 0) -> onnx.ModelProto:
    """Export zoo model `name` to ONNX with the dynamo or the TorchScript exporter."""
    torch.manual_seed(seed)
    builder, shape = ZOO[name]
    module = builder().eval()
    example = torch.randn(*shape)
    if dynamo:
        program = torch.onnx.export(module, (example,), dynamo=True, verbose=False)
        return program.model_proto
    buffer = io.BytesIO()
    torch.onnx.export(module, (example,), buffer, dynamo=False, input_names=["input"], output_names=["output"])
    return onnx.load_from_string(buffer.getvalue())


class ChannelShuffle(nn.Module):
    """ShuffleNet channel shuffle: Reshape -> Transpose -> Reshape between two convs."""

    def __init__(self, groups: int = 2):
        super().__init__()
        self.groups = groups
        self.before = nn.Conv2d(3, 8, 1)
        self.after = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.before(x)
        n, c, h, w = x.shape
        x = x.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.after(x)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global pool, two 1x1 convs, sigmoid gate multiplied back."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.reduce = nn.Conv2d(16, 4, 1)
        self.expand = nn.Conv2d(4, 16, 1)
        self.out = nn.Conv2d(16, 6, 1)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        gate = torch.sigmoid(self.expand(torch.relu(self.reduce(x.mean(dim=(2, 3), keepdim=True)))))
        return self.out(x * gate)


class SplitBranches(nn.Module):
    """A conv output split along channels into two branches that are concatenated again."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3, padding=1)
        self.left = nn.Conv2d(4, 4, 3, padding=1)
        self.out = nn.Conv2d(12, 5, 1)

    def forward(self, x):
        a, b = torch.split(self.conv(x), [4, 8], dim=1)
        return self.out(torch.cat([torch.relu(self.left(a)), b], dim=1))


class ConcatChain(nn.Module):
    """DenseNet-style block: every layer sees the concat of all earlier outputs."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.layers = nn.ModuleList(nn.Sequential(nn.BatchNorm2d(8 + 4 * i), nn.ReLU(), nn.Conv2d(8 + 4 * i, 4, 3, padding=1))
                                    for i in range(3))
        self.head = nn.Conv2d(20, 3, 1)

    def forward(self, x):
        features = [self.stem(x)]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return self.head(torch.cat(features, dim=1))


ZOO.update({
    "channel_shuffle": (ChannelShuffle, (1, 3, 6, 6)),
    "squeeze_excite": (SqueezeExcite, (1, 3, 8, 8)),
    "split": (SplitBranches, (1, 3, 8, 8)),
    "concat_chain": (ConcatChain, (1, 3, 8, 8)),
})


class ResNeXtBlock(nn.Module):
    """ResNeXt bottleneck: 1x1, grouped 3x3 (cardinality 4), 1x1, residual add."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.reduce = nn.Sequential(nn.Conv2d(16, 16, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.grouped = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=4), nn.BatchNorm2d(16), nn.ReLU())
        self.expand = nn.Sequential(nn.Conv2d(16, 16, 1), nn.BatchNorm2d(16))

    def forward(self, x):
        x = self.stem(x)
        return torch.relu(x + self.expand(self.grouped(self.reduce(x))))


ZOO["resnext_block"] = (ResNeXtBlock, (1, 3, 8, 8))


class ShapeDerivedHeads(nn.Module):
    """Self-attention written by hand: the head reshapes take batch and length from
    x.shape (Shape -> Gather -> Concat targets) and head count/size as constants."""

    def __init__(self, dim: int = 16, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.out = nn.Linear(dim, 5)

    def forward(self, x):
        b, t = x.shape[0], x.shape[1]
        split = lambda y: y.reshape(b, t, self.heads, -1).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        attention = torch.softmax(q @ k.transpose(-1, -2), dim=-1)
        return self.out((attention @ v).transpose(1, 2).reshape(b, t, 16))


ZOO["shape_derived_heads"] = (ShapeDerivedHeads, (2, 6, 16))


class TorchMultiheadAttention(nn.Module):
    """A ViT-style encoder block: a class token expanded to the batch, torch's own
    nn.MultiheadAttention (packed q/k/v projection unflattened by a Shape-derived
    target, scale 1/sqrt(Shape(q)[-1])), an MLP and residual adds."""

    def __init__(self, dim: int = 16, heads: int = 4):
        super().__init__()
        self.embed = nn.Linear(12, dim)
        self.class_token = nn.Parameter(torch.randn(1, 1, dim))
        self.attention = nn.MultiheadAttention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, 32), nn.GELU(), nn.Linear(32, dim))
        self.head = nn.Linear(dim, 3)

    def forward(self, x):
        x = self.embed(x)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        y = x.transpose(0, 1)  # (length, batch, dim), torch's default layout
        x = x + self.attention(y, y, y, need_weights=False)[0].transpose(0, 1)
        x = x + self.mlp(x)
        return self.head(x[:, 0])


ZOO["torch_mha"] = (TorchMultiheadAttention, (1, 6, 12))


class EinsumAttention(nn.Module):
    """Attention written with einsum (as MaxViT does): q.k contracts the head dim, attn.v carries it."""

    def __init__(self, dim: int = 12, heads: int = 3):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, 5)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        attention = torch.softmax(torch.einsum("b h i d, b h j d -> b h i j", q, k), dim=-1)
        y = torch.einsum("b h i j, b h j d -> b h i d", attention, v)
        return self.out(y.transpose(1, 2).reshape(b, t, -1))


ZOO["einsum_attention"] = (EinsumAttention, (2, 5, 12))
