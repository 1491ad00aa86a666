"""Prune a PaddlePaddle layer and keep training it with Paddle.

    python examples/paddle_prune_layer.py        # needs spa[paddle] and scikit-learn

A small CNN is trained on scikit-learn's 8x8 digits, half of its channels
are removed with the L1 criterion, and the pruned layer (same classes,
fewer channels) is fine-tuned for three epochs with an ordinary Paddle loop.
"""

from __future__ import annotations

import numpy as np
import paddle
import spa.paddle
from sklearn.datasets import load_digits


class DigitsNet(paddle.nn.Layer):
    def __init__(self) -> None:
        super().__init__()
        self.stem = paddle.nn.Conv2D(1, 16, 3, padding=1)
        self.stem_bn = paddle.nn.BatchNorm2D(16)
        self.block = paddle.nn.Conv2D(16, 16, 3, padding=1)
        self.hidden = paddle.nn.Linear(16, 32)
        self.classes = paddle.nn.Linear(32, 10)

    def forward(self, x):
        x = paddle.nn.functional.relu(self.stem_bn(self.stem(x)))
        x = x + paddle.nn.functional.relu(self.block(x))
        x = paddle.mean(x, axis=[2, 3])
        return self.classes(paddle.nn.functional.relu(self.hidden(x)))


def train(net: DigitsNet, images: np.ndarray, labels: np.ndarray, epochs: int) -> None:
    optimizer = paddle.optimizer.Adam(learning_rate=0.01, parameters=net.parameters())
    net.train()
    for _ in range(epochs):
        for start in range(0, len(images), 64):
            x, y = paddle.to_tensor(images[start:start + 64]), paddle.to_tensor(labels[start:start + 64])
            loss = paddle.nn.functional.cross_entropy(net(x), y)
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()


def accuracy(net: DigitsNet, images: np.ndarray, labels: np.ndarray) -> float:
    net.eval()
    with paddle.no_grad():
        return float((net(paddle.to_tensor(images)).numpy().argmax(1) == labels).mean())


def main() -> None:
    paddle.seed(0)
    digits = load_digits()
    images = (digits.images / 16.0).astype("float32")[:, None]
    labels = digits.target.astype("int64")
    train_x, train_y, test_x, test_y = images[:1400], labels[:1400], images[1400:], labels[1400:]
    net = DigitsNet()
    train(net, train_x, train_y, epochs=20)
    result = spa.paddle.prune(net, train_x[:2], criterion="l1", ratio=0.5)
    pruned = result.layer
    count = lambda layer: sum(int(np.prod(p.shape)) for p in layer.parameters())
    print(f"parameters {count(net):,} -> {count(pruned):,}; stem channels {net.stem._out_channels} -> "
          f"{pruned.stem._out_channels}, hidden {net.hidden.weight.shape[1]} -> {pruned.hidden.weight.shape[1]}; "
          f"matches the pruned ONNX model to {result.max_difference:.0e}")
    before, after = accuracy(net, test_x, test_y), accuracy(pruned, test_x, test_y)
    train(pruned, train_x, train_y, epochs=3)
    print(f"accuracy: trained {before:.3f}, pruned {after:.3f}, fine-tuned three epochs "
          f"{accuracy(pruned, test_x, test_y):.3f}")


if __name__ == "__main__":
    main()
