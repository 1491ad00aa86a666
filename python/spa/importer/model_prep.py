"""Loading, checking and normalising an ONNX model before it becomes MLIR.

Normalising means: the default domain is converted to SPA's opset with
onnx.version_converter and ONNX shape inference annotates every value. Both
run on a copy whose large initializers are detached (only their shapes and
types matter), so models over protobuf's 2 GB limit work and weights are not
serialised back and forth; the importer reads them from the original.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import onnx
from onnx import shape_inference, version_converter

from spa.errors import SPAError

SPA_OPSET = 26  # the newest opset onnxruntime 1.31 runs; the dialect is generated for it
_DETACH_BYTES = 1024  # initializers larger than this are detached during normalisation
_DETACHED = "spa-detached"
_PROTOBUF_LIMIT = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class ImportConfig:
    """Options for turning an ONNX model into MLIR.

    check: run onnx.checker first and reject invalid models.
    convert_opset: convert older default-domain opsets to SPA_OPSET.
    infer_shapes: run ONNX shape inference so values carry ranked types.
    """

    check: bool = True
    convert_opset: bool = True
    infer_shapes: bool = True


def load(source: str | Path | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    """Return (model, label): the model with external data loaded, and a name for messages."""
    if isinstance(source, onnx.ModelProto):
        return source, source.graph.name or "<model>"
    path = Path(source)
    if not path.is_file():
        raise SPAError(f"{path}: no such file")
    try:
        return onnx.load(str(path), load_external_data=True), str(path)
    except Exception as error:  # onnx raises DecodeError, OSError, ValueError ...
        raise SPAError(f"{path}: not a readable ONNX model ({_first_line(error)})") from None


def default_opset(model: onnx.ModelProto) -> int:
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            return opset.version
    return 1 if model.graph.node else SPA_OPSET


def normalise(model: onnx.ModelProto, label: str,
              config: ImportConfig) -> tuple[onnx.ModelProto, dict[str, onnx.TensorProto]]:
    """Check, convert and shape-infer `model`; raises SPAError naming the problem.

    Returns the normalised model, whose large initializers are data-less stubs
    (data_location EXTERNAL), and the original initializers by name.
    """
    if config.check:
        _check(model, label)
    skeleton, detached = _detach_weights(model)
    opset = default_opset(skeleton)
    if opset > SPA_OPSET:
        raise SPAError(f"{label}: opset {opset} is newer than the opset SPA supports ({SPA_OPSET})")
    if opset < SPA_OPSET and config.convert_opset:
        try:
            skeleton = version_converter.convert_version(skeleton, SPA_OPSET)
        except Exception as error:
            raise SPAError(f"{label}: cannot convert opset {opset} to {SPA_OPSET}: {_first_line(error)}") from None
    skeleton.ir_version = max(skeleton.ir_version, onnx.helper.find_min_ir_version_for(
        list(skeleton.opset_import), ignore_unknown=True))
    if config.infer_shapes:
        try:
            skeleton = shape_inference.infer_shapes(skeleton, data_prop=True)
        except Exception as error:
            raise SPAError(f"{label}: shape inference failed: {_first_line(error)}") from None
    return skeleton, detached


def _check(model: onnx.ModelProto, label: str) -> None:
    """onnx.checker on the model with its weights (from the file when over 2 GB)."""
    too_big = model.ByteSize() > _PROTOBUF_LIMIT
    if too_big and not Path(label).is_file():
        return  # only the file form of a model over 2 GB can be checked
    try:
        onnx.checker.check_model(label if too_big else model)
    except onnx.checker.ValidationError as error:
        raise SPAError(f"{label}: invalid ONNX model: {_first_line(error)}") from None


def _detach_weights(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict[str, onnx.TensorProto]]:
    """A copy of `model` whose big initializers are stubs, plus the originals by name."""
    detached: dict[str, onnx.TensorProto] = {}
    stubs = []
    for tensor in model.graph.initializer:
        if tensor.ByteSize() <= _DETACH_BYTES:
            stubs.append(tensor)
            continue
        detached[tensor.name] = tensor
        stub = onnx.TensorProto(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims,
                                data_location=onnx.TensorProto.EXTERNAL)
        stub.external_data.add(key="location", value=_DETACHED)
        stubs.append(stub)
    skeleton = onnx.ModelProto()
    saved = list(model.graph.initializer)
    del model.graph.initializer[:]
    skeleton.CopyFrom(model)
    model.graph.initializer.extend(saved)
    skeleton.graph.initializer.extend(stubs)
    return skeleton, detached


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
