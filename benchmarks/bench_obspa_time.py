"""OBSPA wall time on ResNet-50 (real size, random weights, BatchNorm kept) on this machine.

    python benchmarks/bench_obspa_time.py [--samples 128]

Times `Model.plan("obspa")` + `Model.prune` at channel ratio 0.3 with
data-free Hessians and with calibration inputs (random images: the time
does not depend on what the pixels show), next to L1 for scale, and splits
OBSPA into Hessians (onnxruntime runs + im2col products), scoring (greedy
OBS over every group) and reconstruction.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import spa
import torch
from spa.obspa import OBSPA, OBSPAOptions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from resnet50 import ResNet50


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
    args = parser.parse_args()
    source = export()
    images = np.random.default_rng(0).standard_normal((args.samples, 3, 224, 224), dtype=np.float32)
    print(f"ResNet-50, {len(source.graph.node)} nodes, ratio 0.3, {args.samples} samples, "
          f"{torch.get_num_threads()} threads")
    for label, options in [("L1", {"criterion": "l1"}),
                           ("OBSPA data-free", {"criterion": "obspa",
                                                "obspa": OBSPAOptions(samples=args.samples, batch_size=8)}),
                           ("OBSPA calibration", {"criterion": "obspa", "calibration": {"image": images},
                                                  "obspa": OBSPAOptions(batch_size=8)})]:
        start = time.perf_counter()
        model = spa.load(source)
        plan = model.plan(ratio=0.3, **options)
        model.prune(plan)
        print(f"{label}: {time.perf_counter() - start:.1f} s (load + plan + prune); {plan.data_used}")
    print("OBSPA data-free phases:", phases(source, None, args.samples))


if __name__ == "__main__":
    main()
