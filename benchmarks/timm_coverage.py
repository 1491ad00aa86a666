"""Coupling coverage on timm architectures: prunable groups per model, exported with a dynamic batch (as
spa.torch.prune exports) and with a static one, and the most common reason a group is blocked.

    python benchmarks/timm_coverage.py [model ...]      # needs torch and timm; random weights, no download
"""

from __future__ import annotations

import collections
import io
import re
import sys
import time
import warnings

import onnx
import torch

import spa
import spa.torch

MODELS = ["resnet18", "efficientnet_b0", "mobilenetv3_small_100", "regnetx_002", "ghostnet_100", "dla34",
          "densenet121", "inception_v3", "resnest14d", "convnext_atto", "fastvit_t8", "poolformer_s12",
          "mobilevit_xxs", "deit_tiny_patch16_224", "cait_xxs24_224", "pvt_v2_b0", "xcit_nano_12_p16_224",
          "swin_tiny_patch4_window7_224", "maxvit_nano_rw_256", "coatnet_nano_rw_224", "efficientvit_b0",
          "levit_128s"]


def coverage(model: onnx.ModelProto) -> tuple[int, int, str]:
    groups = spa.load(model).coupling_groups()
    reasons = collections.Counter()
    for group in groups:
        if not group.prunable:
            first = group.details().splitlines()[0]
            reason = first[first.find("(") + 1:first.rfind(")")].split(";")[0]
            reasons[re.sub(r"'[^']*'", "", reason).strip()] += 1
    reasons.pop("graph output", None)
    common = reasons.most_common(1)
    return sum(g.prunable for g in groups), len(groups), f"{common[0][1]}x {common[0][0]}" if common else ""


def main(names: list[str]) -> None:
    warnings.simplefilter("ignore")
    import timm

    print(f"{'model':32} {'dynamic batch':>14} {'static batch':>13}  most common blocker (dynamic batch)")
    for name in names:
        started = time.perf_counter()
        torch.manual_seed(0)
        net = timm.create_model(name, pretrained=False, num_classes=10).eval()
        example = torch.randn(1, *net.default_cfg.get("input_size", (3, 224, 224)))
        try:
            dynamic = coverage(spa.torch.export(net, example))
            buffer = io.BytesIO()
            torch.onnx.export(net, (example,), buffer, dynamo=False, do_constant_folding=False)
            static = coverage(onnx.load_from_string(buffer.getvalue()))
        except Exception as error:  # noqa: BLE001 - report and go on
            print(f"{name:32} error: {type(error).__name__}: {str(error).splitlines()[0][:80]}")
            continue
        print(f"{name:32} {dynamic[0]:>6}/{dynamic[1]:<7} {static[0]:>6}/{static[1]:<6}  {dynamic[2][:70]}"
              f"  ({time.perf_counter() - started:.1f} s)", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or MODELS)
