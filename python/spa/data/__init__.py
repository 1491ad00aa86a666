"""Demo assets bundled with spa: a small trained MNIST CNN and labelled test images.

The files are made by tools/make-demo-assets/make_mnist_assets.py; README.md in
this folder says where they come from and how accurate the model is.

Input contract of the model: "image" is float32 (N, 1, 28, 28) raw pixels in
[0, 1] (uint8 / 255); the (x - 0.1307) / 0.3081 normalisation is inside the
graph. Output "logits" is float32 (N, 10); the prediction is its argmax.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DATA_DIR = Path(__file__).resolve().parent
DEMO_MODEL = "mnist_cnn.onnx"
DEMO_IMAGES = "mnist_test_500.npz"

__all__ = ["DATA_DIR", "demo_model_path", "load_demo_images"]


def demo_model_path() -> Path:
    """Return the path of the bundled trained MNIST CNN (ONNX, opset 17).

    The model maps "image", float32 (N, 1, 28, 28) raw pixels in [0, 1], to
    "logits", float32 (N, 10); N is dynamic. Its initializers carry the PyTorch
    parameter names (features.0.weight, features.3.weight, classifier.0.weight,
    classifier.2.weight and their biases).

    Raises FileNotFoundError if the file is not installed.
    """
    path = DATA_DIR / DEMO_MODEL
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; regenerate it with tools/make-demo-assets/make_mnist_assets.py")
    return path


def load_demo_images() -> tuple[np.ndarray, np.ndarray]:
    """Return the 500 bundled MNIST test images and their labels.

    These are the first 500 images of the MNIST test split, already in the
    scale the demo model expects:

    - images: float32 array of shape (500, 1, 28, 28), raw pixels uint8 / 255
      in [0, 1] (not normalised: the model does that itself);
    - labels: int64 array of shape (500,), digits 0-9.

    Raises FileNotFoundError if the file is not installed.
    """
    path = DATA_DIR / DEMO_IMAGES
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; regenerate it with tools/make-demo-assets/make_mnist_assets.py")
    with np.load(path) as bundle:
        return bundle["images"], bundle["labels"]
