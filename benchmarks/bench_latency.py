"""Benchmark: how much of the MAC reduction becomes onnxruntime speed-up, and pruning to a latency target.

Run from the repository root after installing (`pip install ".[test]"`):

    python benchmarks/bench_latency.py [--models resnet50,mobilenet_v2,vit_b_16] [--threads 1]

For PyTorch-exported ResNet-50, MobileNetV2 and ViT-B/16 (torchvision, real
sizes; latency does not depend on the weights' values), at batch 1:

1. L1 at channel ratio 0.3 with no rounding and with kept widths rounded to
   multiples of 16: the speed-up divided by the MAC reduction (1.0: latency
   falls exactly as MACs do; the goal is >= 0.9).
2. `--target-latency 0.3`, with the uniform allocation (one ratio everywhere)
   and the global one (channels priced by the latency table, layer times over
   channel counts): the latency reduction reached (goal: 0.30 within 5 %,
   i.e. a pruned latency <= 0.735 of the dense one), the rounding chosen from
   measurements, the MACs removed, and the time the search took.

Each latency is the median of 30 runs after warm-up, with the latency cache
off; each pruned model is timed in alternation with the dense one (run by run),
so that the machine's drift over the minutes a search takes does not enter the
ratios. The dense latency on a model's first line is timed alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).parent))
os.environ["SPA_CACHE_DIR"] = "off"  # every latency measured in this run


def export(name: str, folder: Path) -> Path:
    import torch
    import torchvision

    torch.manual_seed(0)
    path = folder / f"{name}.onnx"
    model = getattr(torchvision.models, name)(weights=None).eval()
    torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), str(path), dynamo=False,
                      input_names=["image"], output_names=["logits"])
    return path


FEEDS = {"image": np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)}


def latency(model: onnx.ModelProto, threads: int) -> float:
    from spa.latency import median_latency

    return median_latency(model, FEEDS, threads, repeats=30, budget=60.0).median_ms


def against_dense(path: Path, model, threads: int) -> tuple[float, float]:
    """(dense ms, pruned ms) with the two timed in alternation (spa.latency.paired_latency)."""
    from spa.latency import paired_latency

    pair = paired_latency(onnx.load(path), model.to_onnx(), FEEDS, threads, repeats=30, budget=120.0)
    return pair.reference_ms, pair.candidate_ms


def efficiency(path: Path, threads: int, round_to: int) -> str:
    import spa

    model = spa.load(path)
    dense_macs = model.stats().macs
    model.prune(model.plan(criterion="l1", ratio=0.3, round_to=round_to), verify=False)
    dense_ms, pruned_ms = against_dense(path, model, threads)
    macs_ratio = dense_macs / model.stats().macs
    speedup = dense_ms / pruned_ms
    return (f"ratio 0.3, round-to {round_to:2d}: MACs /{macs_ratio:.2f}, latency {dense_ms:8.2f} -> {pruned_ms:8.2f} "
            f"ms (/{speedup:.2f}), speed-up / MAC reduction = {speedup / macs_ratio:.2f}")


def latency_target(path: Path, threads: int, allocation: str) -> str:
    import spa

    model = spa.load(path)
    dense_macs = model.stats().macs
    start = time.perf_counter()
    plan = model.plan(criterion="l1", target_latency=0.3, latency_threads=threads, quiet=True,
                      allocation=allocation)
    searched = time.perf_counter() - start
    model.prune(plan, verify=False)
    dense_ms, pruned_ms = against_dense(path, model, threads)
    rounding = plan.data_used.split("multiples of ")[1].split(",")[0] if "multiples of" in plan.data_used else "?"
    macs_removed = 1 - model.stats().macs / dense_macs
    return (f"--target-latency 0.3, {allocation:7s}: latency removed {1 - pruned_ms / dense_ms:.1%} (pruned/dense "
            f"{pruned_ms / dense_ms:.3f}), rounding {rounding}, MACs removed {macs_removed:.1%}, "
            f"search {searched:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,mobilenet_v2,vit_b_16")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--allocations", default="uniform,global",
                        help="allocations for the latency target (global prices channels by the latency table)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models.split(","):
            path = export(name, Path(folder))
            dense_ms = latency(onnx.load(path), args.threads)
            print(f"{name}: dense {dense_ms:.2f} ms (batch 1, {args.threads} thread(s), median of 30)", flush=True)
            for round_to in (1, 16):
                print("  " + efficiency(path, args.threads, round_to), flush=True)
            for allocation in args.allocations.split(","):
                print("  " + latency_target(path, args.threads, allocation), flush=True)


if __name__ == "__main__":
    main()
