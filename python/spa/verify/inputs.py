"""Inputs to run a model on: given by the user (`--inputs DATA.npz`), or made from its declared inputs.

Made inputs respect every static dimension. A dynamic dimension takes the
size the user gave (`--input-shape name:1x3x224x224`), else the size already
chosen for the same symbolic name, else a default: 2 for the batch (axis 0),
64 for the spatial axes of an image-like float input (rank 4 or more), 16
otherwise. Float inputs are standard normal; an integer input that indexes a
constant table (a Gather, as token ids and position ids do) is uniform over
the table's rows; any other integer or bool input is all ones (masks).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from spa.calibration import load_calibration
from spa.errors import SPAError

DEFAULT_BATCH = 2
DEFAULT_SPATIAL = 64
DEFAULT_LENGTH = 16

_SPEC = re.compile(r"^(?P<name>.+):(?P<dims>\d+(x\d+)*)$")


@dataclass(frozen=True)
class GraphInput:
    """One graph input: name, NumPy dtype and dims (an int, a symbolic name, or None when unknown)."""

    name: str
    dtype: np.dtype
    dims: tuple[int | str | None, ...]


def parse_input_shapes(specs: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """`["x:1x3x224x224", ...]` -> {"x": (1, 3, 224, 224)}; raises SPAError for a malformed entry."""
    shapes = {}
    for spec in specs:
        match = _SPEC.match(spec.strip())
        if not match:
            raise SPAError(f"--input-shape {spec!r}: expected NAME:DIMS such as input:1x3x224x224")
        shapes[match["name"]] = tuple(int(d) for d in match["dims"].split("x"))
    return shapes


def graph_inputs(model: onnx.ModelProto) -> list[GraphInput]:
    """The inputs a caller must feed (initializers listed as inputs are left out), in order."""
    initializers = {t.name for t in model.graph.initializer}
    result = []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor = value.type.tensor_type
        if not value.type.HasField("tensor_type"):
            raise SPAError(f"graph input {value.name!r} is not a tensor; SPA cannot feed it")
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type))
        dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim)
        result.append(GraphInput(value.name, dtype, dims))
    return result


def resolve_shapes(inputs: Sequence[GraphInput], given: Mapping[str, Sequence[int]] | None = None
                   ) -> dict[str, tuple[int, ...]]:
    """A concrete shape for every input (see the module doc); raises SPAError if a given shape
    names no input, has the wrong rank, or contradicts a static dimension."""
    given = dict(given or {})
    unknown = set(given) - {i.name for i in inputs}
    if unknown:
        raise SPAError(f"--input-shape: the model has no input named {', '.join(sorted(unknown))} "
                       f"(its inputs: {', '.join(i.name for i in inputs)})")
    symbols: dict[str, int] = {}
    for graph_input in inputs:  # sizes the user gave name the symbols first
        if graph_input.name in given:
            _record_symbols(graph_input, tuple(given[graph_input.name]), symbols)
    shapes = {}
    for graph_input in inputs:
        if graph_input.name in given:
            shapes[graph_input.name] = tuple(given[graph_input.name])
            continue
        image_like = is_floating(graph_input.dtype) and len(graph_input.dims) >= 4
        shape = []
        for axis, dim in enumerate(graph_input.dims):
            if isinstance(dim, int) and dim > 0:
                shape.append(dim)
            elif isinstance(dim, str) and dim in symbols:
                shape.append(symbols[dim])
            else:
                size = DEFAULT_BATCH if axis == 0 else DEFAULT_SPATIAL if image_like else DEFAULT_LENGTH
                if isinstance(dim, str):
                    symbols[dim] = size
                shape.append(size)
        shapes[graph_input.name] = tuple(shape)
    return shapes


def _record_symbols(graph_input: GraphInput, shape: tuple[int, ...], symbols: dict[str, int]) -> None:
    where = f"--input-shape {graph_input.name}"
    if len(shape) != len(graph_input.dims):
        raise SPAError(f"{where}: the input has rank {len(graph_input.dims)}, got {len(shape)} dims")
    for axis, (dim, size) in enumerate(zip(graph_input.dims, shape)):
        if isinstance(dim, int) and dim > 0 and dim != size:
            raise SPAError(f"{where}: dim {axis} is fixed at {dim} in the model, got {size}")
        if isinstance(dim, str):
            symbols.setdefault(dim, size)


def index_bounds(model: onnx.ModelProto) -> dict[str, int]:
    """Integer graph input -> rows of the constant table it indexes through a Gather (directly or via Cast)."""
    tables = {t.name: tuple(t.dims) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tables[node.output[0]] = tuple(node.attribute[0].t.dims)
    sources = {value.name: value.name for value in model.graph.input}
    bounds: dict[str, int] = {}
    for node in model.graph.node:
        if node.op_type in ("Cast", "Identity") and node.input and node.input[0] in sources:
            sources[node.output[0]] = sources[node.input[0]]
        elif node.op_type == "Gather" and len(node.input) > 1 and node.input[1] in sources \
                and node.input[0] in tables:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
            table = tables[node.input[0]]
            if table and -len(table) <= axis < len(table):
                name = sources[node.input[1]]
                bounds[name] = min(bounds.get(name, table[axis]), table[axis])
    return bounds


def is_floating(dtype: np.dtype) -> bool:
    """True for NumPy's floats and for ml_dtypes' (bfloat16, the float8s), which NumPy sees as opaque."""
    return dtype.kind == "f" or (dtype.kind == "V" and dtype.name.startswith(("bfloat", "float")))


def generated_inputs(model: onnx.ModelProto, shapes: Mapping[str, Sequence[int]] | None = None,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """Feeds for every graph input (see the module doc); `shapes` fixes the sizes of named inputs."""
    inputs = graph_inputs(model)
    concrete = resolve_shapes(inputs, shapes)
    bounds = index_bounds(model)
    rng = np.random.default_rng(seed)
    feeds = {}
    for graph_input in inputs:
        shape, dtype = concrete[graph_input.name], graph_input.dtype
        if is_floating(dtype):
            feeds[graph_input.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu" and graph_input.name in bounds:
            feeds[graph_input.name] = rng.integers(0, max(1, bounds[graph_input.name]), shape).astype(dtype)
        elif dtype.kind in "iub":
            feeds[graph_input.name] = np.ones(shape, dtype)
        else:
            raise SPAError(f"graph input {graph_input.name!r} has type {dtype}; give inputs with --inputs DATA.npz")
    return feeds


def read_inputs(path: str, model: onnx.ModelProto, limit: int | None = None) -> dict[str, np.ndarray]:
    """Feeds read from `path` (.npz by input name, or .npy for one input), cast to the declared types.

    A fixed batch dimension takes that many samples; otherwise the first
    `limit` samples (all when None). Raises SPAError naming the file for
    arrays that do not fit the inputs.
    """
    inputs = graph_inputs(model)
    arrays = load_calibration(path, [i.name for i in inputs])
    feeds = {}
    for graph_input in inputs:
        array = arrays[graph_input.name]
        batch = graph_input.dims[0] if graph_input.dims else None
        if isinstance(batch, int) and batch > 0:
            if len(array) < batch:
                raise SPAError(f"{path}: input {graph_input.name!r} has a fixed batch of {batch}, "
                               f"the file holds {len(array)} samples")
            array = array[:batch]
        elif limit:
            array = array[:limit]
        if array.ndim != len(graph_input.dims):
            raise SPAError(f"{path}: input {graph_input.name!r} has rank {len(graph_input.dims)}, "
                           f"the array has shape {list(array.shape)}")
        feeds[graph_input.name] = np.ascontiguousarray(array, dtype=graph_input.dtype)
    return feeds
