"""spa.torch.prune: the pruned module is the same classes, matches the pruned ONNX model and the zero-mask oracle."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch_zoo
from oracle import masked_model
from torch import nn

import spa
import spa.torch
from spa.errors import SPAError, SPAWarning
from spa.groups import Plan, plan_to_dict

pytestmark = pytest.mark.zoo  # the full tier only (see pyproject's markers)

CI_MODELS = ["residual", "concat", "grouped_conv", "depthwise_residual", "squeeze_excite", "concat_chain",
             "resnext_block"]


def _run_onnx(model, x: torch.Tensor) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


@pytest.mark.parametrize("name", CI_MODELS)
def test_pruned_module_matches_onnx_and_the_zero_mask_oracle(name: str) -> None:
    torch.manual_seed(0)
    builder, shape = torch_zoo.ZOO[name]
    net = builder().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.randn(*shape)
    result = spa.torch.prune(net, x, criterion="random", ratio=0.3)
    pruned = result.module
    assert type(pruned) is type(net)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # the original is untouched
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in net.parameters())
    fresh = torch.randn(*shape)
    with torch.no_grad():
        got = pruned(fresh).numpy()
    np.testing.assert_allclose(got, _run_onnx(result.onnx_model, fresh), rtol=1e-4, atol=1e-5)
    model = spa.load(spa.torch.export(net, x))
    groups = model.coupling_groups()
    if all(g.function_preserving for g in groups if g.id in result.plan.removed):
        masked = masked_model(model.to_onnx(), plan_to_dict(result.plan, groups))
        np.testing.assert_allclose(got, _run_onnx(masked, fresh), rtol=1e-4, atol=1e-5)


def test_pruned_module_trains_and_exports_again() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Flatten(), nn.Linear(8 * 4 * 4, 5)).eval()
    result = spa.torch.prune(net, torch.randn(2, 3, 4, 4), criterion="l2", ratio=0.5)
    pruned = result.module
    assert pruned[0].out_channels == 4 and pruned[1].num_features == 4
    assert pruned[3].groups == pruned[3].in_channels == pruned[3].out_channels == 4
    assert pruned[7].in_features == 4 * 4 * 4
    assert repr(pruned[0]).startswith("Conv2d(3, 4,")
    optimizer = torch.optim.SGD(pruned.parameters(), lr=0.1)
    pruned.train()
    loss = pruned(torch.randn(4, 3, 4, 4)).square().mean()
    loss.backward()
    optimizer.step()
    again = spa.load(spa.torch.export(pruned, torch.randn(1, 3, 4, 4)))
    tensors = [v for k, v in pruned.state_dict().items() if not k.endswith("num_batches_tracked")]
    assert again.stats().params == sum(v.numel() for v in tensors)  # SPA counts BatchNorm statistics too


def test_obspa_through_the_adapter_keeps_its_corrections() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    data = torch.randn(256, 6)
    result = spa.torch.prune(net, data[:2], criterion="obspa", ratio=0.5, calibration={"input_0": data.numpy()})
    assert result.plan.weight_updates
    uncorrected = spa.load(spa.torch.export(net, data[:2]))
    uncorrected.prune(Plan(result.plan.removed))
    with torch.no_grad():
        dense = net(data).numpy()
        corrected_error = np.abs(result.module(data).numpy() - dense).mean()
    uncorrected_error = np.abs(_run_onnx(uncorrected.to_onnx(), data) - dense).mean()
    assert corrected_error < 0.7 * uncorrected_error, (corrected_error, uncorrected_error)


def test_modules_with_hard_coded_widths_are_refused_without_the_fallback() -> None:
    builder, shape = torch_zoo.ZOO["split"]
    torch.manual_seed(0)
    with pytest.raises(SPAError, match="uses a width SPA cannot patch"):
        spa.torch.prune(builder().eval(), torch.randn(*shape), criterion="l1", ratio=0.3, fallback=False)


class _HardCodedFlatten(nn.Module):
    """forward flattens to a literal width, which the pruned copy cannot keep."""

    def __init__(self, activation=torch.relu) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8 * 4 * 4, 5)
        self.activation = activation

    def forward(self, x):
        return self.head(self.activation(self.bn(self.conv(x))).reshape(-1, 128))


# GELU exports as the opset-20 Gelu operator, which onnx2torch (opset 17) gets as its Erf function body
@pytest.mark.parametrize("activation", [torch.relu, nn.functional.gelu], ids=["relu", "gelu"])
def test_modules_with_hard_coded_widths_come_back_converted_by_onnx2torch(activation) -> None:
    pytest.importorskip("onnx2torch")
    torch.manual_seed(0)
    net = _HardCodedFlatten(activation).eval()
    with pytest.warns(SPAWarning, match="converted by onnx2torch"):
        result = spa.torch.prune(net, torch.randn(2, 3, 4, 4), criterion="l1", ratio=0.5)
    assert not result.patched and type(result.module) is not type(net)
    x = torch.randn(3, 3, 4, 4)
    with torch.no_grad():
        got = result.module(x).numpy()
    np.testing.assert_allclose(got, _run_onnx(result.onnx_model, x), rtol=1e-4, atol=1e-5)
    assert sum(p.numel() for p in result.module.parameters()) < sum(p.numel() for p in net.parameters())
    result.module.train()
    loss = result.module(x).square().mean()
    loss.backward()  # the converted module is an ordinary trainable torch module
    assert all(p.grad is not None for p in result.module.parameters() if p.requires_grad)


class _ChannelsLastBlock(nn.Module):
    """A ConvNeXt-style block: LayerNorm and Linear layers on permuted (channels-last) activations,
    whose exported weights reach MatMul through Transpose."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.LayerNorm(8)
        self.expand = nn.Linear(8, 16)
        self.project = nn.Linear(16, 8)
        self.layer_scale = nn.Parameter(torch.full((8, 1, 1), 0.5))
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.stem(x)
        y = self.project(torch.relu(self.expand(self.norm(x.permute(0, 2, 3, 1))))).permute(0, 3, 1, 2)
        return self.head(x + self.layer_scale * y)


