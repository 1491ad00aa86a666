"""The check every adapter makes before handing a pruned model back: same outputs as the pruned ONNX model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx

from spa.errors import SPAError, first_line


def compare_with_onnx(label: str, outputs: Sequence[np.ndarray], pruned: onnx.ModelProto,
                      feeds: Mapping[str, np.ndarray], tolerance: float) -> float:
    """Largest |framework - onnxruntime| output difference, relative to the output scale (at least 1).

    `label` names the adapter's result in errors ("the pruned module"). Raises
    SPAError when shapes differ or the difference exceeds `tolerance`.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(pruned.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, dict(feeds))
    difference = 0.0
    for reference, onnx_out in zip(outputs, got):
        reference = np.asarray(reference)
        if reference.shape != onnx_out.shape:
            raise SPAError(f"{label} returns shape {list(reference.shape)} but the pruned ONNX model "
                           f"{list(onnx_out.shape)}; it uses a width SPA cannot patch (e.g. a hard-coded channel "
                           "count)")
        scale = max(1.0, float(np.abs(onnx_out).max(initial=0.0)))
        difference = max(difference, float(np.abs(reference - onnx_out).max(initial=0.0)) / scale)
    if difference > tolerance:
        raise SPAError(f"{label} differs from the pruned ONNX model by {difference:.2e} (tolerance {tolerance}); "
                       "it likely uses a width SPA cannot patch")
    return difference


def forward_failure(label: str, error: Exception) -> SPAError:
    """The error for a pruned framework model (`label`) whose forward fails on the example inputs."""
    return SPAError(f"{label} fails on the example inputs ({type(error).__name__}: {first_line(error)}); its "
                    "forward uses a "
                    "width SPA cannot patch, such as hard-coded split sizes; prune the ONNX model instead "
                    "(spa.load / Model.prune)")
