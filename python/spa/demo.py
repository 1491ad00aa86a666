"""`spa demo`: prune a bundled trained model, with nothing to pass.

The model is a small CNN trained on MNIST (99.05 % on the test set; see
spa/data/README.md), pruned by SPA at channel ratio 0.3 with the L1
criterion and no fine-tuning. It reports accuracy on 500 bundled test
images, parameters, MACs and onnxruntime latency before and after.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from spa.errors import SPAError

RATIO = 0.3


def _session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1  # steadier latency numbers
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _evaluate(path: Path, images: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy on the images, median latency in ms of a batch-1 run)."""
    session = _session(path)
    name = session.get_inputs()[0].name
    predictions = session.run(None, {name: images})[0].argmax(axis=1)
    sample = images[:1]
    timings = []
    for _ in range(50):
        start = time.perf_counter()
        session.run(None, {name: sample})
        timings.append(time.perf_counter() - start)
    return float((predictions == labels).mean()), 1000 * float(np.median(timings))


def run_demo(out=print) -> None:
    """Prune the bundled MNIST CNN and print what changed."""
    import spa
    from spa.data import demo_model_path, load_demo_images
    from spa.report import change_line, stats_line

    source = demo_model_path()
    if not source.is_file():
        raise SPAError(f"{source}: the bundled example is missing (reinstall spa)")
    images, labels = load_demo_images()
    model = spa.load(source)
    before = model.stats()
    start = time.perf_counter()
    plan = model.plan(criterion="l1", ratio=RATIO)
    model.prune(plan)
    elapsed = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        pruned_path = Path(folder) / "pruned.onnx"
        model.save(pruned_path)
        accuracy_before, latency_before = _evaluate(source, images, labels)
        accuracy_after, latency_after = _evaluate(pruned_path, images, labels)
    after = model.stats()
    out(f"model: {source.name} (MNIST CNN), pruned with L1 at channel ratio {RATIO}, no fine-tuning")
    out(f"analysis + selection + pruning: {elapsed:.2f} s, {plan.removed_count()} channels removed")
    out(stats_line("before", before) + f"   accuracy {accuracy_before:6.1%}   latency {latency_before:.3f} ms")
    out(stats_line("after", after) + f"   accuracy {accuracy_after:6.1%}   latency {latency_after:.3f} ms")
    out(change_line(before, after))
    out(f"(accuracy on {len(labels)} bundled MNIST test images; latency: onnxruntime, batch 1, one thread)")
