"""Prune a Flax NNX module (exported with jax2onnx) and get the pruned module and parameters back.

    python examples/flax_prune_module.py

A small channels-last CNN with BatchNorm is pruned by half of its channels;
the result is a copy of the module with smaller variables and widths, plus
its parameters by path, ready for an optax training loop.
"""

from __future__ import annotations

import numpy as np
import spa.flax
from flax import nnx


class SmallCNN(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.conv = nnx.Conv(3, 16, (3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(16, rngs=rngs)
        self.hidden = nnx.Linear(16, 32, rngs=rngs)
        self.classes = nnx.Linear(32, 10, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.bn(self.conv(x))).mean(axis=(1, 2))
        return self.classes(nnx.relu(self.hidden(x)))


def main() -> None:
    module = SmallCNN(nnx.Rngs(0))
    module.eval()
    images = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype(np.float32)
    result = spa.flax.prune(module, images, criterion="l2", ratio=0.5)
    shapes = {"/".join(map(str, path)): value.shape for path, value in result.params.items()}
    print(f"conv features {module.conv.out_features} -> {result.module.conv.out_features}, hidden "
          f"{module.hidden.out_features} -> {result.module.hidden.out_features}; matches the pruned ONNX model "
          f"to {result.max_difference:.0e}")
    print("pruned parameter shapes:", shapes)
    print("logits of the pruned module:", np.asarray(result.module(images)).shape)


if __name__ == "__main__":
    main()
