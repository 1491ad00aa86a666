"""Benchmark: SPA import + export against onnx.load + onnx.save of the same file.

Run from the repository root after installing (`pip install ".[test]"`):

    python benchmarks/bench_roundtrip.py

For each model it times, in one run and best of --repeat:
  * baseline: onnx.load + onnx.save (in-process);
  * api:      spa.importer.import_model + write .mlirbc, then read + save_module;
  * api-text: the same through textual .mlir (weights as hex);
  * cli:      `spa import` + `spa export` as subprocesses (includes interpreter start-up);
  * cli-vs-process: the CLI against the baseline also run as two `python -c` processes.
and prints each as a ratio to the in-process baseline (last column: to the
process baseline). The target is <= 3x.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnx

sys.path.insert(0, str(Path(__file__).parent))
LIGHT_RESNET50 = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_resnet50.onnx"


def best_of(repeat: int, action) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def torch_resnet50(folder: Path) -> Path:
    import torch
    from resnet50 import ResNet50

    path = folder / "torch_resnet50.onnx"
    torch.manual_seed(0)
    torch.onnx.export(ResNet50().eval(), (torch.randn(1, 3, 224, 224),), str(path), dynamo=False,
                      input_names=["input"], output_names=["logits"])
    return path


def measure(path: Path, folder: Path, repeat: int) -> dict[str, float]:
    from spa.exporter import save_module
    from spa.importer import import_model
    from spa.ir.files import read_module, write_module

    out = folder / "out.onnx"

    def baseline():
        onnx.save(onnx.load(str(path)), str(out))

    def api(suffix: str):
        def run():
            write_module(import_model(path), folder / f"m{suffix}")
            save_module(read_module(folder / f"m{suffix}"), out)
        return run

    def baseline_process():
        code = f"import onnx; onnx.save(onnx.load({str(path)!r}), {str(out)!r})"
        subprocess.run([sys.executable, "-c", code], check=True)

    def cli():
        spa = [sys.executable, "-m", "spa"]
        subprocess.run([*spa, "import", str(path), "-o", str(folder / "c.mlirbc")], check=True)
        subprocess.run([*spa, "export", str(folder / "c.mlirbc"), "-o", str(out)], check=True)

    results = {"baseline": best_of(repeat, baseline)}
    results["api"] = best_of(repeat, api(".mlirbc"))
    results["api-text"] = best_of(repeat, api(".mlir"))
    results["cli"] = best_of(repeat, cli)
    # The CLI pays two interpreter start-ups: compare it with the baseline run the same way.
    results["cli-vs-process"] = results["cli"] * results["baseline"] / (2 * best_of(repeat, baseline_process))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        models = {"light_resnet50 (placeholder weights)": LIGHT_RESNET50,
                  "torch ResNet-50 (real-size weights)": torch_resnet50(folder)}
        columns = ("api", "api-text", "cli", "cli-vs-process")
        print(f"{'model':40} {'MB':>6} {'load+save s':>12} " + " ".join(f"{k:>14}" for k in columns))
        for label, path in models.items():
            r = measure(path, folder, args.repeat)
            ratios = " ".join(f"{r[k]:6.2f}s {r[k] / r['baseline']:5.2f}x" for k in columns)
            print(f"{label:40} {path.stat().st_size / 1e6:6.1f} {r['baseline']:12.3f} {ratios}")


if __name__ == "__main__":
    main()
