"""Gradients, Fisher diagonals and Hessian-gradient products computed with PyTorch.

    provider = TorchProvider(net, [(images, labels)])           # loss: cross-entropy
    plan = spa.load("net.onnx").plan("taylor", ratio=0.3, provider=provider)

The ONNX model must carry the PyTorch parameter names as initializer names
(`torch.onnx.export` keeps them unless constant folding merges layers; give
`name_map` otherwise). torch is imported only when this module is used.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from spa.errors import SPAError


class TorchProvider:
    """Per-weight derivative data of a PyTorch module over a few batches.

    Takes the module, an iterable of `(inputs, targets)` batches (`inputs` a
    tensor or a tuple of tensors), the loss `loss(outputs, targets)` (default
    cross-entropy), `name_map` from PyTorch parameter name to ONNX initializer
    name (default: the same names), `fisher_samples`: how many single samples
    the empirical Fisher uses, and `train_mode`: run the module in training
    mode (default: eval mode, matching the exported graph). Each kind is
    computed once and cached.
    """

    kinds = ("gradients", "squared_gradients", "hessian_gradient")

    def __init__(self, module: Any, batches: Iterable[tuple[Any, Any]], loss: Callable | None = None,
                 name_map: Mapping[str, str] | None = None, fisher_samples: int = 64,
                 train_mode: bool = False) -> None:
        import torch

        self.torch = torch
        self.module = module
        self.batches = [(inputs if isinstance(inputs, tuple) else (inputs,), targets) for inputs, targets in batches]
        if not self.batches:
            raise SPAError("TorchProvider: no batches given")
        self.loss = loss or torch.nn.functional.cross_entropy
        named = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
        self.names = [dict(name_map or {}).get(name, name) for name, _ in named]
        self.parameters = [p for _, p in named]
        self.fisher_samples = fisher_samples
        self.train_mode = train_mode
        self._cache: dict[str, dict[str, np.ndarray]] = {}

    def tensors(self, kind: str, names: Sequence[str]) -> dict[str, np.ndarray]:
        """Arrays of `kind` for the requested ONNX names that are parameters of the module."""
        if kind not in self.kinds:
            raise SPAError(f"TorchProvider gives {', '.join(self.kinds)}, not {kind}")
        if kind not in self._cache:
            compute = {"gradients": self._gradients, "squared_gradients": self._squared_gradients,
                       "hessian_gradient": self._hessian_gradient}[kind]
            was_training = self.module.training
            self.module.train(self.train_mode)
            try:
                values = compute()
            finally:
                self.module.train(was_training)
            self._cache[kind] = {name: v.detach().cpu().numpy() for name, v in zip(self.names, values)}
        cached = self._cache[kind]
        return {name: cached[name] for name in names if name in cached}

    def _batch_loss(self, inputs: tuple, targets: Any):
        return self.loss(self.module(*inputs), targets)

    def _gradients(self) -> list:
        totals = [self.torch.zeros_like(p) for p in self.parameters]
        for inputs, targets in self.batches:
            grads = self.torch.autograd.grad(self._batch_loss(inputs, targets), self.parameters, allow_unused=True)
            _accumulate(totals, grads)
        return [t / len(self.batches) for t in totals]

    def _squared_gradients(self) -> list:
        totals = [self.torch.zeros_like(p) for p in self.parameters]
        count = 0
        for inputs, targets in self.batches:
            for i in range(len(targets)):
                if count >= self.fisher_samples:
                    break
                sample = tuple(x[i:i + 1] for x in inputs)
                grads = self.torch.autograd.grad(self._batch_loss(sample, targets[i:i + 1]), self.parameters,
                                                 allow_unused=True)
                _accumulate(totals, [None if g is None else g * g for g in grads])
                count += 1
        return [t / max(count, 1) for t in totals]

    def _hessian_gradient(self) -> list:
        totals = [self.torch.zeros_like(p) for p in self.parameters]
        for inputs, targets in self.batches:
            grads = self.torch.autograd.grad(self._batch_loss(inputs, targets), self.parameters,
                                             create_graph=True, allow_unused=True)
            used = [(g, p) for g, p in zip(grads, self.parameters) if g is not None]
            inner = sum((g * g.detach()).sum() for g, _ in used)
            products = self.torch.autograd.grad(inner, [p for _, p in used], allow_unused=True)
            by_parameter = {id(p): h for (_, p), h in zip(used, products)}
            _accumulate(totals, [by_parameter.get(id(p)) for p in self.parameters])
        return [t / len(self.batches) for t in totals]


def _accumulate(totals: list, values: list) -> None:
    for total, value in zip(totals, values):
        if value is not None:
            total += value.detach()
