"""Latency for a report: whole-model medians and per-layer kernel times, before and after pruning."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from spa.errors import SPAError
from spa.html_report.contents import Side
from spa.html_report.layer_graph import layer_graph
from spa.latency import attribute_to, median_latency, node_latencies, paired_latency
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
    summary: dict[str, Any] = {"threads": threads} | _whole_model(before, after, feeds, threads)
    for key, side in sides.items():
        with phase(f"profiling the {'pruned' if key == 'after' else 'original'} model's layers with onnxruntime"):
            per_layer, other = _per_layer(side, feeds, threads)
        for row in contents["layers"]:
            row[f"latency_{key}"] = per_layer.get(row["id"], 0.0)
        summary[key]["other_ms"] = other
    contents["latency"] = summary


def _whole_model(before: Side, after: Side | None, feeds, threads: int) -> dict[str, Any]:
    """Whole-model medians; the two models timed in alternation, so that a drift of the machine between
    two separate timings cannot pass for a speed-up or hide one."""
    if after is None:
        with phase("timing the original model with onnxruntime"):
            whole = median_latency(before.onnx, feeds, threads)
        return {"before": {"median_ms": whole.median_ms}, "batch": whole.batch, "repeats": whole.repeats}
    with phase("timing the original and the pruned model with onnxruntime, in alternation"):
        pair = paired_latency(before.onnx, after.onnx, feeds, threads)
    return {"before": {"median_ms": pair.reference_ms}, "after": {"median_ms": pair.candidate_ms},
            "batch": pair.batch, "repeats": pair.repeats}
