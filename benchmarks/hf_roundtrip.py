"""Benchmark: Hugging Face models through `spa.torch.prune` and back, family by family.

Run from the repository root after installing (`pip install ".[test]"`):

    python benchmarks/hf_roundtrip.py

For each family of test/python/hf_models.py (tiny random configs, no
download), prune half of every width with L2 and print: the config's widths
before and after, the widths kept because the family's config cannot express
them alone, the parameters removed, whether save_pretrained/from_pretrained
reloads the model, and the largest difference between the reloaded model and
the pruned ONNX model in onnxruntime.
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "test" / "python"))
import hf_models  # noqa: E402

WIDTHS = ("hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads", "head_dim", "n_inner",
          "hidden_dim")


def _widths(config) -> str:
    return ", ".join(f"{name} {getattr(config, name)}" for name in WIDTHS if isinstance(getattr(config, name, None), int))


def main() -> None:
    import torch

    import spa.torch
    from spa.errors import SPAWarning

    for family in hf_models.FAMILIES:
        model, inputs = hf_models.build(family), hf_models.example_inputs(family)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SPAWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            result = spa.torch.prune(model, inputs, criterion="l2", ratio=0.5, fallback=False)
        held = [str(w.message).split(": ")[0].removeprefix("kept ") for w in caught
                if issubclass(w.category, SPAWarning) and str(w.message).startswith("kept")]
        before = sum(p.numel() for p in model.parameters())
        after = sum(p.numel() for p in result.module.parameters())
        with tempfile.TemporaryDirectory() as folder:
            result.module.save_pretrained(folder)
            reloaded = type(model).from_pretrained(folder).eval()
        with torch.no_grad():
            output = reloaded(**inputs)[0].numpy()
        session = ort.InferenceSession(result.onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
        feeds = {name: tensor.numpy() for name, tensor in inputs.items()
                 if name in {i.name for i in session.get_inputs()}}
        difference = float(np.abs(output - session.run(None, feeds)[0]).max())
        print(f"{family}: {_widths(model.config)} -> {_widths(result.module.config)}; "
              f"{1 - after / before:.0%} of parameters removed; reloaded, max |HF - ONNX| {difference:.1e}; "
              f"kept: {'; '.join(held) or 'nothing'}")


if __name__ == "__main__":
    main()
