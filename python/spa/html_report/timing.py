"""Latency for a report: whole-model medians and per-layer kernel times, before and after pruning."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from spa.errors import SPAError
from spa.html_report.contents import Side
from spa.html_report.layer_graph import layer_graph
from spa.latency import attribute_to, median_latency, node_latencies
from spa.progress import phase
from spa.verify.inputs import generated_inputs


def _per_layer(side: Side, feeds, threads: int) -> tuple[dict[str, float], float]:
    layers = {layer.id: (layer.op, *layer.weights) for layer in layer_graph(side.onnx).layers}
    return attribute_to(node_latencies(side.onnx, feeds, threads), side.onnx.graph, layers)


def add_latency(contents: dict[str, Any], before: Side, after: Side | None,
                input_shapes: Mapping[str, Sequence[int]] | None = None, threads: int = 1) -> None:
    """Fill `contents["latency"]` and each layer row's latency_before/after (ms), or say why not measured."""
    try:
        feeds = generated_inputs(before.onnx, input_shapes)
    except SPAError as error:
        contents["latency"] = {"note": f"not measured: {error} (give --input-shape)"}
        return
    sides = {"before": before} | ({"after": after} if after is not None else {})
    summary: dict[str, Any] = {"threads": threads}
    for key, side in sides.items():
        with phase(f"timing the {'pruned' if key == 'after' else 'original'} model with onnxruntime"):
            whole = median_latency(side.onnx, feeds, threads)
            per_layer, other = _per_layer(side, feeds, threads)
        for row in contents["layers"]:
            row[f"latency_{key}"] = per_layer.get(row["id"], 0.0)
        summary[key] = {"median_ms": whole.median_ms, "other_ms": other}
        summary["batch"], summary["repeats"] = whole.batch, whole.repeats
    contents["latency"] = summary
