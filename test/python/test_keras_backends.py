"""spa.keras.prune on Keras' TensorFlow and JAX backends (pruned in a torch-backend child process).

Each backend runs in its own process (Keras fixes the backend per process);
the pruned model it returns is checked here against the pruned ONNX model and
against the zero-mask oracle built from the same .keras file on the torch backend.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np
import onnx
import onnxruntime as ort
import pytest

keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("the oracle side needs Keras on the torch backend", allow_module_level=True)

import spa
import torch
from oracle import masked_model
from spa.frameworks.torch_adapter import export
from spa.groups import plan_to_dict

pytestmark = pytest.mark.zoo  # the full tier only (see pyproject's markers)

CASE = Path(__file__).with_name("keras_backend_case.py")
SUBCLASSED_CASE = Path(__file__).with_name("keras_subclassed_case.py")
needs_tensorflow = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None,
                                      reason="tensorflow is not installed")


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input_0": x})[0]


def _oracle(folder: Path, fresh: np.ndarray, model_class: type | None = None) -> np.ndarray:
    """The zero-mask oracle on `fresh`: the case's original `model.keras`, loaded on the torch backend,
    with the channels the case's plan removed set to zero."""
    original = keras.saving.load_model(folder / "model.keras", compile=False)
    if model_class is not None:
        assert isinstance(original, model_class)
    sample = np.zeros((2, 8, 8, 3), np.float32)
    original(sample)
    base = spa.load(export(original, (torch.as_tensor(sample),)))
    plan = pickle.loads((folder / "plan.pkl").read_bytes())
    return _run(masked_model(base.to_onnx(), plan_to_dict(plan, base.coupling_groups())), fresh)


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_other_backend_model_comes_back_pruned_on_its_backend(backend: str, tmp_path: Path) -> None:
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    done = subprocess.run([sys.executable, str(CASE), str(tmp_path)], env={**os.environ, "KERAS_BACKEND": backend},
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads((tmp_path / "facts.json").read_text())
    assert facts["backend"] == backend and facts["same_class"]
    assert facts["widths"] == [n // 2 for n in facts["original_widths"]]
    assert np.isfinite(facts["loss"]).all()  # the pruned model trains on its own backend
    io = np.load(tmp_path / "io.npz")
    np.testing.assert_allclose(io["outputs"], _run(onnx.load(tmp_path / "pruned.onnx"), io["fresh"]),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(io["outputs"], _oracle(tmp_path, io["fresh"]), rtol=1e-4, atol=1e-5)


@needs_tensorflow
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_subclassed_model_comes_back_patched_and_as_a_saved_model(backend: str, tmp_path: Path) -> None:
    """A subclassed model cannot be rebuilt with pruned widths: a patched copy comes back, and its SavedModel
    serves the pruned model's outputs; a SavedModel that fails its check leaves nothing behind."""
    import keras_subclassed_net as net

    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    done = subprocess.run([sys.executable, str(SUBCLASSED_CASE), str(tmp_path)],
                          env={**os.environ, "KERAS_BACKEND": backend}, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    facts = json.loads((tmp_path / "facts.json").read_text())
    assert facts["backend"] == backend and facts["same_class"] and not facts["rebuilt"]
    assert facts["widths"] == [4, 3, 6] and facts["original_widths"] == [8, 6, 12]
    assert "differs from the Keras model" in facts["refused"]
    assert "is not a SavedModel" in facts["kept_other_folder"]
    assert not facts["bad_left"] and not facts["leftovers"]
    io = np.load(tmp_path / "io.npz")
    expected = _run(onnx.load(tmp_path / "pruned.onnx"), io["fresh"])
    np.testing.assert_allclose(io["outputs"], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(io["served"], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(io["outputs"], _oracle(tmp_path, io["fresh"], net.ConvNet), rtol=1e-4, atol=1e-5)


@needs_tensorflow
def test_custom_layers_must_be_importable_in_the_pruning_process(tmp_path: Path) -> None:
    """A TensorFlow-backend model with a layer class defined in __main__ cannot be reloaded on the torch
    backend; the error says how to register it instead of failing somewhere inside Keras."""
    script = tmp_path / "custom.py"
    script.write_text(
        "import keras, numpy as np, spa.keras\n"
        "class Twice(keras.layers.Layer):\n"
        "    def call(self, x):\n"
        "        return 2 * x\n"
        "inputs = keras.Input((4,))\n"
        "model = keras.Model(inputs, keras.layers.Dense(2)(Twice()(keras.layers.Dense(8)(inputs))))\n"
        "x = np.ones((1, 4), np.float32)\n"
        "model(x)\n"
        "try:\n"
        "    spa.keras.prune(model, x, ratio=0.5)\n"
        "except spa.errors.SPAError as error:\n"
        "    print('SPAError:', error)\n")
    done = subprocess.run([sys.executable, str(script)], env={**os.environ, "KERAS_BACKEND": "tensorflow"},
                          capture_output=True, text=True, check=False)
    assert "SPAError:" in done.stdout, done.stderr[-3000:]
    assert "custom_modules" in done.stdout and "Twice" in done.stdout


def _run_script(tmp_path: Path, text: str, backend: str) -> subprocess.CompletedProcess:
    script = tmp_path / "script.py"
    script.write_text(text)
    return subprocess.run([sys.executable, str(script)], env={**os.environ, "KERAS_BACKEND": backend},
                          capture_output=True, text=True, check=False)


@needs_tensorflow
def test_mlir_after_tensorflow_is_a_clear_error_not_a_crash(tmp_path: Path) -> None:
    """TensorFlow's bundled MLIR makes SPA's crash the process when loaded second; SPA refuses instead."""
    done = _run_script(tmp_path, "import tensorflow, spa, spa.errors, spa.data\n"
                                 "try:\n"
                                 "    spa.load(spa.data.demo_model_path())\n"
                                 "except spa.errors.SPAError as error:\n"
                                 "    print('SPAError:', error)\n", "tensorflow")
    assert done.returncode == 0 and "SPAError:" in done.stdout, done.stderr[-3000:]
    assert "after TensorFlow" in done.stdout


@needs_tensorflow
def test_torch_backend_with_tensorflow_loaded_prunes_in_a_child_process(tmp_path: Path) -> None:
    """Keras imports TensorFlow for file IO whenever it is installed; a torch-backend user who saved a model
    first still gets a pruned model (through the child process) instead of an MLIR error."""
    done = _run_script(tmp_path, "import sys, keras, numpy as np, spa.keras\n"
                                 "inputs = keras.Input((6,))\n"
                                 "model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(8)(inputs)))\n"
                                 "x = np.ones((1, 6), np.float32)\n"
                                 "model(x)\n"
                                 f"model.save({str(tmp_path / 'saved.keras')!r})\n"
                                 "assert 'tensorflow' in sys.modules\n"
                                 "result = spa.keras.prune(model, x, ratio=0.5)\n"
                                 "print('units', result.model.layers[1].units, result.max_difference)\n", "torch")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "units 4" in done.stdout


@needs_tensorflow
def test_registered_custom_layers_next_to_the_script_are_found(tmp_path: Path) -> None:
    """custom_modules names a module beside the user's script; the pruning process imports it from there."""
    (tmp_path / "my_layers.py").write_text(
        "import keras\n"
        "@keras.saving.register_keras_serializable(package='test')\n"
        "class Twice(keras.layers.Layer):\n"
        "    def call(self, x):\n"
        "        return 2 * x\n")
    done = _run_script(tmp_path, "import keras, numpy as np, spa.keras\n"
                                 "from my_layers import Twice\n"
                                 "inputs = keras.Input((4,))\n"
                                 "hidden = keras.layers.Dense(8, name='hidden')(inputs)\n"
                                 "model = keras.Model(inputs, keras.layers.Dense(2)(Twice()(hidden)))\n"
                                 "x = np.ones((1, 4), np.float32)\n"
                                 "model(x)\n"
                                 "result = spa.keras.prune(model, x, ratio=0.5, custom_modules=['my_layers'])\n"
                                 "print('units', result.model.get_layer('hidden').units)\n", "tensorflow")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "units 4" in done.stdout
