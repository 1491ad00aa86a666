"""Benchmark: pruning a Llama-shaped decoder over 2 GB (external data) by 20 % of its parameters.

Run from the repository root after installing (`pip install ".[test]"`):

    python benchmarks/bench_llm_scale.py                  # ~1.1B parameters (TinyLlama's shape), 4.4 GB
    python benchmarks/bench_llm_scale.py --scale medium   # ~0.2B, 0.8 GB
    python benchmarks/bench_llm_scale.py --scale small    # ~0.05B, a quick rehearsal

1. A child process builds `LlamaForCausalLM` from a config with random weights
   (no download) and exports it with the TorchScript exporter to ONNX with
   external data (logits only, dynamic batch and length, no KV cache).
2. For each method (L2, and OBSPA calibrated on 128 token sequences), a fresh
   child process loads the model into SPA, plans 20 % of the parameters away
   (uniform allocation), prunes, verifies and saves with external data. It
   prints the time of each phase and its own peak resident memory, which is
   compared with the model's size on disk (target: peak <= 2x the model).
   SPA's progress displays show on stderr while it works.
3. The pruned model is run in onnxruntime on a few tokens to show it is valid.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {  # hidden, intermediate, layers, heads, kv heads, vocab
    "1b": (2048, 5632, 22, 32, 4, 32000),
    "medium": (1024, 2816, 12, 16, 4, 32000),
    "small": (768, 2048, 6, 12, 4, 8000),
}


def _Logits(model):
    """`model` called by name, returning the logits (the exporter would trace keyword defaults as inputs)."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    return Logits()


def build(folder: Path, scale: str) -> Path:
    """The random-weight model exported to `folder`/llama.onnx (+ external data); run in a child."""
    import torch
    import transformers

    hidden, intermediate, layers, heads, kv_heads, vocab = SHAPES[scale]
    config = transformers.LlamaConfig(hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                                      num_attention_heads=heads, num_key_value_heads=kv_heads, vocab_size=vocab,
                                      max_position_embeddings=2048, use_cache=False, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    ids = torch.randint(0, vocab, (1, 16))
    path = folder / "llama.onnx"
    axes = {0: "batch", 1: "length"}
    torch.onnx.export(_Logits(model), (ids, torch.ones_like(ids)), str(path), dynamo=False,
                      input_names=["input_ids", "attention_mask"], output_names=["logits"],
                      dynamic_axes={"input_ids": axes, "attention_mask": axes}, do_constant_folding=False)
    print(json.dumps({"params": sum(p.numel() for p in model.parameters())}))
    return path


def prune(path: Path, out: Path, method: str, vocab: int) -> None:
    """Load, plan, prune (verified) and save; prints phase times and peak memory as JSON (in a child)."""
    import numpy as np

    import spa

    times = {}
    start = time.perf_counter()
    model = spa.load(path)
    times["load"] = time.perf_counter() - start
    peaks = {"load": _peak()}
    before = model.stats().params
    options = {"criterion": "l2"}
    if method == "obspa":
        ids = np.random.default_rng(0).integers(0, vocab, (128, 32))
        options = {"criterion": "obspa", "calibration": {"input_ids": ids, "attention_mask": np.ones_like(ids)}}
    start = time.perf_counter()
    plan = model.plan(target_params=0.2, allocation="uniform", **options)
    times["plan"] = time.perf_counter() - start
    peaks["plan"] = _peak()
    start = time.perf_counter()
    model.prune(plan)
    times["prune+verify"] = time.perf_counter() - start
    peaks["prune+verify"] = _peak()
    start = time.perf_counter()
    model.save(out, external_data=True)
    times["save"] = time.perf_counter() - start
    peaks["save"] = _peak()
    print(json.dumps({"times": times, "peak": peaks["save"], "peaks": peaks, "params_before": before, "params_after": model.stats().params,
                      "data_used": plan.data_used}))


def _peak() -> int:
    """This process's peak resident memory so far, in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _child(*arguments: str) -> dict:
    result = subprocess.run([sys.executable, __file__, *arguments], stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def _onnx_bytes(path: Path) -> int:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    data = {entry.value for t in model.graph.initializer for entry in t.external_data if entry.key == "location"}
    return path.stat().st_size + sum((path.parent / name).stat().st_size for name in data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SHAPES), default="1b")
    parser.add_argument("--methods", default="l2,obspa")
    parser.add_argument("--phase", choices=["build", "prune"], help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase == "build":
        build(args.path, args.scale)
        return
    if args.phase == "prune":
        prune(args.path, args.out, args.method, SHAPES[args.scale][-1])
        return
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        start = time.perf_counter()
        params = _child("--phase", "build", "--scale", args.scale, "--path", str(folder))["params"]
        path = folder / "llama.onnx"
        size = _onnx_bytes(path)
        print(f"Llama-shaped model ({args.scale}): {params / 1e9:.2f}B parameters, {size / 2**30:.2f} GiB on disk "
              f"(built and exported in {time.perf_counter() - start:.0f} s)")
        for method in args.methods.split(","):
            out = folder / method / "pruned.onnx"
            out.parent.mkdir()
            start = time.perf_counter()
            report = _child("--phase", "prune", "--scale", args.scale, "--path", str(path), "--out", str(out),
                            "--method", method)
            total = time.perf_counter() - start
            removed = 1 - report["params_after"] / report["params_before"]
            phases = ", ".join(f"{k} {v:.0f} s (peak {report['peaks'][k] / size:.2f}x)"
                               for k, v in report["times"].items())
            print(f"{method}: {removed:.1%} of parameters removed in {total:.0f} s ({phases}); peak memory "
                  f"{report['peak'] / 2**30:.2f} GiB = {report['peak'] / size:.2f}x the model (target <= 2x); "
                  f"pruned model {_onnx_bytes(out) / 2**30:.2f} GiB; data: {report['data_used']}")
            _run_pruned(out)


def _run_pruned(path: Path) -> None:
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ids = np.arange(1, 9, dtype=np.int64)[None]
    logits = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
    print(f"  the pruned model runs in onnxruntime: logits {list(logits.shape)}, finite {np.isfinite(logits).all()}")


if __name__ == "__main__":
    main()
