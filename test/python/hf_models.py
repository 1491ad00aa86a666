"""Tiny Hugging Face models built from configs (random weights, no download) and exported to ONNX.

Each export is made once per test session (they take a few seconds) and
returned as a fresh copy.
"""

from __future__ import annotations

import functools
import io
import warnings

import onnx


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    result = onnx.ModelProto()
    result.CopyFrom(model)
    return result


class _LastHiddenState:
    """Wraps a transformers encoder so the exporters see tensors in and one tensor out."""

    def __new__(cls, model):
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask):
                return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

        return Wrapper()


@functools.lru_cache(maxsize=None)
def _bert(batch: int | None) -> onnx.ModelProto:
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64)
    model = _LastHiddenState(BertModel(config).eval())
    ids = torch.randint(0, 120, (batch or 2, 8))
    axes = None if batch else {"input_ids": {0: "batch", 1: "length"}, "attention_mask": {0: "batch", 1: "length"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids, torch.ones_like(ids)), buffer, dynamo=False, opset_version=17,
                          input_names=["input_ids", "attention_mask"], output_names=["hidden"], dynamic_axes=axes)
    return onnx.load_from_string(buffer.getvalue())


def bert(batch: int | None = None) -> onnx.ModelProto:
    """A 2-layer BERT encoder (hidden 32, 4 heads) exported by TorchScript at opset 17; a fixed
    batch when `batch` is given, else dynamic batch and length."""
    return _copy(_bert(batch))


@functools.lru_cache(maxsize=None)
def _llama() -> onnx.ModelProto:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=120, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, use_cache=False)
    model = LlamaForCausalLM(config).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (torch.randint(0, 120, (1, 8)),), dynamo=True, opset_version=18,
                                    input_names=["input_ids"], verbose=False)
    return program.model_proto


def llama() -> onnx.ModelProto:
    """A 2-layer Llama decoder (GQA: 4 query and 2 key/value heads, RoPE, RMSNorm, SwiGLU) exported by
    the dynamo exporter at opset 18, batch 1 and 8 tokens, no KV cache."""
    return _copy(_llama())
