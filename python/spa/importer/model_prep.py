"""Loading, checking and normalising an ONNX model before it becomes MLIR.

Normalising means: the default domain is converted to SPA's opset with
onnx.version_converter and ONNX shape inference annotates every value. Both
run on the model with its large initializers taken out (only their shapes
and types matter), so models over protobuf's 2 GB limit work and weights are
never serialised back and forth. External data is not loaded here at all:
the importer maps it from disk (see spa.ir.tensors).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import onnx
from onnx import shape_inference, version_converter

from spa.errors import SPAError
from spa.ir.names import SPA_OPSET
from spa.ir.onnx_model import check_structure, default_opset, first_line as _first_line, is_big
from spa.importer.symbolic_dims import prove_reshape_sizes
from spa.importer.canonical_forms import explicit_split_sizes, unshare_constants
from spa.importer.subgraph_constants import hoist_subgraph_initializers
from spa.ir.group_norm import PER_CHANNEL_GROUP_NORM, fuse_group_norms
from spa.importer.shape_folding import (
    fold_shape_arithmetic,
    has_shape_arithmetic,
    keep_only_reshape_shapes,
    resolve_reshape_wildcards,
)

MAX_WILDCARD_ROUNDS = 8  # reshape chains resolve one link per round (resnest: view, softmax, reshape back)
_DETACHED = "spa-detached"


@dataclasses.dataclass(frozen=True)
class ImportConfig:
    """Options for turning an ONNX model into MLIR.

    check: run onnx.checker first and reject invalid models.
    convert_opset: convert older default-domain opsets to SPA_OPSET.
    infer_shapes: run ONNX shape inference so values carry ranked types.
    fold_shapes: fold static shape arithmetic (Shape -> Slice -> Concat ...) into
        constants, so computed Reshape/Expand targets can be read and rewritten
        (spa.load does; a plain import keeps the graph as it is).
    canonicalise: give each use of a shared vector or small initializer its own copy (not a layer
        weight the model applies more than once), Splits
        explicit sizes and sub-graph initializers a place in the main graph (spa.load does; see
        spa.importer.canonical_forms and spa.importer.subgraph_constants).
    """

    check: bool = True
    convert_opset: bool = True
    infer_shapes: bool = True
    fold_shapes: bool = False
    canonicalise: bool = False


@dataclasses.dataclass
class LoadedModel:
    """A model being imported, owned by the importer (it is modified in place).

    label names the model in messages; base_dir is where its external data
    lives (None for an in-memory model); weights maps the names of
    initializers taken out by `normalise` to the originals.
    """

    proto: onnx.ModelProto
    label: str
    base_dir: Path | None
    weights: dict[str, onnx.TensorProto] = dataclasses.field(default_factory=dict)
    source_opset: int | None = None  # the default-domain opset and IR version before conversion
    source_ir_version: int | None = None


def load(source: str | Path | onnx.ModelProto) -> LoadedModel:
    """Read a model file (without its external data) or copy a ModelProto."""
    if isinstance(source, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(source)
        return LoadedModel(copy, source.graph.name or "<model>", None)
    path = Path(source)
    if not path.is_file():
        raise SPAError(f"{path}: no such file")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError, OSError, ValueError ...
        raise SPAError(f"{path}: not a readable ONNX model ({_first_line(error)})") from None
    return LoadedModel(proto, str(path), path.resolve().parent)


def normalise(model: LoadedModel, config: ImportConfig) -> None:
    """Check, convert and shape-infer the model in place; raises SPAError naming the problem."""
    label = model.label
    _take_out_weights(model)
    if config.check:
        _check(model)
    proto = model.proto
    opset = default_opset(proto)
    model.source_opset, model.source_ir_version = opset, proto.ir_version
    if opset > SPA_OPSET:
        raise SPAError(f"{label}: opset {opset} is newer than the opset SPA supports ({SPA_OPSET})")
    if opset < SPA_OPSET and config.convert_opset:
        try:
            proto = version_converter.convert_version(proto, SPA_OPSET)
        except Exception as error:
            raise SPAError(f"{label}: cannot convert opset {opset} to {SPA_OPSET}: {_first_line(error)}") from None
    proto.ir_version = max(proto.ir_version, onnx.helper.find_min_ir_version_for(
        list(proto.opset_import), ignore_unknown=True))
    if default_opset(proto) >= PER_CHANNEL_GROUP_NORM:
        fuse_group_norms(proto)  # torch's GroupNorm primitives as one node, whose channels SPA follows
    if config.canonicalise:
        hoist_subgraph_initializers(proto.graph)
        unshare_constants(proto.graph, model.weights)
    if config.infer_shapes:
        proto = _infer_shapes(proto, label)
        if config.fold_shapes and has_shape_arithmetic(proto.graph):
            proto = _fold(proto, label)
            if prove_reshape_sizes(proto):  # symbols ONNX's inference could not relate
                keep_only_reshape_shapes(proto.graph)
                proto = _fold(_infer_shapes(proto, label), label)
    if config.canonicalise and config.infer_shapes:
        explicit_split_sizes(proto.graph)
    model.proto = proto


def _fold(proto: onnx.ModelProto, label: str) -> onnx.ModelProto:
    proto = _infer_shapes(fold_shape_arithmetic(proto), label)  # folded targets give new shapes
    for _ in range(MAX_WILDCARD_ROUNDS):  # each round can name the dims the next Reshape needs
        if not resolve_reshape_wildcards(proto):
            break
        proto = _infer_shapes(proto, label)
    return proto


def _infer_shapes(proto: onnx.ModelProto, label: str) -> onnx.ModelProto:
    try:
        return shape_inference.infer_shapes(proto, data_prop=True)
    except Exception as error:
        raise SPAError(f"{label}: shape inference failed: {_first_line(error)}") from None


def _check(model: LoadedModel) -> None:
    check_structure(model.proto, model.label)


def _take_out_weights(model: LoadedModel) -> None:
    """Replace big in-file initializers by data-less stubs, keeping the originals aside."""
    initializers = model.proto.graph.initializer
    kept = list(initializers)
    del initializers[:]  # detaches the messages without copying their data
    for tensor in kept:
        if not is_big(tensor):
            initializers.append(tensor)  # small, or external data (already a stub)
            continue
        model.weights[tensor.name] = tensor
        stub = initializers.add(name=tensor.name, data_type=tensor.data_type, dims=tensor.dims,
                                data_location=onnx.TensorProto.EXTERNAL)
        stub.external_data.add(key="location", value=_DETACHED)
