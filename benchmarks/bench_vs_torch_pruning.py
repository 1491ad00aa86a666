"""Benchmark: SPA against Torch-Pruning 1.6.1 on the torchvision zoo, ratio 0.3.

Run from the repository root after `pip install ".[test]" torch-pruning==1.6.1`:

    python benchmarks/bench_vs_torch_pruning.py [MODEL ...]

For every architecture (random weights), in a subprocess each (so that a
crash or memory blow-up of one tool does not stop the run; 8 GiB and 10 min
per attempt):
  * Torch-Pruning: DependencyGraph + MagnitudePruner (GroupMagnitudeImportance,
    p=2, pruning_ratio=0.3, 1000-way classifier ignored): time of graph build +
    step, and whether the pruned module still runs with the same output shape;
  * SPA: spa.load + plan (L2, ratio 0.3) + prune + save of the ONNX export
    (export not timed): time, whether onnxruntime runs the pruned model
    with the same output shape, and how many channel groups are prunable.
Prints one row per model and the number each tool pruned successfully.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap

MODELS = ["alexnet", "vgg16_bn", "resnet18", "resnet50", "resnext50_32x4d", "densenet121", "squeezenet1_1",
          "googlenet", "inception_v3", "mobilenet_v2", "mobilenet_v3_large", "mnasnet1_0", "shufflenet_v2_x1_0",
          "efficientnet_b0", "regnet_y_400mf", "convnext_tiny", "vit_b_16", "swin_t", "maxvit_t"]

COMMON = """
import io, json, sys, time, warnings
warnings.filterwarnings("ignore")
import torch, torchvision
name = sys.argv[1]
options = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
torch.manual_seed(0)
model = getattr(torchvision.models, name)(weights=None, **options).eval()
size = 299 if name == "inception_v3" else 224
example = torch.randn(1, 3, size, size)
with torch.no_grad():
    reference_shape = tuple(model(example).shape)
"""

TORCH_PRUNING = COMMON + """
import torch_pruning as tp
# The classifier (1000 outputs, a Linear or, in SqueezeNet, a Conv) keeps its outputs.
classifier = [m for m in model.modules() if getattr(m, "out_features", getattr(m, "out_channels", 0)) == 1000]
start = time.perf_counter()
pruner = tp.pruner.MagnitudePruner(model, example, importance=tp.importance.GroupMagnitudeImportance(p=2),
                                   pruning_ratio=0.3, ignored_layers=classifier)
pruner.step()
seconds = time.perf_counter() - start
with torch.no_grad():
    ok = tuple(model(example).shape) == reference_shape
print(json.dumps({"seconds": seconds, "ok": ok}))
"""

SPA = COMMON + """
import tempfile, numpy as np, onnxruntime as ort, spa
buffer = io.BytesIO()
torch.onnx.export(model, (example,), buffer, dynamo=False)
with tempfile.TemporaryDirectory() as folder:
    source, target = folder + "/m.onnx", folder + "/p.onnx"
    open(source, "wb").write(buffer.getvalue())
    start = time.perf_counter()
    pruned = spa.load(source)
    groups = pruned.coupling_groups()
    pruned.prune(pruned.plan(criterion="l2", ratio=0.3))
    pruned.save(target)
    seconds = time.perf_counter() - start
    session = ort.InferenceSession(target, providers=["CPUExecutionProvider"])
    output = session.run(None, {session.get_inputs()[0].name: example.numpy()})[0]
print(json.dumps({"seconds": seconds, "ok": tuple(output.shape) == reference_shape,
                  "groups": f"{sum(g.prunable for g in groups)}/{len(groups)} groups"}))
"""


def limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))


def attempt(script: str, name: str) -> str:
    try:
        result = subprocess.run([sys.executable, "-c", textwrap.dedent(script), name], capture_output=True,
                                text=True, timeout=600, preexec_fn=limit_memory)
    except subprocess.TimeoutExpired:
        return "timeout"
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["crashed"])[-1]
        return "fail: " + last[:60]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    if not outcome["ok"]:
        return "wrong output shape"
    return f"{outcome['seconds']:.2f} s" + (f" ({outcome['groups']})" if "groups" in outcome else "")


def main() -> None:
    models = sys.argv[1:] or MODELS
    print(f"{'model':20} {'Torch-Pruning 1.6.1':>45} {'SPA (prunable groups)':>32}")
    successes = {"tp": 0, "spa": 0}
    for name in models:
        tp, ours = attempt(TORCH_PRUNING, name), attempt(SPA, name)
        successes["tp"] += tp.endswith(" s")
        successes["spa"] += " s" in ours
        print(f"{name:20} {tp:>45} {ours:>32}", flush=True)
    print(f"pruned successfully: Torch-Pruning {successes['tp']}/{len(models)}, SPA {successes['spa']}/{len(models)}")


if __name__ == "__main__":
    main()
