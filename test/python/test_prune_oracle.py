"""Pruning is checked against the zero-mask oracle over the model zoo.

For every model, a random 30% of every prunable, function-preserving group is
removed at once; the pruned model must pass the full ONNX checker, run in
onnxruntime with unchanged output shapes, and equal the unpruned model whose
removed constant slices are zeroed.
"""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import pytest
from helpers import LIGHT_MODELS, random_inputs, run
from oracle import prune_and_mask
from spa.errors import SPAWarning

TORCH_MODELS = ["residual", "concat", "grouped_conv", "depthwise_residual", "attention",
                "channel_shuffle", "squeeze_excite", "split", "concat_chain", "resnext_block", "shape_derived_heads", "torch_mha",
                "einsum_attention"]


def check_against_oracle(source, min_removed: int = 1, heads: str = "dims") -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("error", SPAWarning)  # e.g. "keeps opset 26": pruned models keep their opset
        pruned, masked, plan, groups = prune_and_mask(source, heads=heads)
    onnx.checker.check_model(pruned, full_check=True)
    removed = sum(len(g["removed"]) for g in plan["groups"])
    assert removed >= min_removed, [g.details() for g in groups]
    feeds = random_inputs(masked)
    want, got = run(masked, feeds), run(pruned, feeds)
    for expected, actual in zip(want, got):
        assert expected.shape == actual.shape
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(expected).max())))
    return plan


@pytest.mark.zoo
@pytest.mark.parametrize("path", LIGHT_MODELS, ids=lambda p: p.stem)
def test_light_models_prune_like_the_oracle(path) -> None:
    # Some light graphs build every weight at run time (ConstantOfShape -> Unsqueeze):
    # such channels are unprunable, and pruning must still give a valid model.
    check_against_oracle(path, min_removed=0)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name", TORCH_MODELS)
def test_pytorch_models_prune_like_the_oracle(name: str, dynamo: bool) -> None:
    pytest.importorskip("torch")
    import torch_zoo

    check_against_oracle(torch_zoo.export(name, dynamo))


def test_torch_attention_groups_are_all_prunable() -> None:
    """Shape-derived targets (the packed q/k/v unflatten, the class token's Expand, the
    attention scale) are folded on import, so only the graph output blocks a group."""
    pytest.importorskip("torch")
    import spa
    import torch_zoo

    source = torch_zoo.export("torch_mha", dynamo=False)
    groups = spa.load(source).coupling_groups()
    blocked = [g.reasons for g in groups if not g.prunable]
    assert blocked == [(f"graph output '{source.graph.output[0].name}'",)], blocked  # the reason names it
    head_dims = [g for g in groups if g.prunable and g.channels == 4]  # q/k head dims shared by the 4 heads
    assert head_dims and all(g.function_preserving for g in head_dims)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name", ["shape_derived_heads", "einsum_attention"])
def test_whole_heads_prune_like_the_oracle(name: str, dynamo: bool) -> None:
    """heads="whole": a channel is a head (its dims in q, k and v, and its rows of the output
    projection); the Reshape targets' head counts shrink."""
    pytest.importorskip("torch")
    import spa
    import torch_zoo

    source = torch_zoo.export(name, dynamo)
    model = spa.load(source)
    model.heads = "whole"
    heads = torch_zoo.ZOO[name][0]().heads
    assert any(g.prunable and g.channels == heads for g in model.coupling_groups())
    check_against_oracle(source, heads="whole")


@pytest.mark.parametrize("heads", ["dims", "whole"])
@pytest.mark.parametrize("name", ["shape_derived_heads", "einsum_attention"])
def test_attention_with_dynamic_batch_and_sequence_prunes_like_the_oracle(name: str, heads: str) -> None:
    """Head reshapes read batch and sequence from Shape and leave the head size to -1; the
    symbols cancel on import, so every head group is prunable and the oracle holds at other sizes."""
    pytest.importorskip("torch")
    import spa
    import torch_zoo

    source = torch_zoo.export_dynamic(name)
    model = spa.load(source)
    model.heads = heads
    assert [g.reasons for g in model.coupling_groups() if not g.prunable] == [("graph output 'output'",)]
    check_against_oracle(source, heads=heads)


def test_a_plan_for_other_head_groups_is_refused() -> None:
    pytest.importorskip("torch")
    import spa
    import torch_zoo
    from spa.errors import SPAError

    model = spa.load(torch_zoo.export("einsum_attention", dynamo=False))
    plan = model.plan("l1", ratio=0.3)
    model.heads = "whole"
    with pytest.raises(SPAError, match="plan was made with heads='dims'"):
        model.prune(plan)
