"""Prune a PyTorch module and keep training it: the shortest path through spa.torch.

    python examples/torch_prune_module.py

torchvision's ResNet-18 (random weights: nothing is downloaded) is pruned by
30 % of the channels of every prunable group with the L2 criterion. The
result is a `torchvision.models.ResNet` again, with fewer channels, that the
usual training loop takes as it is.
"""

from __future__ import annotations

import spa.torch
import torch
import torchvision


def main() -> None:
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    example = torch.randn(1, 3, 64, 64)
    result = spa.torch.prune(net, example, criterion="l2", ratio=0.3, round_to=8)
    pruned = result.module
    before = sum(p.numel() for p in net.parameters())
    after = sum(p.numel() for p in pruned.parameters())
    print(f"{type(pruned).__name__}: {before:,} -> {after:,} parameters ({after / before:.0%}); "
          f"removed {result.plan.removed_count()} channels; matches the pruned ONNX model to "
          f"{result.max_difference:.0e}")
    print(f"layer1[0].conv1: {pruned.layer1[0].conv1}")

    optimizer = torch.optim.SGD(pruned.parameters(), lr=0.01, momentum=0.9)
    images, labels = torch.randn(8, 3, 64, 64), torch.randint(0, 10, (8,))
    pruned.train()
    for step in range(3):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(pruned(images), labels)
        loss.backward()
        optimizer.step()
        print(f"fine-tuning step {step}: loss {loss.item():.3f}")


if __name__ == "__main__":
    main()
