"""The checks a model SPA writes must pass, each returning None or a `Failure` that says why.

1. validity: `onnx.checker.check_model(full_check=True)`, or the plain check
   when the original model itself fails the full one;
2. it runs: onnxruntime loads the model and runs it on the feeds;
3. signature: as many outputs as the original, with the same dtypes and shapes;
4. equality: outputs equal a reference (the zero-mask oracle) within a
   relative tolerance of 1e-4 of each output's largest magnitude (four
   roundings of the output's type when coarser: float16 4e-3).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

RELATIVE_TOLERANCE = 1e-4
# How onnx and onnxruntime name a node: "node name: X)" (shape inference) or "Node (X)" / "node X" (runtime).
_NODE_PATTERNS = (re.compile(r"node name: ([^)\s]+)\)"), re.compile(r"[Nn]ode \(([^)]+)\)"),
                  re.compile(r"[Nn]ode '([^']+)'"))


@dataclass(frozen=True)
class Failure:
    """A check that did not hold: which check, the node it names (if any) and the message."""

    check: str
    message: str
    node: str | None = None

    def line(self) -> str:
        """One readable line: `check failed at node N: message`."""
        where = f" at node {self.node}" if self.node else ""
        return f"{self.check} failed{where}: {self.message}"


def _failure(check: str, error: BaseException) -> Failure:
    text = " ".join(str(error).split()) or type(error).__name__
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    first, *others = text.split(" (op_type:")  # shape inference lists every error; the first is the cause
    if others:
        text = f"{first} (op_type:{others[0]}"
    node = next((m.group(1) for m in (p.search(text) for p in _NODE_PATTERNS) if m), None)
    return Failure(check, text if len(text) <= 300 else text[:297] + "...", node)


def check_validity(model: onnx.ModelProto | bytes, full: bool = True) -> Failure | None:
    """onnx's checker (with strict shape inference when `full`) on a model or its serialised bytes."""
    try:
        onnx.checker.check_model(model, full_check=full)
    except Exception as error:  # noqa: BLE001 - onnx raises several exception types
        return _failure("onnx checker" + (" (full)" if full else ""), error)
    return None


LARGE_MODEL_BYTES = 64 << 20  # above this, memory rather than time is what verification runs short of


class Runner:
    """An onnxruntime session for one model (or its serialised bytes), on `threads` intra-op threads
    (None: onnxruntime's default), with `initializers` (name -> array) used in place of the model's
    own, and `external` (name -> array) giving the data of in-memory stubs (see
    spa.exporter.external_data.InMemoryData); `failure` is set instead when it cannot load."""

    def __init__(self, model: onnx.ModelProto | bytes, threads: int | None = None,
                 initializers: Mapping[str, np.ndarray] | None = None,
                 external: Mapping[str, np.ndarray] | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 4  # failures come back as exceptions; ORT need not print them
        if threads is not None:  # a fixed count: results that do not depend on the machine's cores
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        # One run per model: basic graph rewrites only, so loading stays cheap; none at all when some
        # initializers are given, since rewrites (constant folding, Conv+BatchNorm fusion) read the
        # model's own values of them.
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL if initializers or external \
            else ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        self.failure: Failure | None = None
        self.session = None
        try:
            # onnxruntime reads these arrays in place, so they are kept for the session's life.
            self._initializers = [_ort_value(array) for array in (initializers or {}).values()]
            for name, value in zip(initializers or {}, self._initializers):
                options.add_initializer(name, value)
            self._external = [_ort_value(array) for array in (external or {}).values()]
            if external:
                options.add_external_initializers(list(external), self._external)
            blob = model if isinstance(model, bytes) else model.SerializeToString()
            weights = len(blob) + sum(np.asarray(a).nbytes for a in (external or {}).values())
            if weights > LARGE_MODEL_BYTES:  # packed weights (faster products) would be a second copy
                options.add_session_config_entry("session.disable_prepacking", "1")
            self.session = ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own exception types
            self.failure = _failure("onnxruntime load", error)

    def run(self, feeds: Mapping[str, np.ndarray], outputs: Sequence[str] | None = None
            ) -> list[np.ndarray] | Failure:
        """The outputs (all, or those named), or the Failure of loading or running."""
        if self.failure is not None:
            return self.failure
        try:
            return self.session.run(list(outputs) if outputs is not None else None, dict(feeds))
        except Exception as error:  # noqa: BLE001
            return _failure("onnxruntime run", error)


def _ort_value(array: np.ndarray):
    """An onnxruntime value over `array`'s memory; bfloat16 and float8 (ml_dtypes) go as raw bits with
    their ONNX type, which onnxruntime cannot take from NumPy's dtype."""
    import onnxruntime as ort

    array = np.ascontiguousarray(array)
    if array.dtype.kind != "V" and type(array.dtype).__module__ == "numpy":
        return ort.OrtValue.ortvalue_from_numpy(array)
    bits = array.view(np.dtype(f"uint{8 * array.dtype.itemsize}"))
    return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(bits, onnx.helper.np_dtype_to_tensor_dtype(array.dtype))


def tolerance(dtype: np.dtype) -> float:
    """RELATIVE_TOLERANCE, or a few roundings of a coarser float type (float16: 4e-3), whose separately
    rounded ops cannot match a fused kernel closer than that."""
    return max(RELATIVE_TOLERANCE, 4 * float(np.finfo(dtype).eps)) if np.dtype(dtype).kind == "f" else RELATIVE_TOLERANCE


def check_signature(expected: Sequence[np.ndarray], actual: Sequence[np.ndarray],
                    names: Sequence[str]) -> Failure | None:
    """Same output count, dtypes and shapes."""
    if len(expected) != len(actual):
        return Failure("outputs", f"{len(actual)} outputs, the original has {len(expected)}")
    for name, want, got in zip(names, expected, actual):
        want, got = np.asarray(want), np.asarray(got)
        if want.dtype != got.dtype or want.shape != got.shape:
            return Failure("outputs", f"output {name!r} is {got.dtype}{list(got.shape)}, "
                                      f"the original's is {want.dtype}{list(want.shape)}")
    return None


def check_equal(expected: Sequence[np.ndarray], actual: Sequence[np.ndarray], names: Sequence[str],
                check: str = "zero-mask oracle") -> Failure | None:
    """Every output within RELATIVE_TOLERANCE x max(1, largest |expected|) (NaNs must match)."""
    for name, want, got in zip(names, expected, actual):
        want, got = np.asarray(want), np.asarray(got)
        if want.shape != got.shape:
            return Failure(check, f"output {name!r} has shape {list(got.shape)}, expected {list(want.shape)}")
        if want.dtype.kind not in "fc":
            if not np.array_equal(want, got):
                return Failure(check, f"output {name!r} differs")
            continue
        finite = np.isfinite(want)
        scale = max(1.0, float(np.abs(want[finite]).max(initial=0.0)))
        if not np.array_equal(np.isnan(want), np.isnan(got)):
            return Failure(check, f"output {name!r} has NaNs where the reference has none, or the reverse")
        difference = np.abs(np.where(finite, want, 0) - np.where(finite, got, 0)).max(initial=0.0) / scale
        allowed = tolerance(want.dtype)
        if difference > allowed or not np.array_equal(want[~finite], got[~finite], equal_nan=True):
            return Failure(check, f"output {name!r} differs from the reference by {difference:.2e} of its "
                                  f"scale (tolerance {allowed:g})")
    return None
