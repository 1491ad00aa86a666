"""Prune an MXNet 1.9 Gluon block with SPA and get a pruned block of the same classes back.

    import spa.mxnet
    result = spa.mxnet.prune(net, np.random.rand(1, 3, 32, 32).astype("float32"), criterion="l1", ratio=0.3)
    net = result.block             # a pruned deep copy of `net`, ready to train on

MXNet 1.9.1 needs NumPy < 1.24, so it lives in its own environment (see the
README). The hybridized block is exported with `mx.onnx.export_model`, which
names every weight after its Gluon parameter (`conv0_weight`), so each pruned
constant goes straight back to its parameter. Every parameter of a deep copy
is re-initialised with its pruned array, the widths Gluon layers pass to
their operators are fixed (Conv `num_filter`/`num_group`, Dense units), and
the copy is checked against the pruned ONNX model in onnxruntime.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import tempfile
import types
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from spa.errors import SPAError, first_line
from spa.frameworks.pipeline import PrunedExport, as_tuple
from spa.frameworks.protocol import FrameworkAdapter, PruneResult, as_list, input_names, prune_with
from spa.frameworks.widths import pruned_groups

OPSET = 13  # the newest opset MXNet 1.9's translations are written for (it stamps onnx's newest on the model)


MXNetPruneResult = PruneResult  # `result.block` is the pruned block


def export(block: Any, example_inputs: Sequence[np.ndarray]) -> onnx.ModelProto:
    """The HybridBlock `block` as ONNX through mx.onnx.export_model, inputs named input_0, input_1, ...
    (a hybridized deep copy is exported; the block keeps its own hybridize settings)."""
    import mxnet as mx

    if not isinstance(block, mx.gluon.HybridBlock):
        raise SPAError(f"MXNet adapter: {type(block).__name__} is a Block, not a HybridBlock; MXNet exports only "
                       "HybridBlocks (their forward must be hybrid_forward)")
    block._clear_cached_op()  # it holds native handles, which deepcopy cannot copy; the next call rebuilds it
    traced = copy.deepcopy(block)
    try:
        traced.hybridize()
        traced(*[mx.nd.array(x) for x in example_inputs])  # builds the cached graph that export() writes
        with tempfile.TemporaryDirectory(prefix="spa-mxnet-") as folder, _onnx_mapping_for_mxnet():
            prefix = str(Path(folder) / "model")
            traced.export(prefix)
            path = Path(folder) / "model.onnx"
            mx.onnx.export_model(f"{prefix}-symbol.json", f"{prefix}-0000.params",
                                 [np.shape(x) for x in example_inputs], [np.asarray(x).dtype for x in example_inputs],
                                 str(path), dynamic=True,
                                 dynamic_input_shapes=[[None, *np.shape(x)[1:]] for x in example_inputs])
            model = onnx.load(path)
    except Exception as error:  # noqa: BLE001 - MXNet raises many kinds here
        raise SPAError(f"MXNet adapter: mx.onnx.export_model failed on {type(block).__name__} "
                       f"({type(error).__name__}: {first_line(error)})") from None
    _name_inputs(model)
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = OPSET  # what its operators are; SPA converts from there like any opset-13 model
    return model


@contextlib.contextmanager
def _onnx_mapping_for_mxnet() -> Iterator[None]:
    """MXNet 1.9's exporter reads dtype tables from `onnx.mapping`, which onnx removed in 1.17; lend it
    equivalent tables built from onnx.helper while it runs."""
    from onnx import helper

    if hasattr(onnx, "mapping"):
        yield
        return
    to_numpy = {}
    for tensor_type in helper.get_all_tensor_dtypes():
        with contextlib.suppress(Exception):  # types NumPy has no dtype for
            to_numpy[tensor_type] = helper.tensor_dtype_to_np_dtype(tensor_type)
    mapping = types.ModuleType("onnx.mapping")
    mapping.TENSOR_TYPE_TO_NP_TYPE = to_numpy
    mapping.NP_TYPE_TO_TENSOR_TYPE = {dtype: tensor_type for tensor_type, dtype in reversed(to_numpy.items())
                                      if dtype.kind in "biufc"}
    sys.modules["onnx.mapping"] = onnx.mapping = mapping
    try:
        yield
    finally:
        del sys.modules["onnx.mapping"], onnx.mapping


def _name_inputs(model: onnx.ModelProto) -> None:
    """The data inputs become input_0, input_1, ... (MXNet calls them data, data1, ...), and weights stop
    being graph inputs too (an old ONNX convention MXNet keeps, which makes them overridable at run time)."""
    weights = {t.name for t in model.graph.initializer}
    data = [value for value in model.graph.input if value.name not in weights]
    renames = dict(zip((value.name for value in data), input_names(len(data))))
    for value in data:
        value.name = renames[value.name]
    del model.graph.input[:]
    model.graph.input.extend(data)
    for node in model.graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]


def prune(block: Any, example_inputs: Any, criterion: str = "l1", tolerance: float = 1e-4,
          **plan_options: Any) -> PruneResult:
    """Prune an initialised Gluon `block` (left unchanged) and return a pruned deep copy of the same classes.

    `example_inputs` is an array or tuple of arrays (NumPy or NDArray; the
    batch axis is exported as dynamic); `criterion` and `plan_options` are
    those of `spa.Model.plan`. Raises SPAError when a parameter cannot be
    matched to the ONNX model or the pruned copy differs from the pruned ONNX
    model by more than `tolerance` (relative to the output scale).
    """
    inputs = tuple(_as_array(x) for x in as_tuple(example_inputs))
    return prune_with(MXNetAdapter(), block, inputs, criterion, tolerance, **plan_options)


class MXNetAdapter(FrameworkAdapter):
    """MXNet Gluon for spa.frameworks.protocol.prune_with."""

    label, model_name = "MXNet adapter", "block"

    def export(self, block: Any, inputs: tuple) -> onnx.ModelProto:
        return export(block, inputs)

    def pruned_copy(self, block: Any, pruned: PrunedExport) -> Any:
        result = copy.deepcopy(block)  # export() cleared its cached graph, so it copies
        _replace_parameters(result, pruned.arrays)
        _fix_layer_attributes(result)
        return result

    def outputs(self, block: Any, inputs: tuple) -> list[np.ndarray]:
        import mxnet as mx

        try:
            outputs = as_list(block(*[mx.nd.array(x) for x in inputs]))
            mx.nd.waitall()  # MXNet runs operators asynchronously; their errors surface here, not at exit
        except Exception:
            with contextlib.suppress(Exception):
                mx.nd.waitall()  # drain the failed operators' other errors
            raise
        return [e.asnumpy() for e in outputs]


def _as_array(value: Any) -> np.ndarray:
    return value.asnumpy() if hasattr(value, "asnumpy") else np.asarray(value)


def _replace_parameters(block: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """Each parameter is re-initialised with the array exported under its name (the same in the deep copy)."""
    import mxnet as mx

    for parameter in block.collect_params().values():
        value = arrays.get(parameter.name)
        if value is None:
            raise SPAError(f"MXNet adapter: parameter {parameter.name} is not in the exported ONNX model under its "
                           "own name; the block cannot be patched")
        contexts = parameter.list_ctx()
        parameter._shape = tuple(value.shape)  # Gluon's shape setter refuses a smaller shape; these are its fields
        parameter._data = parameter._grad = None
        parameter._deferred_init = ()
        parameter._load_init(mx.nd.array(value, dtype=parameter.dtype), contexts)


def _fix_layer_attributes(block: Any) -> None:
    """Make the widths Gluon layers hand to their operators agree with their pruned weights."""
    from mxnet.gluon import nn
    from mxnet.gluon.nn.conv_layers import _Conv

    def visit(layer: Any) -> None:
        if isinstance(layer, _Conv):
            first, per_group = layer.weight.shape[:2]
            groups = layer._kwargs["num_group"]
            if "Deconvolution" in layer._op_name:  # weight is (in, out / groups, ...)
                layer._in_channels, layer._channels = first, per_group * groups
            else:
                groups = pruned_groups(groups, layer._channels, first, per_group)
                layer._in_channels, layer._channels = per_group * groups, first
            layer._kwargs["num_filter"], layer._kwargs["num_group"] = layer._channels, groups
        elif isinstance(layer, nn.Dense):
            layer._units, layer._in_units = layer.weight.shape
        elif isinstance(layer, nn.Embedding):
            layer._kwargs["input_dim"], layer._kwargs["output_dim"] = layer.weight.shape
        for child in layer._children.values():
            visit(child)

    visit(block)
    if hasattr(block, "_clear_cached_op"):
        block._clear_cached_op()  # the cached graph was built for the old widths
