"""Benchmark: what verification on write costs.

Run from the repository root after installing (`pip install ".[test]"`):

    python benchmarks/bench_verify.py

For PyTorch-exported ResNet-50 and ViT-B/16 with real-size weights, in one
run: `spa prune --ratio 0.3` as a command with and without verification
(`--no-verify`), the same with OBSPA's weight corrections left out, and
onnx.load + onnx.save of the file run as a command. Targets: verification
adds at most 50 % to the prune, and the verified prune stays within 3x of
load + save (process start included on both sides). Then the in-process
split of the verification into its parts.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_prune import torch_vit_b_16  # noqa: E402
from bench_roundtrip import best_of, torch_resnet50  # noqa: E402


def _command(*args: str) -> None:
    subprocess.run([sys.executable, *args], check=True, capture_output=True)


def compare(path: Path, folder: Path, label: str, repeat: int) -> None:
    out = str(folder / "pruned.onnx")
    baseline = best_of(repeat, lambda: _command("-c", f"import onnx; onnx.save(onnx.load({str(path)!r}), {out!r})"))
    plain = best_of(repeat, lambda: _command("-m", "spa", "prune", str(path), "-o", out, "--no-verify"))
    verified = best_of(repeat, lambda: _command("-m", "spa", "prune", str(path), "-o", out))
    print(f"{label} ({path.stat().st_size / 1e6:.0f} MB), best of {repeat}:")
    print(f"  load+save as a process      {baseline:6.2f} s")
    print(f"  spa prune --no-verify        {plain:6.2f} s")
    print(f"  spa prune (verified)         {verified:6.2f} s")
    print(f"  verification cost / prune    {(verified - plain) / plain:6.2f}   (target <= 0.50)")
    print(f"  verified prune / load+save   {verified / baseline:6.2f}x  (target <= 3x)")


def breakdown(path: Path) -> None:
    """Where the verification's time goes, in-process (one run)."""
    import spa
    from spa.verify import generated_inputs, verified_prune
    from spa.verify.checks import Runner, check_validity

    model = spa.load(path)
    plan = model.plan("l1", ratio=0.3)
    start = time.perf_counter()
    trial = model.trial()
    setup = time.perf_counter() - start
    start = time.perf_counter()
    pruned, _, report = verified_prune(trial, plan)
    total = time.perf_counter() - start
    start = time.perf_counter()
    check_validity(pruned.model)
    checker = time.perf_counter() - start
    start = time.perf_counter()
    Runner(pruned.model).run(generated_inputs(pruned.model))
    runtime = time.perf_counter() - start
    print(f"  in-process: trial set-up {setup:.2f} s (export of the original, probe run), "
          f"{report.trials} trial(s) {total:.2f} s, of which the checker ~{checker:.2f} s and one onnxruntime "
          f"load + run ~{runtime:.2f} s")


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        resnet = torch_resnet50(folder)
        compare(resnet, folder, "ResNet-50", repeat=3)
        breakdown(resnet)
        vit = torch_vit_b_16(folder)
        if vit is not None:
            compare(vit, folder, "ViT-B/16", repeat=2)
            breakdown(vit)


if __name__ == "__main__":
    main()
