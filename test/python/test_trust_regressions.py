"""The models a new user's first tries broke: Hugging Face exports, fixed-batch exports, whole heads + OBSPA.

Each case runs `spa prune` in-process as a user would and checks that the
written model passes onnx's full check and runs in onnxruntime with the
original's output shapes (verification does this too; the test checks the
file independently).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import run
from spa.cli import main

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
import hf_models  # noqa: E402


def _save(model: onnx.ModelProto, path: Path) -> str:
    onnx.save(model, path)
    return str(path)


def _prune(capsys, source: str, output: Path, *options: str) -> str:
    code = main(["prune", source, "-o", str(output), *options])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def _assert_runs_like(original: str, pruned: Path, feeds: dict[str, np.ndarray]) -> None:
    onnx.checker.check_model(str(pruned), full_check=True)
    want, got = run(original, feeds), run(pruned, feeds)
    assert [w.shape for w in want] == [g.shape for g in got]


def _tokens(batch: int, length: int = 8) -> dict[str, np.ndarray]:
    ids = np.random.default_rng(0).integers(0, 120, (batch, length))
    return {"input_ids": ids, "attention_mask": np.ones_like(ids)}


def test_bert_prunes_with_weights_and_data_free_obspa(tmp_path: Path, capsys) -> None:
    # Its attention mask comes from a ConstantOfShape with a scalar result: Model.weights used to crash on it.
    source = _save(hf_models.bert(), tmp_path / "bert.onnx")
    for criterion in ("l2", "obspa"):
        out = _prune(capsys, source, tmp_path / f"{criterion}.onnx", "--criterion", criterion, "--ratio", "0.3")
        assert "verified: onnx checker (full)" in out
        _assert_runs_like(source, tmp_path / f"{criterion}.onnx", _tokens(3))
    assert "tokens uniform over the vocabulary" in out


def test_whole_heads_with_calibrated_obspa_to_a_flops_target(tmp_path: Path, capsys) -> None:
    # The target's bisection pruned trial copies with head dims instead of whole heads, so its own plan failed.
    source = _save(hf_models.bert(), tmp_path / "bert.onnx")
    calibration = tmp_path / "tokens.npz"
    np.savez(calibration, **_tokens(16))
    output = tmp_path / "pruned.onnx"
    out = _prune(capsys, source, output, "--heads", "whole", "--criterion", "obspa", "--calibration",
                 str(calibration), "--target-flops", "0.3")
    assert "Hessians from 16 calibration samples" in out
    _assert_runs_like(source, output, _tokens(2))


def test_llama_decoder_is_never_written_invalid(tmp_path: Path, capsys) -> None:
    # GQA's key/value head repeat (Expand) used to be written with stale head dims: ORT refused the file.
    source = _save(hf_models.llama(), tmp_path / "llama.onnx")
    output = tmp_path / "pruned.onnx"
    out = _prune(capsys, source, output, "--ratio", "0.3", "--criterion", "l2")
    assert "removed" in out and "verified" in out
    _assert_runs_like(source, output, {"input_ids": np.zeros((1, 8), np.int64)})


class _SmallCNN(torch.nn.Module):
    def __init__(self, flatten_to_batch_one: bool = False) -> None:
        super().__init__()
        self.conv1, self.bn1 = torch.nn.Conv2d(1, 8, 3), torch.nn.BatchNorm2d(8)
        self.conv2 = torch.nn.Conv2d(8, 12, 3, stride=2)
        self.fc = torch.nn.Linear(12 * 5 * 5, 10)
        self.flatten_to_batch_one = flatten_to_batch_one

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return self.fc(x.view(1, -1) if self.flatten_to_batch_one else x.flatten(1))


def _export(module: torch.nn.Module, dynamic_spatial: bool = False) -> onnx.ModelProto:
    torch.manual_seed(0)
    module.eval()
    with torch.no_grad():  # a trained-looking BatchNorm
        module.bn1.running_mean.uniform_(-0.5, 0.5)
        module.bn1.running_var.uniform_(0.5, 2.0)
    buffer = io.BytesIO()
    axes = {"x": {2: "h", 3: "w"}} if dynamic_spatial else None
    torch.onnx.export(module, (torch.randn(1, 1, 14, 14),), buffer, dynamo=False, input_names=["x"],
                      dynamic_axes=axes)
    return onnx.load_from_string(buffer.getvalue())


@pytest.mark.parametrize("batch_one_reshape, note", [(False, "fixed batch of 1 relaxed to 16"),
                                                      (True, "1 sample(s) per run, its fixed batch")])
def test_obspa_on_a_fixed_batch_export(tmp_path: Path, capsys, batch_one_reshape: bool, note: str) -> None:
    source = _save(_export(_SmallCNN(batch_one_reshape)), tmp_path / "cnn.onnx")
    feeds = {"x": np.random.default_rng(1).standard_normal((1, 1, 14, 14)).astype(np.float32)}
    out = _prune(capsys, source, tmp_path / "free.onnx", "--criterion", "obspa", "--ratio", "0.4")
    assert note in out and "x float32[1, 1, 14, 14]" in out
    _assert_runs_like(source, tmp_path / "free.onnx", feeds)
    calibration = tmp_path / "images.npy"
    np.save(calibration, np.random.default_rng(2).standard_normal((20, 1, 14, 14)).astype(np.float32))
    out = _prune(capsys, source, tmp_path / "calibrated.onnx", "--criterion", "obspa", "--ratio", "0.4",
                 "--calibration", str(calibration))
    assert note in out and "Hessians from 20 calibration samples" in out
    _assert_runs_like(source, tmp_path / "calibrated.onnx", feeds)


def test_dynamic_spatial_dims_are_sized_by_input_shape(tmp_path: Path, capsys) -> None:
    source = _save(_export(_SmallCNN(), dynamic_spatial=True), tmp_path / "cnn.onnx")
    output = tmp_path / "pruned.onnx"
    assert main(["prune", source, "-o", str(output), "--criterion", "obspa"]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "--input-shape x:1x..." in error[0] and not output.exists()
    out = _prune(capsys, source, output, "--criterion", "obspa", "--input-shape", "x:1x1x14x14")
    assert "x float32[1, 1, 14, 14]" in out
    _assert_runs_like(source, output, {"x": np.zeros((1, 1, 14, 14), np.float32)})


def test_fixed_batch_bert_with_calibration_from_a_larger_file(tmp_path: Path, capsys) -> None:
    source = _save(hf_models.bert(batch=1), tmp_path / "bert.onnx")
    calibration = tmp_path / "tokens.npz"
    np.savez(calibration, **_tokens(12))
    output = tmp_path / "pruned.onnx"
    out = _prune(capsys, source, output, "--criterion", "obspa", "--calibration", str(calibration),
                 "--inputs", str(calibration))
    assert "Hessians from 12 calibration samples" in out and "input_ids int64[1, 8]" in out
    _assert_runs_like(source, output, _tokens(1))
