"""Small lookups the import-time rewrites share: value shapes and fresh names."""

from __future__ import annotations

import onnx


def known_dims(graph: onnx.GraphProto, initializers: bool = False) -> dict[str, list[int | None]]:
    """Value name -> dims (None where not static) from the graph's inputs, value_info and outputs, and
    from its initializers when `initializers` is set."""
    dims: dict[str, list[int | None]] = {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
            dims[info.name] = [d.dim_value if d.HasField("dim_value") else None
                               for d in info.type.tensor_type.shape.dim]
    if initializers:
        for tensor in graph.initializer:
            dims[tensor.name] = list(tensor.dims)
    return dims


def fresh_name(base: str, taken: set[str]) -> str:
    """`base`, or `base_1`, `base_2` ... whichever is not in `taken` (which then holds it)."""
    name, suffix = base, 0
    while name in taken:
        suffix += 1
        name = f"{base}_{suffix}"
    taken.add(name)
    return name
