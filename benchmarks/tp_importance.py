"""Torch-Pruning importances for the benchmarks: its Hessian corrected, and one way to feed data.

Torch-Pruning 1.6.1's `accumulate_grad` checks `name in` a dict keyed by
parameter, so every sample overwrites the last; this subclass adds them up.
"""

from __future__ import annotations


def corrected_hessian_importance():
    """A GroupHessianImportance that accumulates every sample's squared gradient."""
    import torch_pruning as tp

    class Corrected(tp.importance.GroupHessianImportance):
        def accumulate_grad(self, model):
            for _, param in model.named_parameters():
                if param.grad is not None:
                    square = param.grad.data.clone().pow(2)
                    if param in self._accu_grad:
                        self._accu_grad[param] += square
                        self._counter[param] += 1
                    else:
                        self._accu_grad[param] = square
                        self._counter[param] = 1
    return Corrected()


def feed_importance(kind: str, importance, model, images, labels, batch: int = 32) -> None:
    """Give a Taylor importance the gradient of the batch loss, and a Hessian one every sample's
    squared gradient; other kinds need nothing."""
    import torch

    if kind.startswith("Taylor"):
        model.zero_grad()
        for start in range(0, len(images), batch):
            loss = torch.nn.functional.cross_entropy(model(images[start:start + batch]), labels[start:start + batch])
            loss.backward()
    elif kind.startswith("Hessian"):
        importance.zero_grad()
        for i in range(len(images)):
            model.zero_grad()
            torch.nn.functional.cross_entropy(model(images[i:i + 1]), labels[i:i + 1]).backward()
            importance.accumulate_grad(model)
