"""Prune a Keras model whose backend is not torch, through a torch-backend child process.

Keras fixes its backend once per process, and SPA exports Keras models
through the torch backend (their variables keep their paths there). A
TensorFlow- or JAX-backend model (or a torch-backend one in a process where
TensorFlow is loaded and SPA's MLIR no longer can be) is therefore saved in Keras' own
backend-independent format (`.keras`), pruned by a child Python with
KERAS_BACKEND=torch running the same adapter, and the pruned `.keras` file
is loaded back on the caller's backend. The caller then checks the loaded
model against the pruned ONNX model once more, on its own backend.

Child protocol: `python -m spa.frameworks.keras.worker <folder>` reads
`request.pkl` and `model.keras` there and writes `pruned.onnx`, `result.pkl`
and the pruned model: `pruned.keras` when it was rebuilt from its config, or
`weights.npz` (every variable's pruned value in `model.weights` order) for a
subclassed model, which the caller applies to a copy of its own model (see
surgery); or `error.txt` (exit code 2) for an SPAError.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import onnx

from spa.errors import SPAError, first_line


def mlir_loads_here() -> bool:
    """Whether SPA's MLIR can be used in this process: loaded already, or TensorFlow not loaded yet
    (see spa.ir.bindings; Keras imports TensorFlow for file IO whenever it is installed)."""
    return "spa._native" in sys.modules or "tensorflow" not in sys.modules


def prune_in_worker(model: Any, inputs: tuple, criterion: str, tolerance: float, custom_modules: tuple[str, ...],
                    plan_options: dict[str, Any]) -> tuple[Any, onnx.ModelProto, Any, bool]:
    """(pruned Keras model on the caller's backend, pruned ONNX model, plan, whether the model was rebuilt
    rather than patched), pruned in a torch-backend child."""
    import keras

    with tempfile.TemporaryDirectory(prefix="spa-keras-") as folder:
        work = Path(folder)
        try:
            model.save(work / "model.keras")
        except Exception as error:  # noqa: BLE001 - Keras raises many kinds here
            raise SPAError(f"Keras adapter: {type(model).__name__} cannot be saved as a .keras file to be pruned "
                           f"on the torch backend ({type(error).__name__}: {first_line(error)})") from None
        request = {"inputs": inputs, "criterion": criterion, "tolerance": tolerance,
                   "custom_modules": tuple(custom_modules), "plan_options": plan_options}
        try:
            (work / "request.pkl").write_bytes(pickle.dumps(request))
        except Exception as error:  # noqa: BLE001 - pickle raises several kinds
            raise SPAError(f"Keras adapter: the options must be picklable to reach the pruning process "
                           f"({type(error).__name__}: {first_line(error)})") from None
        _run_child(work)
        result = pickle.loads((work / "result.pkl").read_bytes())
        if not result["rebuilt"]:
            return _patched(model, work, result["names"]), onnx.load(work / "pruned.onnx"), result["plan"], False
        try:
            pruned = keras.saving.load_model(work / "pruned.keras", compile=False)
        except Exception as error:  # noqa: BLE001
            raise SPAError(f"Keras adapter: the pruned model cannot be loaded back on the "
                           f"{keras.backend.backend()} backend ({type(error).__name__}: {first_line(error)})") from None
        return pruned, onnx.load(work / "pruned.onnx"), result["plan"], True


def _patched(model: Any, work: Path, names: list[tuple[str, tuple]]) -> Any:
    """A copy of the caller's model given the child's pruned variables, matched by order (layer names, hence
    paths, are counted per process) and checked by name and original shape."""
    import numpy as np

    from spa.frameworks.keras.surgery import patched_copy

    ours = [(variable.name, tuple(variable.shape)) for variable in model.weights]
    if len(ours) != len(names):
        raise SPAError(f"Keras adapter: {type(model).__name__} reloaded on the torch backend has {len(names)} "
                       f"variables but here {len(ours)}")
    for index, (mine, theirs) in enumerate(zip(ours, names)):
        if mine != tuple(theirs):
            raise SPAError(f"Keras adapter: variable {index} of {type(model).__name__} is {mine[0]} {mine[1]} here "
                           f"but {theirs[0]} {tuple(theirs[1])} reloaded on the torch backend; its layers are not "
                           "made in the same order")
    with np.load(work / "weights.npz") as stored:
        values = [stored[f"v{index}"] for index in range(len(names))]
    return patched_copy(model, values)


def _run_child(work: Path) -> None:
    if importlib.util.find_spec("torch") is None:
        raise SPAError("Keras adapter: pruning a Keras model on this backend needs torch, for Keras' torch "
                       "backend in a child process: pip install 'spa[keras]'")
    # the child sees what this process imports from (modules next to the user's script, custom_modules)
    search_path = os.pathsep.join(entry or os.getcwd() for entry in sys.path)
    environment = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": search_path}
    done = subprocess.run([sys.executable, "-m", "spa.frameworks.keras.worker", str(work)], env=environment,
                          capture_output=True, text=True, check=False)
    if (work / "error.txt").exists():
        raise SPAError((work / "error.txt").read_text())
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit code {done.returncode}"
        raise SPAError(f"Keras adapter: the torch-backend pruning process failed: {reason}")


def _load_problem(error: Exception) -> str:
    """What Keras could not load: the class it could not locate (its messages bury that), or the first line."""
    missing = re.search(r"Could not locate (class|function) '([^']+)'", str(error))
    return f"no {missing.group(1)} named {missing.group(2)!r} is registered" if missing else first_line(error)


def main(folder: str) -> int:
    import spa.ir.bindings  # noqa: F401 - before Keras can import TensorFlow

    work = Path(folder)
    request = pickle.loads((work / "request.pkl").read_bytes())
    try:
        for name in request["custom_modules"]:
            try:
                importlib.import_module(name)  # registers the user's serializable layers
            except Exception as error:  # noqa: BLE001 - a module may fail as it likes while importing
                raise SPAError(f"Keras adapter: module {name!r} cannot be imported in the pruning process "
                               f"({type(error).__name__}: {first_line(error)})") from None
        import keras
        import numpy as np

        from spa.frameworks.keras.calls import call
        from spa.frameworks.keras.on_torch import prune_on_torch

        try:
            model = keras.saving.load_model(work / "model.keras", compile=False)
        except Exception as error:  # noqa: BLE001
            raise SPAError(f"Keras adapter: the model cannot be reloaded on the torch backend "
                           f"({_load_problem(error)}); the model's own classes must be registered with "
                           "keras.saving.register_keras_serializable where they are defined (that module is "
                           "imported here), other custom classes in a module named in custom_modules=[...]") from None
        call(model, request["inputs"])
        result = prune_on_torch(model, request["inputs"], request["criterion"], request["tolerance"],
                                request["plan_options"])
        if result.rebuilt:
            result.model.save(work / "pruned.keras")
        else:
            np.savez(work / "weights.npz", **{f"v{index}": keras.ops.convert_to_numpy(variable)
                                              for index, variable in enumerate(result.model.weights)})
    except SPAError as error:
        (work / "error.txt").write_text(str(error))
        return 2
    except Exception as error:  # noqa: BLE001 - the parent reports it as one SPAError
        (work / "error.txt").write_text(f"Keras adapter: pruning on the torch backend failed "
                                        f"({type(error).__name__}: {first_line(error)})")
        return 2
    onnx.save(result.onnx_model, work / "pruned.onnx", save_as_external_data=True, location="pruned.onnx.data")
    names = [(variable.name, tuple(variable.shape)) for variable in model.weights]  # the original's
    (work / "result.pkl").write_bytes(pickle.dumps({"plan": result.plan, "rebuilt": result.rebuilt,
                                                    "names": names}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
