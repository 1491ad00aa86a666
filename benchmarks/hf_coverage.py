"""Coupling coverage on Hugging Face transformer families: the share of non-output channels SPA can prune,
for tiny configs (random weights, no download) exported by both torch exporters, and the most common reason
the rest are blocked.

    python benchmarks/hf_coverage.py [family ...]      # needs torch and transformers
"""

from __future__ import annotations

import collections
import re
import sys
import time
import warnings

import onnx

import spa

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "test" / "python"))
import hf_models  # noqa: E402


def coverage(model: onnx.ModelProto) -> tuple[int, int, str]:
    """(prunable channels, non-output channels, the most common blocker)."""
    groups = spa.load(model).coupling_groups()
    reasons: collections.Counter[str] = collections.Counter()
    prunable = total = 0
    for group in groups:
        if any("graph output" in reason for reason in group.reasons):
            continue
        total += group.channels
        if group.prunable:
            prunable += group.channels
            continue
        reason = group.reasons[0] if group.reasons else "no reason"
        reasons[re.sub(r"'[^']*'", "''", reason)[:90]] += group.channels
    common = reasons.most_common(1)
    return prunable, total, f"{common[0][1]} ch: {common[0][0]}" if common else ""


def main(families: list[str]) -> None:
    warnings.simplefilter("ignore")
    print(f"{'family':12} {'exporter':10} {'prunable channels':>18}  most common blocker")
    for family in families:
        for exporter in ("torchscript", "dynamo"):
            started = time.perf_counter()
            try:
                done, total, blocker = coverage(hf_models.export(family, exporter))
            except Exception as error:  # noqa: BLE001 - report and go on
                print(f"{family:12} {exporter:10} error: {type(error).__name__}: {str(error).splitlines()[0][:90]}")
                continue
            share = f"{done}/{total} {100 * done / max(total, 1):5.1f}%"
            print(f"{family:12} {exporter:10} {share:>18}  {blocker}  ({time.perf_counter() - started:.1f} s)",
                  flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or list(hf_models.FAMILIES))
