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


def _tiny_configs() -> dict[str, tuple[str, str, dict]]:
    """family -> (config class, model class, config arguments): two layers, hidden 32, 4 heads."""
    text = dict(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                max_position_embeddings=64)
    decoder = dict(text, num_key_value_heads=2, use_cache=False)
    return {
        "bert": ("BertConfig", "BertModel", text),
        "roberta": ("RobertaConfig", "RobertaModel", dict(text, pad_token_id=1)),
        "distilbert": ("DistilBertConfig", "DistilBertModel",
                       dict(vocab_size=120, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64)),
        "gpt2": ("GPT2Config", "GPT2LMHeadModel",
                 dict(vocab_size=120, n_embd=32, n_layer=2, n_head=4, n_positions=64, use_cache=False)),
        "llama": ("LlamaConfig", "LlamaForCausalLM", decoder),
        "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", decoder),
        "mistral": ("MistralConfig", "MistralForCausalLM", decoder),
        "phi3": ("Phi3Config", "Phi3ForCausalLM", dict(decoder, pad_token_id=0)),
        "vit": ("ViTConfig", "ViTForImageClassification",
                dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=32,
                     patch_size=8, num_labels=10)),
    }


FAMILIES = tuple(_tiny_configs())


class _FirstOutput:
    """Wraps a transformers model so the exporters see tensors in and one tensor out."""

    def __new__(cls, model, names: tuple[str, ...]):
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *args):
                return self.model(**dict(zip(names, args)))[0]

        return Wrapper()


def build(family: str):
    """The tiny, randomly initialised transformers model of `family` (seeded), in eval mode."""
    import torch
    import transformers

    config_class, model_class, arguments = _tiny_configs()[family]
    torch.manual_seed(0)
    return getattr(transformers, model_class)(getattr(transformers, config_class)(**arguments)).eval()


def example_inputs(family: str, batch: int = 2, length: int = 8) -> dict:
    """Torch inputs for `family`: pixel values for ViT, else token ids and an all-ones attention mask."""
    import torch

    generator = torch.Generator().manual_seed(1)
    if family == "vit":
        return {"pixel_values": torch.randn(batch, 3, 32, 32, generator=generator)}
    ids = torch.randint(0, 120, (batch, length), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


@functools.lru_cache(maxsize=None)
def _export(family: str, exporter: str) -> onnx.ModelProto:
    import torch

    inputs = example_inputs(family)
    names = tuple(inputs)
    model = _FirstOutput(build(family), names)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            program = torch.onnx.export(model, tuple(inputs.values()), dynamo=True, opset_version=18,
                                        input_names=list(names), verbose=False)
            return program.model_proto
        axes = {name: {0: "batch"} if name == "pixel_values" else {0: "batch", 1: "length"} for name in names}
        buffer = io.BytesIO()
        torch.onnx.export(model, tuple(inputs.values()), buffer, dynamo=False, opset_version=17,
                          input_names=list(names), output_names=["output"], dynamic_axes=axes)
    return onnx.load_from_string(buffer.getvalue())


def export(family: str, exporter: str = "torchscript") -> onnx.ModelProto:
    """`build(family)` exported to ONNX: TorchScript at opset 17 with dynamic batch and length, or dynamo at
    opset 18 with the example's fixed shapes. The first model output only."""
    return _copy(_export(family, exporter))
