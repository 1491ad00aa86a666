"""LSTM, GRU and RNN hidden units are prunable: every gate's rows of W and R, R's columns, both biases,
the initial states and the outputs lose the same units, and `hidden_size` follows."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
from helpers import run
from oracle import prune_and_mask

import spa

torch = pytest.importorskip("torch")


class _Tagger(torch.nn.Module):
    """A recurrent layer over (batch, time, 4) features, then a linear head on every step."""

    def __init__(self, kind: str, bidirectional: bool) -> None:
        super().__init__()
        self.rnn = getattr(torch.nn, kind)(4, 8, batch_first=True, bidirectional=bidirectional)
        self.head = torch.nn.Linear(16 if bidirectional else 8, 3)

    def forward(self, x):
        return self.head(self.rnn(x)[0])


def _export(kind: str, bidirectional: bool) -> onnx.ModelProto:
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.onnx.export(_Tagger(kind, bidirectional).eval(), (torch.randn(2, 5, 4),), buffer, dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "batch", 1: "time"}})
    return onnx.load_from_string(buffer.getvalue())


@pytest.mark.parametrize("kind, bidirectional", [("LSTM", False), ("GRU", False), ("RNN", False), ("LSTM", True)])
def test_hidden_units_prune_like_the_oracle(kind: str, bidirectional: bool) -> None:
    original = _export(kind, bidirectional)
    units = [g for g in spa.load(original).coupling_groups() if g.channels == 8]
    assert len(units) == 1 and units[0].prunable, [g.details() for g in spa.load(original).coupling_groups()]
    assert [r for r in units[0].reasons] == []
    pruned, masked, plan, _ = prune_and_mask(original, fraction=0.5)
    assert len(next(g for g in plan["groups"] if g["id"] == units[0].id)["removed"]) == 4
    onnx.checker.check_model(pruned, full_check=True)
    recurrent = next(n for n in pruned.graph.node if n.op_type == kind)
    assert onnx.helper.get_attribute_value(next(a for a in recurrent.attribute if a.name == "hidden_size")) == 4
    feeds = {"x": np.random.default_rng(1).standard_normal((3, 7, 4)).astype(np.float32)}
    np.testing.assert_allclose(run(pruned, feeds)[0], run(masked, feeds)[0], rtol=1e-5, atol=1e-5)
