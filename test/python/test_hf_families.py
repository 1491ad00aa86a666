"""Hugging Face transformer families from tiny configs (random weights, no download), exported by both torch
exporters: at least 90 % of the non-output channels are prunable, and a random plan prunes like the
zero-mask oracle. Per-family coverage is measured by benchmarks/hf_coverage.py.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from helpers import run
from oracle import prune_and_mask

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
import hf_models  # noqa: E402

import spa  # noqa: E402

pytestmark = pytest.mark.zoo  # the full tier only (see pyproject's markers)


def _coverage(model: onnx.ModelProto) -> tuple[float, list[str]]:
    groups = [g for g in spa.load(model).coupling_groups() if not any("graph output" in r for r in g.reasons)]
    blocked = [g.details().splitlines()[0] for g in groups if not g.prunable]
    return sum(g.channels for g in groups if g.prunable) / sum(g.channels for g in groups), blocked


def _feeds(family: str, exporter: str) -> dict[str, np.ndarray]:
    # TorchScript exports have a dynamic batch and length: run them at other sizes than the export's.
    batch, length = (3, 5) if exporter == "torchscript" else (2, 8)
    return {name: value.numpy() for name, value in hf_models.example_inputs(family, batch, length).items()}


@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("family", hf_models.FAMILIES)
def test_family_is_prunable_and_prunes_like_the_oracle(family: str, exporter: str) -> None:
    original = hf_models.export(family, exporter)
    share, blocked = _coverage(original)
    assert share >= 0.9, blocked
    pruned, masked, plan, _ = prune_and_mask(original, fraction=0.4)
    assert sum(len(g["removed"]) for g in plan["groups"]) > 0
    onnx.checker.check_model(pruned, full_check=True)
    feeds = _feeds(family, exporter)
    for expected, actual in zip(run(masked, feeds), run(pruned, feeds)):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(expected).max())))


HEAD_DIM, QUERY_HEADS, KEY_VALUE_HEADS = 8, 4, 2  # hf_models' decoders


def test_rope_head_dims_rotate_together() -> None:
    # RoPE rotates dims i and i + d/2 of every head as a pair: removing one of them alone changes the
    # rotation of the other, so they must be one channel in every member (projections and cos/sin tables).
    groups = spa.load(hf_models.export("llama", "dynamo")).coupling_groups()
    rotary = [g for g in groups if g.prunable and any(len(m.channel_of_position) == HEAD_DIM for m in g.members)]
    assert len(rotary) == 2  # query/key head dims, one group per layer
    for group in rotary:
        assert group.channels == HEAD_DIM // 2
        for member in group.members:
            channels = member.channel_of_position
            partner = [(p // HEAD_DIM) * HEAD_DIM + (p % HEAD_DIM + HEAD_DIM // 2) % HEAD_DIM
                       for p in range(len(channels))]
            assert all(channels[p] == channels[q] for p, q in enumerate(partner)), member.tensor


def test_gqa_whole_heads_remove_a_key_value_head_with_its_query_heads() -> None:
    original = hf_models.export("llama", "dynamo")
    model = spa.load(original)
    model.heads = "whole"
    heads = [g for g in model.coupling_groups() if g.prunable and g.channels == KEY_VALUE_HEADS]
    assert len(heads) == 2  # one group of key/value heads per layer
    per_group = QUERY_HEADS // KEY_VALUE_HEADS
    for group in heads:
        for member in group.members:
            positions = len(member.channel_of_position)
            query_side = positions == QUERY_HEADS * HEAD_DIM  # q_proj columns, o_proj rows
            expected = [p // HEAD_DIM // (per_group if query_side else 1) for p in range(positions)]
            assert list(member.channel_of_position) == expected, member.tensor
    pruned, masked, plan, _ = prune_and_mask(original, fraction=0.5, heads="whole")
    assert any(len(g["removed"]) for g in plan["groups"] if g["id"] in {h.id for h in heads})
    onnx.checker.check_model(pruned, full_check=True)
    feeds = _feeds("llama", "dynamo")
    for expected, actual in zip(run(masked, feeds), run(pruned, feeds)):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(expected).max())))
