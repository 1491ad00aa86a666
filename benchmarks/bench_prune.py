"""Benchmark: `spa prune` end to end, and the analysis' growth with graph size.

Run from the repository root after installing (`pip install ".[test]"`):

    python benchmarks/bench_prune.py

1. Prune (load + analyse + L1 + prune + save) PyTorch-exported ResNet-50 and
   (when torchvision is installed) ViT-B/16 with real-size weights at ratio
   0.3, in-process and as the `spa prune` CLI, as a ratio to onnx.load +
   onnx.save of the same file (target <= 3x); the CLI also against the same
   load+save run as a Python command (both then pay for a process start).
2. onnxruntime latency of dense vs pruned ResNet-50 at ratios 0.3 and 0.5,
   and the speed-up as a fraction of the MACs reduction.
3. spa-channel-coupling time on synthetic residual conv graphs of 1k, 10k and
   100k nodes: the time per node must stay flat (linear analysis).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

sys.path.insert(0, str(Path(__file__).parent))
from bench_roundtrip import best_of, torch_resnet50  # noqa: E402


def torch_vit_b_16(folder: Path) -> Path | None:
    try:
        import torch
        import torchvision
    except ImportError:
        return None
    path = folder / "vit_b_16.onnx"
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16(weights=None).eval()
    torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), str(path), dynamo=False)
    return path


def prune_timing(path: Path, folder: Path, repeat: int, label: str = "ResNet-50") -> None:
    import spa

    out = folder / "pruned.onnx"

    def baseline():
        onnx.save(onnx.load(str(path)), str(out))

    def api():
        model = spa.load(path)
        model.prune(model.plan(criterion="l1", ratio=0.3))
        model.save(out)

    def cli():
        subprocess.run([sys.executable, "-m", "spa", "prune", str(path), "-o", str(out), "--ratio", "0.3"],
                       check=True, capture_output=True)

    def baseline_process():  # the same load+save as a command, like the CLI pays for its own start
        subprocess.run([sys.executable, "-c", f"import onnx; onnx.save(onnx.load({str(path)!r}), {str(out)!r})"],
                       check=True, capture_output=True)

    base = best_of(repeat, baseline)
    base_process = best_of(repeat, baseline_process)
    print(f"{label} ({path.stat().st_size / 1e6:.0f} MB): load+save {base:.3f} s, as a process {base_process:.3f} s")
    seconds = best_of(repeat, api)
    print(f"  {'spa prune (API)':18s} {seconds:6.3f} s  = {seconds / base:5.2f}x load+save")
    seconds = best_of(repeat, cli)
    print(f"  {'spa prune (CLI)':18s} {seconds:6.3f} s  = {seconds / base:5.2f}x load+save, "
          f"{seconds / base_process:5.2f}x load+save as a process")


def latency(path: Path, runs: int = 30) -> float:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)}
    for _ in range(3):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def speedup(path: Path, folder: Path) -> None:
    import spa

    dense = latency(path)
    dense_macs = spa.load(path).stats().macs
    print(f"onnxruntime latency, dense ResNet-50: {1000 * dense:.1f} ms")
    for ratio in (0.3, 0.5):
        model = spa.load(path)
        model.prune(model.plan(criterion="l1", ratio=ratio))
        pruned_path = folder / f"pruned_{ratio}.onnx"
        model.save(pruned_path)
        pruned = latency(pruned_path)
        macs_ratio = dense_macs / model.stats().macs
        print(f"  ratio {ratio}: MACs /{macs_ratio:.2f}, latency {1000 * pruned:.1f} ms (/{dense / pruned:.2f}), "
              f"speed-up / MACs reduction = {(dense / pruned) / macs_ratio:.2f}")


def synthetic_graph(blocks: int) -> onnx.ModelProto:
    """A chain of residual blocks (Conv, Relu, Conv, Add): 4 nodes per block."""
    rng = np.random.default_rng(0)
    nodes, weights, current = [], [], "x"
    for i in range(blocks):
        for j in (0, 1):
            weights.append(numpy_helper.from_array(rng.standard_normal((8, 8, 1, 1)).astype(np.float32), f"w{i}_{j}"))
        nodes += [helper.make_node("Conv", [current, f"w{i}_0"], [f"c{i}"]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"]),
                  helper.make_node("Conv", [f"r{i}", f"w{i}_1"], [f"d{i}"]),
                  helper.make_node("Add", [current, f"d{i}"], [f"s{i}"])]
        current = f"s{i}"
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 8, 4, 4])],
                              [helper.make_tensor_value_info(current, onnx.TensorProto.FLOAT, [1, 8, 4, 4])], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 26)], ir_version=10)


def analysis_scaling() -> None:
    import spa
    from spa import passes

    print("spa-channel-coupling on synthetic residual graphs (pass alone; with reading the groups in Python):")
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "groups.json"
        for nodes in (1_000, 10_000, 100_000):
            model = spa.load(synthetic_graph(nodes // 4))
            pipeline = f'builtin.module(spa-channel-coupling{{output="{target}"}})'
            alone = best_of(3, lambda: passes.run_pipeline(model.module, pipeline))
            total = best_of(3, lambda: passes.coupling_groups(model.module))
            print(f"  {nodes:>7,} nodes: pass {alone:7.3f} s ({1e6 * alone / nodes:5.1f} us/node); "
                  f"with Python {total:7.3f} s ({1e6 * total / nodes:5.1f} us/node)")


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        resnet = torch_resnet50(folder)
        prune_timing(resnet, folder, repeat=3)
        vit = torch_vit_b_16(folder)
        if vit is not None:
            prune_timing(vit, folder, repeat=3, label="ViT-B/16")
        speedup(resnet, folder)
    analysis_scaling()


if __name__ == "__main__":
    main()
