"""Hugging Face models exported by `optimum` (optimum-onnx), then analysed and pruned by SPA.

optimum-onnx 0.1 needs transformers < 4.58, which SPA's test extra does not use, so the exports run in
a second interpreter (`--optimum-python`): a venv holding optimum-onnx and its transformers, that reads
torch and onnx from SPA's venv through a .pth file (no second torch). Set it up once:

    python3.11 -m venv /work/optenv
    echo "$PWD/.venv/lib/python3.11/site-packages" > /work/optenv/lib/python3.11/site-packages/zz_spa.pth
    /work/optenv/bin/pip install --no-deps optimum-onnx==0.1.0 optimum==2.1.0 transformers==4.57.6 \\
        tokenizers==0.22.2 huggingface_hub==0.36.2

    python benchmarks/optimum_coverage.py --optimum-python /work/optenv/bin/python [family ...]

Each family is a tiny config (2 layers, hidden 32, random weights, no download) saved with
`save_pretrained` and exported with `optimum.exporters.onnx.main_export` (no past key/values). For every
ONNX file optimum writes: the share of non-output channels in prunable groups, then `spa prune
--ratio 0.3` (L2, verified) and the written model run in onnxruntime at a batch and length other than
the export's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

import spa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hf_coverage import coverage  # noqa: E402

# family -> (config class, config keyword arguments, optimum task)
SMALL = {"num_hidden_layers": 2, "num_attention_heads": 4, "hidden_size": 32, "intermediate_size": 64}
FAMILIES = {
    "bert": ("BertConfig", {**SMALL, "vocab_size": 120}, "feature-extraction"),
    "roberta": ("RobertaConfig", {**SMALL, "vocab_size": 120}, "feature-extraction"),
    "distilbert": ("DistilBertConfig", {"n_layers": 2, "n_heads": 4, "dim": 32, "hidden_dim": 64,
                                        "vocab_size": 120}, "feature-extraction"),
    "gpt2": ("GPT2Config", {"n_layer": 2, "n_head": 4, "n_embd": 32, "vocab_size": 120}, "text-generation"),
    "llama": ("LlamaConfig", {**SMALL, "num_key_value_heads": 2, "vocab_size": 120}, "text-generation"),
    "qwen2": ("Qwen2Config", {**SMALL, "num_key_value_heads": 2, "vocab_size": 120}, "text-generation"),
    "mistral": ("MistralConfig", {**SMALL, "num_key_value_heads": 2, "vocab_size": 120}, "text-generation"),
    "phi3": ("Phi3Config", {**SMALL, "num_key_value_heads": 2, "vocab_size": 120, "pad_token_id": 0},
             "text-generation"),
    "vit": ("ViTConfig", {**SMALL, "image_size": 32, "patch_size": 8}, "feature-extraction"),
    "t5": ("T5Config", {"num_layers": 2, "num_heads": 4, "d_model": 32, "d_kv": 8, "d_ff": 64,
                        "vocab_size": 120, "decoder_start_token_id": 0}, "text2text-generation"),
}

EXPORT = """
import json, sys, torch, transformers
from optimum.exporters.onnx import main_export
family, folder, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
config = getattr(transformers, spec["config"])(**spec["kwargs"])
torch.manual_seed(0)
task = spec["task"]
auto = {"feature-extraction": transformers.AutoModel, "text-generation": transformers.AutoModelForCausalLM,
        "text2text-generation": transformers.AutoModelForSeq2SeqLM}[task]
auto.from_config(config).eval().save_pretrained(folder + "/hf")
main_export(folder + "/hf", output=folder + "/onnx", task=task, opset=17, device="cpu", no_post_process=True,
            do_validation=False)
"""


def export(python: str, family: str, folder: Path) -> list[Path]:
    config, kwargs, task = FAMILIES[family]
    spec = json.dumps({"config": config, "kwargs": kwargs, "task": task})
    done = subprocess.run([python, "-c", EXPORT, family, str(folder), spec], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])
    return sorted((folder / "onnx").glob("*.onnx"))


def feeds(model: onnx.ModelProto, batch: int = 3, length: int = 5) -> dict[str, np.ndarray]:
    """Inputs at a batch and length other than the export's dummy ones."""
    rng = np.random.default_rng(0)
    result = {}
    for value in model.graph.input:
        dims = [d.dim_value or (batch if i == 0 else length) for i, d in enumerate(value.type.tensor_type.shape.dim)]
        if value.name == "pixel_values":
            dims = [batch, 3, 32, 32]
        kind = value.type.tensor_type.elem_type
        if kind == onnx.TensorProto.INT64:
            if value.name.endswith("input_ids"):
                result[value.name] = rng.integers(0, 100, dims).astype(np.int64)
            elif value.name == "position_ids":
                result[value.name] = np.broadcast_to(np.arange(dims[-1]), dims).astype(np.int64)
            else:  # attention masks of ones, token type ids of zeros
                result[value.name] = np.full(dims, int("mask" in value.name), np.int64)
        else:
            result[value.name] = rng.standard_normal(dims).astype(np.float32)
    return result


# Image models fix their side through the position embeddings: say it (as --input-shape does).
INPUT_SHAPES = {"vit": {"pixel_values": [2, 3, 32, 32]}}


def prune(path: Path, family: str) -> str:
    model = spa.load(path)
    plan = model.plan("l2", ratio=0.3)
    applied = model.prune(plan, input_shapes=INPUT_SHAPES.get(family))
    out = path.with_name(path.stem + "_pruned.onnx")
    model.save(out)
    written = onnx.load(out)
    onnx.checker.check_model(written, full_check=True)
    session = ort.InferenceSession(out.read_bytes(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, feeds(written))
    finite = all(np.isfinite(o).all() for o in outputs if o.dtype.kind == "f")
    removed = 1 - model.stats().params / spa.load(path).stats().params
    return (f"pruned {removed:.0%} of params, {len(applied.blocked)} groups blocked by verification, "
            f"runs at batch 3 x length 5: {'finite' if finite else 'NOT FINITE'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--optimum-python", required=True, help="an interpreter with optimum-onnx installed")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"{'family':11} {'file':22} {'prunable channels':>18}  result")
    for family in args.families:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as name:
            try:
                files = export(args.optimum_python, family, Path(name))
            except RuntimeError as error:
                print(f"{family:11} {'(export)':22} optimum failed: {str(error)[:100]}")
                continue
            for path in files:
                try:
                    done, total, blocker = coverage(onnx.load(path))
                    share = f"{done}/{total} {100 * done / max(total, 1):5.1f}%"
                    result = prune(path, family)
                except Exception as error:  # noqa: BLE001 - report and go on
                    share, result = "", f"error: {type(error).__name__}: {str(error).splitlines()[0][:100]}"
                    blocker = ""
                print(f"{family:11} {path.name:22} {share:>18}  {result}{'; blocked: ' + blocker if blocker else ''}"
                      f"  ({time.perf_counter() - started:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
