"""Hugging Face models in, pruned Hugging Face models out: `spa.torch.prune` on a PreTrainedModel returns
the same class built from an updated config, which survives save_pretrained/from_pretrained and
generates the same tokens as the pruned ONNX model decoding greedily in onnxruntime."""

from __future__ import annotations

import warnings

import numpy as np
import onnxruntime as ort
import pytest

from spa.errors import SPAError, SPAWarning

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import hf_models  # noqa: E402  (needs torch and transformers)
import spa.torch  # noqa: E402

pytestmark = pytest.mark.zoo  # the full tier only (see pyproject's markers)

DECODERS = ("llama", "qwen2", "mistral", "phi3")


def _prune(family: str, **options):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        return spa.torch.prune(hf_models.build(family), hf_models.example_inputs(family), criterion="l2",
                               fallback=False, **options)


def _onnx_greedy(model, ids: np.ndarray, steps: int) -> np.ndarray:
    """Greedy decoding with the pruned ONNX model (logits for every position, no cache)."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for _ in range(steps):
        logits = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
        ids = np.concatenate([ids, logits[:, -1:].argmax(-1)], axis=1)
    return ids


def _assert_generates_like_onnx(model, onnx_model, ids, steps: int = 3) -> None:
    """Greedy generate() of the reloaded model equals greedy decoding of the pruned ONNX model."""
    with torch.no_grad():
        generated = model.generate(ids, max_new_tokens=steps, do_sample=False, pad_token_id=0)
    np.testing.assert_array_equal(generated.numpy(), _onnx_greedy(onnx_model, ids.numpy(), steps=steps))


def _reloaded(module, directory):
    module.save_pretrained(directory)
    return type(module).from_pretrained(directory).eval()


@pytest.mark.parametrize("family", DECODERS)
def test_decoder_round_trip_generates_like_onnx(family, tmp_path):
    result = _prune(family, ratio=0.5)
    original = hf_models.build(family).config
    config = result.module.config
    assert type(result.module) is type(hf_models.build(family))  # the transformers class, not a torch.fx copy
    assert config.hidden_size < original.hidden_size
    assert config.intermediate_size < original.intermediate_size
    # Whole heads by default: one of the two key/value heads goes with its two query heads.
    assert (config.num_attention_heads, config.num_key_value_heads) == (2, 1)
    reloaded = _reloaded(result.module, tmp_path)
    widths = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim")
    assert {f: getattr(reloaded.config, f) for f in widths} == {f: getattr(config, f) for f in widths}
    ids = torch.tensor([[5, 17, 3, 99, 42]])
    expected = _onnx_greedy(result.onnx_model, ids.numpy(), steps=4)
    with torch.no_grad():
        generated = reloaded.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False,
                                      pad_token_id=0)
        logits = reloaded(ids).logits.numpy()
    np.testing.assert_array_equal(generated.numpy(), expected)
    session = ort.InferenceSession(result.onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(None, {"input_ids": ids.numpy(), "attention_mask": np.ones_like(ids.numpy())})[0]
    np.testing.assert_allclose(logits, onnx_logits, atol=1e-4)


def test_gpt2_keeps_widths_its_config_ties_and_says_so(tmp_path):
    with pytest.warns(SPAWarning, match="GPT2Config has no field for that width alone"):
        result = _prune("gpt2", ratio=0.5)
    config = result.module.config
    assert (config.n_embd, config.n_head) == (32, 4)  # n_embd also sets the attention width
    assert config.n_inner == 64  # half the MLP width, written out from its default of 4 * n_embd
    reloaded = _reloaded(result.module, tmp_path)
    ids = torch.tensor([[1, 2, 3, 4, 5, 6]])
    _assert_generates_like_onnx(reloaded, result.onnx_model, ids)


def test_encoder_round_trip_keeps_the_last_hidden_state(tmp_path):
    result = _prune("bert", ratio=0.5)
    assert result.module.config.intermediate_size == 32
    # Fields BERT does not read are not written into its config (head_dim would be, for Qwen2 or Phi-3).
    assert not hasattr(result.module.config, "head_dim") and not hasattr(result.module.config, "n_inner")
    reloaded = _reloaded(result.module, tmp_path)
    inputs = hf_models.example_inputs("bert", batch=1, length=6)
    with torch.no_grad():
        hidden = reloaded(**inputs).last_hidden_state.numpy()
    session = ort.InferenceSession(result.onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {name: tensor.numpy() for name, tensor in inputs.items()}
    np.testing.assert_allclose(hidden, session.run(None, feeds)[0], atol=1e-4)


def test_layers_pruned_to_different_widths_are_refused_with_a_reason():
    with pytest.raises(SPAError, match="LlamaConfig gives .* its pruned shape"):
        _prune("llama", ratio=0.4, global_ranking=True)


def test_widths_transformers_would_refuse_are_rounded_so_the_model_saves(tmp_path):
    # 20 % of the parameters first plans a hidden size of 27, which LlamaConfig refuses with 4 heads.
    with pytest.warns(SPAWarning, match="planned again with every width a multiple of 4"):
        result = _prune("llama", target_params=0.2)
    config = result.module.config
    assert config.hidden_size < 32 and config.hidden_size % config.num_attention_heads == 0
    before = sum(p.numel() for p in hf_models.build("llama").parameters())
    assert sum(p.numel() for p in result.module.parameters()) <= 0.8 * before
    reloaded = _reloaded(result.module, tmp_path)
    ids = torch.tensor([[7, 8, 9]])
    _assert_generates_like_onnx(reloaded, result.onnx_model, ids)


def test_a_width_the_model_computes_from_is_kept_and_tied_embeddings_follow(tmp_path):
    # Gemma multiplies its embeddings by sqrt(hidden_size) read from the config, so a rebuilt Gemma with a
    # smaller hidden size computes something else: SPA finds that, keeps the hidden size and prunes again.
    import transformers

    torch.manual_seed(0)
    config = transformers.GemmaConfig(vocab_size=120, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, use_cache=False)
    model = transformers.GemmaForCausalLM(config).eval()
    assert model.lm_head.weight is model.model.embed_tokens.weight  # tied
    with pytest.warns(SPAWarning, match="keeping hidden_size and pruning again"):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            result = spa.torch.prune(model, hf_models.example_inputs("llama"), criterion="l2", ratio=0.5)
    pruned = result.module.config
    assert pruned.hidden_size == 32 and pruned.intermediate_size == 32 and pruned.num_key_value_heads == 1
    reloaded = _reloaded(result.module, tmp_path)
    assert reloaded.lm_head.weight is reloaded.model.embed_tokens.weight
    ids = torch.tensor([[3, 1, 4, 1, 5]])
    _assert_generates_like_onnx(reloaded, result.onnx_model, ids)


def test_tied_embeddings_lose_the_same_hidden_channels(tmp_path):
    import transformers

    torch.manual_seed(0)
    config = transformers.LlamaConfig(vocab_size=120, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, use_cache=False,
                                      tie_word_embeddings=True)
    model = transformers.LlamaForCausalLM(config).eval()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        result = spa.torch.prune(model, hf_models.example_inputs("llama"), criterion="l2", ratio=0.5, fallback=False)
    assert result.module.config.hidden_size == 16
    reloaded = _reloaded(result.module, tmp_path)
    assert reloaded.lm_head.weight is reloaded.model.embed_tokens.weight
    assert tuple(reloaded.lm_head.weight.shape) == (120, 16)
    ids = torch.tensor([[9, 8, 7]])
    _assert_generates_like_onnx(reloaded, result.onnx_model, ids)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_models_prune_in_float32_and_come_back_in_their_dtype(dtype, tmp_path):
    """from_pretrained gives many checkpoints in bfloat16, which the TorchScript exporter cannot write
    (it casts to complex128): SPA exports and checks a float32 view of the same tensors, leaves the
    user's model as it was, and rebuilds in the original dtype (rotary frequencies stay float32)."""
    module = hf_models.build("llama").to(getattr(torch, dtype))
    before = {name: tensor.clone() for name, tensor in module.state_dict().items()}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        result = spa.torch.prune(module, hf_models.example_inputs("llama"), criterion="obspa", fallback=False,
                                 ratio=0.5)
    for name, tensor in module.state_dict().items():
        assert tensor.dtype == before[name].dtype and torch.equal(tensor, before[name]), name
    assert {p.dtype for p in result.module.parameters()} == {getattr(torch, dtype)}
    assert result.module.model.rotary_emb.inv_freq.dtype == torch.float32
    assert result.module.config.hidden_size < module.config.hidden_size
    assert result.max_difference < 1e-2  # the float32 view matches the pruned ONNX model
    reloaded = _reloaded(result.module, tmp_path)
    assert next(reloaded.parameters()).dtype == getattr(torch, dtype)
