"""A decoder exported with its key/value cache as graph inputs and outputs (how optimum and
KV-cache exports look): the head dims of the cache are the model's interface, so their groups are
blocked with a reason, and the hidden size and MLP width still prune, with the cache's shapes kept."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
from helpers import run
from oracle import prune_and_mask

import spa

torch = pytest.importorskip("torch")

HIDDEN, HEADS, PAST = 32, 4, 5


class _CachedBlock(torch.nn.Module):
    """Embedding, one attention layer reading and returning its cache, an MLP and a head, residuals."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(8, HIDDEN)
        self.q, self.k, self.v, self.o = (torch.nn.Linear(HIDDEN, HIDDEN) for _ in range(4))
        self.up, self.down = torch.nn.Linear(HIDDEN, 64), torch.nn.Linear(64, HIDDEN)
        self.head = torch.nn.Linear(HIDDEN, 5)

    def _heads(self, x):
        batch, length, _ = x.shape
        return x.view(batch, length, HEADS, HIDDEN // HEADS).transpose(1, 2)

    def forward(self, x, past_key, past_value):
        x = self.embed(x)
        key = torch.cat([past_key, self._heads(self.k(x))], 2)
        value = torch.cat([past_value, self._heads(self.v(x))], 2)
        scores = self._heads(self.q(x)) @ key.transpose(-1, -2) / (HIDDEN // HEADS) ** 0.5
        attended = (torch.softmax(scores, -1) @ value).transpose(1, 2)
        x = x + self.o(attended.reshape(*attended.shape[:2], HIDDEN))
        x = x + self.down(torch.relu(self.up(x)))
        return self.head(x), key, value


def _export() -> onnx.ModelProto:
    torch.manual_seed(0)
    cache = torch.randn(2, HEADS, PAST, HIDDEN // HEADS)
    buffer = io.BytesIO()
    past, total = {0: "batch", 2: "past"}, {0: "batch", 2: "total"}
    torch.onnx.export(_CachedBlock().eval(), (torch.randn(2, 3, 8), cache, cache), buffer, dynamo=False,
                      input_names=["x", "past_key", "past_value"], output_names=["y", "present_key", "present_value"],
                      dynamic_axes={"x": {0: "batch", 1: "length"}, "past_key": past, "past_value": past,
                                    "present_key": total, "present_value": total})
    return onnx.load_from_string(buffer.getvalue())


def test_cache_head_dims_are_blocked_and_the_rest_prunes():
    groups = spa.load(_export()).coupling_groups()

    def holding(bias: str):
        return next(g for g in groups if any(m.tensor == bias for m in g.members))

    assert holding("o.bias").prunable and holding("up.bias").prunable  # the hidden size and the MLP width
    assert (holding("o.bias").channels, holding("up.bias").channels) == (HIDDEN, 64)
    cache = [g for g in groups if g.channels == HIDDEN // HEADS]
    assert len(cache) == 2 and all(not g.prunable for g in cache)
    assert {g.reasons for g in cache} == {("graph output 'present_key'",), ("graph output 'present_value'",)}


def test_pruned_model_takes_and_returns_the_same_cache():
    pruned, masked, plan, _ = prune_and_mask(_export(), fraction=0.5)
    assert len(plan["groups"]) == 2
    onnx.checker.check_model(pruned, full_check=True)
    rng = np.random.default_rng(3)
    cache = rng.standard_normal((1, HEADS, 7, HIDDEN // HEADS)).astype(np.float32)
    feeds = {"x": rng.standard_normal((1, 2, 8)).astype(np.float32), "past_key": cache, "past_value": cache}
    got, expected = run(pruned, feeds), run(masked, feeds)
    assert got[1].shape == got[2].shape == (1, HEADS, 9, HIDDEN // HEADS)
    for have, want in zip(got, expected):
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-5)