def test_weights_behind_transposes_are_pruned_and_patched() -> None:
    torch.manual_seed(0)
    net = _ChannelsLastBlock().eval()
    result = spa.torch.prune(net, torch.randn(2, 3, 5, 5), criterion="l1", ratio=0.5)
    pruned = result.module
    assert (pruned.stem.out_channels, pruned.norm.normalized_shape, pruned.expand.out_features) == (4, (4,), 8)
    assert pruned.layer_scale.shape == (4, 1, 1) and pruned.head.in_channels == 4
    x = torch.randn(3, 3, 5, 5)
    with torch.no_grad():
        np.testing.assert_allclose(pruned(x).numpy(), _run_onnx(result.onnx_model, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["convnext_tiny", pytest.param("swin_t", marks=pytest.mark.slow)])
def test_torchvision_transformer_style_models_prune_through_the_adapter(name: str) -> None:
    import torchvision

    torch.manual_seed(0)
    net = getattr(torchvision.models, name)().eval()
    result = spa.torch.prune(net, torch.randn(1, 3, 224, 224), criterion="l1", ratio=0.3)
    assert result.patched and type(result.module) is type(net)
    assert sum(p.numel() for p in result.module.parameters()) < 0.9 * sum(p.numel() for p in net.parameters())
    assert result.max_difference < 1e-4


def test_multihead_attention_is_kept_and_the_rest_pruned() -> None:
    """torch's MultiheadAttention cannot change its widths: its groups (heads and the residual
    stream it reads) are kept, the MLP is pruned, and the module keeps its classes."""
    builder, shape = torch_zoo.ZOO["torch_mha"]
    torch.manual_seed(0)
    net = builder().eval()
    result = spa.torch.prune(net, torch.randn(*shape), criterion="l1", ratio=0.5, fallback=False)
    pruned = result.module
    assert pruned.attention.in_proj_weight.shape == net.attention.in_proj_weight.shape
    assert pruned.mlp[0].out_features == 16 and pruned.mlp[2].in_features == 16
    x = torch.randn(2, *shape[1:])
    with torch.no_grad():
        np.testing.assert_allclose(pruned(x).numpy(), _run_onnx(result.onnx_model, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("heads", ["dims", "whole"])
def test_timm_vision_transformer_heads_are_patched(heads: str) -> None:
    """timm's Attention keeps num_heads, head_dim and attn_dim apart from the embedding width, so pruned
    heads fit the same class: whole heads lower num_heads, head dims lower head_dim (with the original
    softmax scale, as in the pruned ONNX model)."""
    timm_vit = pytest.importorskip("timm.models.vision_transformer")
    torch.manual_seed(0)
    net = timm_vit.VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4,
                                     num_classes=5).eval()
    x = torch.randn(1, 3, 32, 32)
    # the residual stream runs through LayerNorms (not function-preserving); keep it for the oracle
    result = spa.torch.prune(net, x, criterion="l1", ratio=0.5, heads=heads, fallback=False,
                             protect=["patch_embed.proj.weight"])
    attention = result.module.blocks[0].attn
    assert type(result.module) is type(net) and type(attention) is type(net.blocks[0].attn)
    assert (attention.num_heads, attention.head_dim) == ((2, 16) if heads == "whole" else (4, 8))
    assert attention.qkv.out_features == 3 * attention.attn_dim == 96
    fresh = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        got = result.module(fresh).numpy()
    np.testing.assert_allclose(got, _run_onnx(result.onnx_model, fresh), rtol=1e-4, atol=1e-5)
    model = spa.load(spa.torch.export(net, x))
    model.heads = heads
    groups = model.coupling_groups()
    assert all(g.function_preserving for g in groups if g.id in result.plan.removed)
    masked = masked_model(model.to_onnx(), plan_to_dict(result.plan, groups))
    np.testing.assert_allclose(got, _run_onnx(masked, fresh), rtol=1e-4, atol=1e-5)


def test_timm_vision_transformer_residual_stream_is_pruned_too() -> None:
    """With the patch tokens and the class token on a dynamic batch followed, the embedding width itself
    (patch projection, class token, position embedding, every LayerNorm and projection) is pruned."""
    timm_vit = pytest.importorskip("timm.models.vision_transformer")
    torch.manual_seed(0)
    net = timm_vit.VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=4,
                                     num_classes=5).eval()
    result = spa.torch.prune(net, torch.randn(2, 3, 32, 32), criterion="l1", ratio=0.3, fallback=False)
    pruned = result.module
    width = pruned.patch_embed.proj.out_channels
    assert width < 64 and pruned.cls_token.shape[-1] == pruned.pos_embed.shape[-1] == width
    assert pruned.blocks[1].norm1.normalized_shape == (width,) and pruned.head.in_features == width
    fresh = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        np.testing.assert_allclose(pruned(fresh).numpy(), _run_onnx(result.onnx_model, fresh), rtol=1e-4, atol=1e-5)


class _GroupedConvs(nn.Module):
    """A depthwise conv with channel multiplier 2 and a grouped 1x1 conv: only true depthwise convs
    (groups == in == out) change their group count when pruned."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.depthwise2 = nn.Conv2d(4, 8, 3, padding=1, groups=4)
        self.grouped = nn.Conv2d(8, 8, 1, groups=2)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x = self.grouped(torch.relu(self.depthwise2(torch.relu(self.stem(x)))))
        return self.head(x.mean((2, 3)))


def test_grouped_convolutions_keep_a_consistent_group_count() -> None:
    torch.manual_seed(0)
    net = _GroupedConvs().eval()
    result = spa.torch.prune(net, torch.randn(2, 3, 8, 8), criterion="l1", ratio=0.5, fallback=False)
    pruned = result.module
    assert pruned.depthwise2.groups == 4 and pruned.grouped.groups == 2
    assert pruned.depthwise2.out_channels < 8 and pruned.grouped.out_channels < 8
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        np.testing.assert_allclose(pruned(x).numpy(), _run_onnx(result.onnx_model, x), rtol=1e-4, atol=1e-5)


def test_a_half_precision_cnn_with_half_precision_inputs_comes_back_patched() -> None:
    """The model is exported and checked in float32; its float16 example images are fed widened."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 1)).half().eval()
    result = spa.torch.prune(net, torch.randn(1, 3, 8, 8).half(), criterion="l2", ratio=0.5)
    assert result.patched and result.module[0].out_channels == 4
    assert next(result.module.parameters()).dtype == torch.float16
