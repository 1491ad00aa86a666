"""One combination of a sweep, as a task any backend can run, and the sweep over all of them."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from spa.errors import SPAError, first_line
from spa.execution import Backend, LocalBackend
from spa.target import Target

MEASURES = {"flops": "macs", "params": "params", "channels": "channels", "latency": "latency"}  # --measure -> Target


@dataclass(frozen=True)
class Combination:
    criterion: str
    target: float


@dataclass
class SweepInputs:
    """What every task reads: the model, the amount measured, calibration and evaluation inputs."""

    model: bytes
    measure: str = "flops"
    calibration: dict[str, np.ndarray] | None = None
    evaluation: dict[str, np.ndarray] = field(default_factory=dict)
    dense: list[np.ndarray] = field(default_factory=list)
    input_shapes: dict[str, tuple[int, ...]] | None = None
    heads: str = "dims"
    round_to: int | str = 1  # kept widths a multiple of this (see Model.plan)


def _run(model: onnx.ModelProto | bytes, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    from spa.verify.checks import Runner

    outputs = Runner(model if isinstance(model, bytes) else model.SerializeToString(), threads=1).run(feeds)
    if not isinstance(outputs, list):
        raise SPAError(f"onnxruntime cannot run the model on the evaluation inputs: {outputs.line()}")
    return outputs


def agreement(dense: Sequence[np.ndarray], pruned: Sequence[np.ndarray]) -> tuple[float | None, float]:
    """(top-1 agreement over the 2-D outputs, None without one; the relative output error)."""
    from spa.sensitivity.measure import output_damage

    classes = [(d, p) for d, p in zip(dense, pruned) if np.asarray(d).ndim == 2 and np.asarray(d).shape[1] > 1]
    top1 = float(np.mean([np.mean(d.argmax(1) == p.argmax(1)) for d, p in classes])) if classes else None
    return top1, output_damage(dense, pruned)


def prune_combination(inputs: SweepInputs, combination: Combination) -> dict[str, Any]:
    """A task: prune with one criterion to one target (verified), and measure the result."""
    import spa

    start = time.perf_counter()
    row: dict[str, Any] = {"criterion": combination.criterion, "target": combination.target,
                           "measure": inputs.measure, "round_to": inputs.round_to}
    try:
        model = spa.load(onnx.load_from_string(inputs.model))
        model.heads = inputs.heads
        before = model.stats()
        calibration = inputs.calibration if combination.criterion == "obspa" else None
        plan = model.plan(criterion=combination.criterion, calibration=calibration, quiet=True,
                          input_shapes=inputs.input_shapes, backend=LocalBackend(1), round_to=inputs.round_to,
                          target=Target(MEASURES[inputs.measure], combination.target))
        applied = model.prune(plan, inputs=inputs.evaluation, input_shapes=inputs.input_shapes)
        written = model.to_onnx()
    except SPAError as error:
        return row | {"error": first_line(error), "seconds": time.perf_counter() - start}
    blob = written.SerializeToString()
    top1, error = agreement(inputs.dense, _run(blob, inputs.evaluation))
    after = model.stats()
    row["round_to"] = plan.round_to or inputs.round_to  # what "auto" chose
    return row | {"params": after.params, "params_removed": 1 - after.params / max(before.params, 1),
                  "macs": after.macs, "macs_removed": 1 - after.macs / max(before.macs, 1),
                  "top1_agreement": top1, "output_error": error, "blocked_groups": len(applied.blocked),
                  "data_used": plan.data_used, "seconds": time.perf_counter() - start, "model": blob}


def run_sweep(inputs: SweepInputs, criteria: Sequence[str], targets: Sequence[float],
              backend: Backend | None = None, quiet: bool = False) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the dense model's row, one row per combination, in criteria x targets order)."""
    import spa
    from spa.latency import median_latency
    from spa.progress import progress_bar

    inputs.dense = _run(inputs.model, inputs.evaluation)
    stats = spa.load(onnx.load_from_string(inputs.model)).stats()
    reference = {"criterion": "dense", "target": 0.0, "params": stats.params, "macs": stats.macs,
                 "latency_ms": median_latency(inputs.model, inputs.evaluation, threads=1).median_ms,
                 "top1_agreement": 1.0, "output_error": 0.0}
    combinations = [Combination(c, t) for c in criteria for t in targets]
    bar = progress_bar(len(combinations), "sweep", quiet)
    rows = (backend or LocalBackend()).map(prune_combination, inputs, combinations, lambda _: bar.update(1))
    bar.close()
    _time_one_at_a_time(rows, inputs.evaluation, quiet)
    return reference, rows


def _time_one_at_a_time(rows: list[dict[str, Any]], feeds: Mapping[str, np.ndarray], quiet: bool) -> None:
    """Latency is timed here, after the tasks: tasks sharing the machine would slow each other's clocks."""
    from spa.latency import median_latency
    from spa.progress import progress_bar

    timed = [row for row in rows if "model" in row]
    bar = progress_bar(len(timed), "timing", quiet)
    for row in timed:
        row["latency_ms"] = median_latency(row["model"], feeds, threads=1).median_ms
        bar.update(1)
    bar.close()
