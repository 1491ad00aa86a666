"""The runnable examples run, and their numbers say what the examples claim."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.zoo  # the full tier only (see pyproject's markers)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_prune_any_time_on_digits() -> None:
    lines: list[str] = []
    results = _load("prune_any_time").run("digits", epochs=8, out=lines.append)
    assert len(lines) == len(results) + 1
    assert results["(a) dense, trained"] > 0.9
    # (a) pruned at initialisation, the network still trains well
    assert min(results[f"(a) {c} at init, then trained"] for c in ("snip", "grasp", "crop")) > 0.85
    # (b) one epoch of fine-tuning recovers most of what pruning lost
    for criterion in ("l1", "taylor"):
        assert results[f"(b) {criterion}, fine-tuned 1 epoch"] > results[f"(b) {criterion}, no fine-tuning"] + 0.1
    # (c) without fine-tuning, OBSPA's reconstruction keeps far more than magnitude pruning
    assert results["(c) obspa data-free"] > results["(c) l1, no fine-tuning"] + 0.1
    assert results["(c) obspa, 128 calibration images"] > results["(c) l1, no fine-tuning"] + 0.15


def test_torch_prune_module_example(capsys) -> None:
    _load("torch_prune_module").main()
    output = capsys.readouterr().out
    assert output.startswith("ResNet: 11,181,642 -> ")
    assert "fine-tuning step 2" in output


def test_keras_example(capsys) -> None:
    _load("keras_prune_model").main()
    output = capsys.readouterr().out
    assert "stem filters 16 -> 8, hidden units 32 -> 16" in output
    assert output.count("fine-tuning loss per epoch:") == 1


def test_keras_example_on_tensorflow() -> None:
    """The same script with KERAS_BACKEND=tensorflow (its own process: Keras fixes the backend per process)."""
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow is not installed")
    done = subprocess.run([sys.executable, str(EXAMPLES / "keras_prune_model.py")],
                          env={**os.environ, "KERAS_BACKEND": "tensorflow"}, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stem filters 16 -> 8, hidden units 32 -> 16" in done.stdout
    assert done.stdout.count("fine-tuning loss per epoch:") == 1


def test_keras_subclassed_example_writes_a_saved_model(tmp_path: Path) -> None:
    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow is not installed")
    done = subprocess.run([sys.executable, str(EXAMPLES / "keras_prune_subclassed.py"), str(tmp_path)],
                          env={**os.environ, "KERAS_BACKEND": "tensorflow"}, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SmallClassifier patched in place (rebuilt: False)" in done.stdout
    assert "block filters 16 -> 8, hidden units 32 -> 16" in done.stdout
    assert (tmp_path / "small_classifier" / "saved_model.pb").is_file()


def test_paddle_example(capsys) -> None:
    pytest.importorskip("paddle")
    _load("paddle_prune_layer").main()
    output = capsys.readouterr().out
    assert "stem channels 16 -> 8, hidden 32 -> 16" in output
    trained, pruned, tuned = (float(v) for v in re.search(
        r"accuracy: trained ([\d.]+), pruned ([\d.]+), fine-tuned three epochs ([\d.]+)", output).groups())
    assert trained > 0.8 and tuned > pruned  # the pruned layer trains on with Paddle's own loop


def test_flax_example(capsys) -> None:
    _load("flax_prune_module").main()
    output = capsys.readouterr().out
    assert "conv features 16 -> 8, hidden 32 -> 16" in output
    assert "logits of the pruned module: (2, 10)" in output


def test_self_healing_example_blocks_the_broken_group_and_prunes_the_rest() -> None:
    # Its own process: the example breaks SPA's rewrite of one group for the whole process.
    done = subprocess.run([sys.executable, str(EXAMPLES / "self_healing.py")], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "removed 8 channels from 2 of 3 prunable groups" in done.stdout
    assert "blocked group 1: onnx checker (full) failed at node layer2" in done.stdout
    assert 'plan.json records: [{"id": 1, "reason": "onnx checker' in done.stdout
