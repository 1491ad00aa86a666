"""TorchProvider: derivative data checked against torch computed another way, and used by Model.plan."""

from __future__ import annotations

import io

import numpy as np
import onnx
import pytest
import spa
import torch
from spa.errors import SPAError
from spa.providers.torch_provider import TorchProvider
from torch import nn
from torch.func import functional_call, hessian


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))


def _batches():
    generator = torch.Generator().manual_seed(1)
    return [(torch.randn(5, 4, generator=generator), torch.randint(0, 3, (5,), generator=generator))
            for _ in range(2)]


def _loss_of(net: nn.Module, flat: torch.Tensor, batch) -> torch.Tensor:
    names = [n for n, _ in net.named_parameters()]
    shapes = [p.shape for _, p in net.named_parameters()]
    pieces, start = {}, 0
    for name, shape in zip(names, shapes):
        size = int(np.prod(shape))
        pieces[name] = flat[start:start + size].reshape(shape)
        start += size
    inputs, targets = batch
    return nn.functional.cross_entropy(functional_call(net, pieces, (inputs,)), targets)


def _split(net: nn.Module, flat: torch.Tensor) -> dict[str, np.ndarray]:
    result, start = {}, 0
    for name, p in net.named_parameters():
        result[name] = flat[start:start + p.numel()].reshape(p.shape).detach().numpy()
        start += p.numel()
    return result


def test_gradients_and_hessian_gradient_products_match_explicit_hessians() -> None:
    net, batches = _net(), _batches()
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    grads, products = [], []
    for batch in batches:
        g = torch.func.grad(lambda f, b=batch: _loss_of(net, f, b))(flat)
        grads.append(g)
        products.append(hessian(lambda f, b=batch: _loss_of(net, f, b))(flat) @ g)
    provider = TorchProvider(net, batches)
    names = [n for n, _ in net.named_parameters()]
    expected_g = _split(net, sum(grads) / 2)
    expected_hg = _split(net, sum(products) / 2)
    got_g = provider.tensors("gradients", names)
    got_hg = provider.tensors("hessian_gradient", names)
    for name in names:
        np.testing.assert_allclose(got_g[name], expected_g[name], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got_hg[name], expected_hg[name], rtol=1e-4, atol=1e-6)


def test_squared_gradients_are_per_sample() -> None:
    net, batches = _net(), _batches()
    flat = torch.cat([p.detach().reshape(-1) for p in net.parameters()])
    squares = []
    for inputs, targets in batches:
        for i in range(len(targets)):
            sample = (inputs[i:i + 1], targets[i:i + 1])
            g = torch.func.grad(lambda f, s=sample: _loss_of(net, f, s))(flat)
            squares.append(g * g)
    expected = _split(net, sum(squares) / len(squares))
    got = TorchProvider(net, batches, fisher_samples=100).tensors("squared_gradients", list(expected))
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-7)


def _export(net: nn.Module) -> onnx.ModelProto:
    buffer = io.BytesIO()
    torch.onnx.export(net.eval(), (torch.randn(1, 4),), buffer, dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "n"}})
    return onnx.load_from_string(buffer.getvalue())


@pytest.mark.parametrize("criterion", ["taylor", "snip", "grasp", "crop", "obd"])
def test_derivative_criteria_plan_through_the_model(criterion: str) -> None:
    net = _net()
    model = spa.load(_export(net))
    plan = model.plan(criterion, ratio=0.5, provider=TorchProvider(net, _batches()))
    assert plan.removed_count() == 3  # half of the 6 hidden features
    assert "TorchProvider" in plan.data_used
    model.prune(plan)
    assert model.stats().params < 4 * 6 + 6 + 6 * 3 + 3


def test_name_map_and_mismatched_names() -> None:
    net = _net()
    model = spa.load(_export(net))
    renamed = {f"{n}": f"model.{n}" for n, _ in net.named_parameters()}
    with pytest.raises(SPAError, match="for none of the model's weights"):
        model.plan("taylor", ratio=0.5, provider=TorchProvider(net, _batches(), name_map=renamed))
    with pytest.raises(SPAError, match="taylor criterion needs gradients .* no data provider"):
        model.plan("taylor", ratio=0.5)
    with pytest.raises(SPAError, match="no batches"):
        TorchProvider(net, [])
