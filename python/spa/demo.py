"""`spa demo`: the main job on a bundled example, with nothing to pass.

Today the main job is the ONNX -> MLIR -> ONNX round trip: it runs on the
ResNet-50 graph that ships inside the onnx wheel and checks the result in
onnxruntime against the original.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

from spa.errors import SPAError

EXAMPLE = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_resnet50.onnx"


def run_demo(model_path: Path = EXAMPLE, out=print) -> None:
    """Round trip `model_path` and report timings and the largest output difference."""
    import onnxruntime as ort

    from spa.exporter import save_module
    from spa.importer import import_model
    from spa.mlir_files import write_module

    if not model_path.is_file():
        raise SPAError(f"{model_path}: the bundled example is missing (reinstall onnx)")
    with tempfile.TemporaryDirectory() as folder:
        mlir_path, onnx_path = Path(folder) / "model.mlir", Path(folder) / "model.onnx"
        start = time.perf_counter()
        module = import_model(model_path)
        write_module(module, mlir_path)
        imported = time.perf_counter()
        save_module(module, onnx_path)
        exported = time.perf_counter()
        out(f"model:  {model_path.name}")
        out(f"import: {imported - start:.2f} s -> {mlir_path.stat().st_size / 1e6:.1f} MB of MLIR; first lines:")
        for line in mlir_path.read_text().splitlines()[:6]:
            out("    " + (line if len(line) < 140 else line[:137] + "..."))
        out(f"export: {exported - imported:.2f} s")

        options = ort.SessionOptions()
        options.log_severity_level = 3
        original = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        roundtrip = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        name = original.get_inputs()[0].name
        feeds = {name: np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)}
        difference = max(float(np.abs(a - b).max()) for a, b in zip(original.run(None, feeds), roundtrip.run(None, feeds)))
        out(f"onnxruntime: largest output difference after the round trip = {difference:.3g}")
        if difference > 1e-5:
            raise SPAError(f"round trip changed the outputs (difference {difference:.3g})")
