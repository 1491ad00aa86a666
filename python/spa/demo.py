"""`spa demo`: prune a bundled trained model, with nothing to pass, and show what it gains.

The model is a small CNN trained on MNIST (99.05 % on the test set; see
spa/data/README.md). SPA removes half the channels of every prunable group
with OBSPA, calibrated on 100 of the 500 bundled test images, and no
fine-tuning; accuracy is measured on the other 400. Latency is onnxruntime's
on this machine at a batch large enough that the model's work, not the
runtime's fixed cost, is what is timed. It writes demo-report.html (see
spa report) in the current folder, or in a temporary one when that is not
writable.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from spa.errors import SPAError

RATIO = 0.5
CALIBRATION = 100  # images; the rest are for accuracy
BATCH = 256
REPORT = "demo-report.html"


def _accuracy(model, images: np.ndarray, labels: np.ndarray) -> float:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    predictions = session.run(None, {session.get_inputs()[0].name: images})[0].argmax(axis=1)
    return float((predictions == labels).mean())


def _report_path() -> Path:
    here = Path.cwd()
    if os.access(here, os.W_OK):
        return here / REPORT
    return Path(tempfile.mkdtemp(prefix="spa-demo-")) / REPORT


def run_demo(out=print) -> None:
    """Prune the bundled MNIST CNN, print what changed and write its report."""
    import spa
    from spa.data import demo_model_path, load_demo_images
    from spa.exporter import write_text_atomically
    from spa.groups import plan_to_dict
    from spa.html_report import render_page, report_data
    from spa.report import change_line, stats_line

    source = demo_model_path()
    if not source.is_file():
        raise SPAError(f"{source}: the bundled example is missing (reinstall spa)")
    images, labels = load_demo_images()
    original, model = spa.load(source), spa.load(source)
    start = time.perf_counter()
    plan = model.plan(criterion="obspa", ratio=RATIO, calibration={"image": images[:CALIBRATION]}, quiet=True)
    applied = model.prune(plan)
    elapsed = time.perf_counter() - start
    batch = np.resize(images, (BATCH, *images.shape[1:]))
    contents = report_data(original, model, plan_to_dict(applied, original.coupling_groups()),
                           input_shapes={"image": batch.shape})
    report = _report_path()
    write_text_atomically(report, render_page(contents))
    held_out = images[CALIBRATION:], labels[CALIBRATION:]
    accuracy = [_accuracy(m.to_onnx(), *held_out) for m in (original, model)]
    latency = contents["latency"]
    out(f"model: {source.name} (MNIST CNN), {RATIO:.0%} of each group's channels removed by OBSPA "
        f"(calibrated on {CALIBRATION} images), no fine-tuning")
    out(f"analysis + OBSPA + pruning + verification: {elapsed:.1f} s, {applied.removed_count()} channels removed")
    for label, m, acc, key in (("before", original, accuracy[0], "before"), ("after", model, accuracy[1], "after")):
        out(stats_line(label, m.stats()) + f"   accuracy {acc:6.1%}   latency {latency[key]['median_ms']:.2f} ms")
    out(change_line(original.stats(), model.stats()) +
        f"   speed-up {latency['before']['median_ms'] / latency['after']['median_ms']:.2f}x")
    out(f"(accuracy on the other {len(held_out[1])} bundled MNIST test images; latency: onnxruntime on this "
        f"machine, batch {latency['batch']}, {latency['threads']} thread, median of {latency['repeats']} runs each, "
        f"before and after timed in alternation)")
    out(f"report: {report}  (open it in a browser)")
