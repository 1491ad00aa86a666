"""Prune an MXNet Gluon block and keep training it with Gluon.

    tools/mxnet-env/create.sh                                 # once: MXNet 1.9.1 needs its own NumPy
    .venv-mxnet/bin/python examples/mxnet_prune_block.py

A small CNN is trained on the 500 MNIST test images bundled with SPA (400
to train, 100 to test), half of its channels are removed with the L1
criterion, and the pruned block (same classes, fewer channels) is
fine-tuned for three epochs with an ordinary Gluon loop.
"""

from __future__ import annotations

import mxnet as mx
import numpy as np
import spa.mxnet
from mxnet.gluon import nn
from spa.data import load_demo_images


class DigitsNet(nn.HybridBlock):
    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.stem = nn.Conv2D(16, 3, padding=1)
            self.stem_bn = nn.BatchNorm()
            self.block = nn.Conv2D(16, 3, padding=1)
            self.pool = nn.MaxPool2D(4)
            self.hidden = nn.Dense(32, activation="relu")  # flattens the (16, 7, 7) features
            self.classes = nn.Dense(10)

    def hybrid_forward(self, F, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        x = x + F.relu(self.block(x))
        return self.classes(self.hidden(self.pool(x)))


def train(net: DigitsNet, images: np.ndarray, labels: np.ndarray, epochs: int) -> None:
    trainer = mx.gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 0.003})
    loss_fn = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    for _ in range(epochs):
        for start in range(0, len(images), 50):
            x, y = mx.nd.array(images[start:start + 50]), mx.nd.array(labels[start:start + 50])
            with mx.autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(len(x))


def accuracy(net: DigitsNet, images: np.ndarray, labels: np.ndarray) -> float:
    return float((net(mx.nd.array(images)).asnumpy().argmax(1) == labels).mean())


def main() -> None:
    mx.random.seed(0)
    images, labels = load_demo_images()
    train_x, train_y, test_x, test_y = images[:400], labels[:400], images[400:], labels[400:]
    net = DigitsNet()
    net.initialize(mx.init.Xavier())
    train(net, train_x, train_y, epochs=25)
    result = spa.mxnet.prune(net, train_x[:2], criterion="l1", ratio=0.5)
    pruned = result.block
    count = lambda block: sum(int(np.prod(p.shape)) for p in block.collect_params().values())
    print(f"parameters {count(net):,} -> {count(pruned):,}; stem channels {net.stem._channels} -> "
          f"{pruned.stem._channels}, hidden {net.hidden._units} -> {pruned.hidden._units}; "
          f"matches the pruned ONNX model to {result.max_difference:.0e}")
    before, after = accuracy(net, test_x, test_y), accuracy(pruned, test_x, test_y)
    train(pruned, train_x, train_y, epochs=3)
    print(f"accuracy: trained {before:.3f}, pruned {after:.3f}, fine-tuned three epochs "
          f"{accuracy(pruned, test_x, test_y):.3f}")


if __name__ == "__main__":
    main()
