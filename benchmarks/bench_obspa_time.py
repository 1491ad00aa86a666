"""OBSPA wall time on ResNet-50 (real size, random weights, BatchNorm kept) on this machine.

    python benchmarks/bench_obspa_time.py [--samples 128] [--runs "v2 calibration" ...] [--by-phase]

Times `Model.plan` + `Model.prune` (verified, as `spa prune` does) at
30 % of MACs removed: L1; OBSPA v1 (uniform allocation, one-shot refit,
Gaussian data-free inputs) and v2 (the defaults: sensitivity allocation,
sequential refit, class inversion + BatchNorm-matched synthesis when data-free), each
data-free and with calibration inputs (random images: the time does not
depend on what the pixels show); and Torch-Pruning 1.6.1 (L2, Taylor and
the corrected Hessian on the same samples, at the uniform ratio that removes
the same MACs). Caches are off, so every table and input is computed. Last, OBSPA
v1 is split into Hessians (onnxruntime runs + im2col products), scoring
(greedy OBS over every group) and reconstruction. `--by-phase` also prints,
for each run, the span of every progress phase it reported.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import spa
import spa.progress
import torch
from spa.obspa import OBSPA, OBSPAOptions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from resnet50 import ResNet50
from tp_importance import corrected_hessian_importance, feed_importance

os.environ["SPA_CACHE_DIR"] = "off"  # time what a first run costs


def export() -> onnx.ModelProto:
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.onnx.export(ResNet50().eval(), (torch.zeros(1, 3, 224, 224),), buffer, dynamo=False,
                      input_names=["image"], dynamic_axes={"image": {0: "n"}}, do_constant_folding=False)
    return onnx.load_from_string(buffer.getvalue())


def phases(source: onnx.ModelProto, calibration, samples: int) -> str:
    model = spa.load(source)
    groups, weights, proto = model.coupling_groups(), model.weights(), model.to_onnx()
    start = time.perf_counter()
    pruner = OBSPA(proto, groups, weights, calibration, OBSPAOptions(samples=samples, batch_size=8))
    hessians = time.perf_counter() - start
    scores = pruner.scores()
    scoring = time.perf_counter() - start - hessians
    plan = spa.select.select_per_group(groups, scores, 0.3)
    pruner.updates(plan)
    reconstruction = time.perf_counter() - start - hessians - scoring
    return f"Hessians {hessians:.1f} s, scoring {scoring:.1f} s, reconstruction {reconstruction:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--runs", nargs="+", metavar="WORDS",
                        help="only the runs whose label contains one of these (default: every run and the phases)")
    parser.add_argument("--by-phase", action="store_true", help="print each run's progress phases and their times")
    args = parser.parse_args()
    source = export()
    images = np.random.default_rng(0).standard_normal((args.samples, 3, 224, 224), dtype=np.float32)
    print(f"ResNet-50, {len(source.graph.node)} nodes, 30 % of MACs removed, {args.samples} samples, "
          f"{torch.get_num_threads()} threads")
    v1 = OBSPAOptions(samples=args.samples, batch_size=8, sequential=False, synthesis="gaussian")
    calibration = {"image": images}
    runs = [("L1", {"criterion": "l1"}),
            ("OBSPA v1 data-free", {"criterion": "obspa", "allocation": "uniform", "obspa": v1}),
            ("OBSPA v1 calibration", {"criterion": "obspa", "allocation": "uniform", "obspa": v1,
                                      "calibration": calibration}),
            ("OBSPA v2 data-free", {"criterion": "obspa", "obspa": OBSPAOptions(samples=args.samples, batch_size=8)}),
            ("OBSPA v2 calibration", {"criterion": "obspa", "obspa": OBSPAOptions(batch_size=8),
                                      "calibration": calibration})]
    runs = [(label, options) for label, options in runs if not args.runs or any(w in label for w in args.runs)]
    for label, options in runs:
        spans: dict[str, list[float]] = {}  # phase -> [first report, last report], from the run's start
        start = time.perf_counter()

        def note(phase: str, done: int, total: int | None) -> None:
            now = time.perf_counter() - start
            spans.setdefault(phase, [now, now])[1] = now

        if args.by_phase:
            spa.progress.set_listener(note)
        model = spa.load(source)
        plan = model.plan(target_flops=0.3, quiet=True, **options)
        model.prune(plan)
        print(f"{label}: {time.perf_counter() - start:.1f} s (load + plan + verified prune); {plan.data_used}",
              flush=True)
        for phase, (first, last) in spans.items():
            print(f"  {phase:55s} {first:7.1f} -> {last:7.1f} s  ({last - first:.1f} s)")
        spa.progress.set_listener(None)
    if args.runs:
        return
    ratio = _tp_ratio_for_macs(torch.from_numpy(images), spa.load(source).stats().macs)
    for kind in ("L2", "Taylor", "Hessian"):
        start = time.perf_counter()
        _tp_pruned(kind, ratio, torch.from_numpy(images))
        print(f"Torch-Pruning {kind}: {time.perf_counter() - start:.1f} s (build + importance + step at ratio "
              f"{ratio:.3f}, which removes 30 % of the MACs)", flush=True)
    print("OBSPA data-free phases:", phases(source, None, args.samples))


def _tp_pruned(kind: str, ratio: float, images: torch.Tensor) -> torch.nn.Module:
    import torch_pruning as tp

    torch.manual_seed(0)
    model = ResNet50().eval()
    importance = {"L2": lambda: tp.importance.GroupMagnitudeImportance(p=2),
                  "Taylor": tp.importance.GroupTaylorImportance, "Hessian": corrected_hessian_importance}[kind]()
    pruner = tp.pruner.MetaPruner(model, torch.zeros(1, 3, 224, 224), importance=importance, pruning_ratio=ratio,
                                  ignored_layers=[model.fc], global_pruning=False)
    labels = torch.zeros(len(images), dtype=torch.long)
    feed_importance(kind, importance, model, images, labels, 16)
    pruner.step()
    return model


def _tp_ratio_for_macs(images: torch.Tensor, dense_macs: int, target: float = 0.3) -> float:
    """Torch-Pruning's smallest uniform ratio (to 1/64 of 0.6) that removes `target` of the MACs, counted by
    SPA (bisected with L2: a uniform ratio removes the same MACs whatever the importance)."""
    low, high = 0.0, 0.6
    for _ in range(6):
        middle = (low + high) / 2
        buffer = io.BytesIO()
        torch.onnx.export(_tp_pruned("L2", middle, images).eval(), (torch.zeros(1, 3, 224, 224),), buffer,
                          dynamo=False, input_names=["image"])
        if 1 - spa.load(onnx.load_from_string(buffer.getvalue())).stats().macs / dense_macs >= target:
            high = middle
        else:
            low = middle
    return high


if __name__ == "__main__":
    main()
