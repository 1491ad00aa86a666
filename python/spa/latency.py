"""onnxruntime latency on this machine: whole-model medians, and per-node kernel times from ORT's profiler.

Latency at batch 1 on a small model is mostly the runtime's own overhead, so
every figure says its batch and thread count, and each is the median of
repeated runs after warm-up runs.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from spa.errors import SPAError, first_line

WARMUP = 2
MIN_REPEATS = 5


@dataclass(frozen=True)
class Latency:
    """The median of `repeats` timed runs, in milliseconds, at `batch` with `threads` intra-op threads."""

    median_ms: float
    batch: int
    threads: int
    repeats: int

    def describe(self) -> str:
        return f"{self.median_ms:.3f} ms (median of {self.repeats} runs, batch {self.batch}, {self.threads} " \
               f"thread{'s' if self.threads != 1 else ''}, onnxruntime CPU)"


def _session(model: onnx.ModelProto | bytes, threads: int, profile_prefix: str | None = None,
             optimised: Path | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if profile_prefix:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    if optimised is not None:
        options.optimized_model_filepath = str(optimised)
    blob = model if isinstance(model, bytes) else model.SerializeToString()
    try:
        return ort.InferenceSession(blob, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        raise SPAError(f"onnxruntime cannot load the model to time it: {first_line(error)}") from None


def _batch(feeds: Mapping[str, np.ndarray]) -> int:
    shapes = [array.shape for array in feeds.values() if array.ndim]
    return int(shapes[0][0]) if shapes else 1


def _warm_up(session, feeds: Mapping[str, np.ndarray], repeats: int, budget: float) -> int:
    """Run WARMUP untimed runs; the repeat count that fits `budget` seconds (at least MIN_REPEATS)."""
    start = time.perf_counter()
    for _ in range(WARMUP):
        session.run(None, dict(feeds))
    each = (time.perf_counter() - start) / WARMUP
    return max(MIN_REPEATS, min(repeats, int(budget / max(each, 1e-6))))


def median_latency(model: onnx.ModelProto | bytes, feeds: Mapping[str, np.ndarray], threads: int = 1,
                   repeats: int = 20, budget: float = 3.0) -> Latency:
    """The median wall time of up to `repeats` runs of `model` on `feeds` (fewer when they would take
    more than `budget` seconds), after WARMUP untimed runs."""
    session = _session(model, threads)
    repeats = _warm_up(session, feeds, repeats, budget)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, dict(feeds))
        timings.append(time.perf_counter() - start)
    return Latency(1000 * float(np.median(timings)), _batch(feeds), threads, repeats)


@dataclass(frozen=True)
class Comparison:
    """Two models timed in alternation: the medians (ms) of each, and `ratio`, the median over rounds of
    candidate time / reference time, with `spread`, the standard error of that median. Alternating
    cancels what drifts on a timescale of seconds (clock boost, other processes), which separate
    measurements minutes apart do not: a 7 ms model's ratio moved 6 points between two such runs."""

    reference_ms: float
    candidate_ms: float
    ratio: float
    spread: float
    batch: int
    threads: int
    repeats: int


def _paired_rounds(sessions: Sequence, feeds: Mapping[str, np.ndarray], rounds: int) -> np.ndarray:
    """(rounds, 2) wall times of the two sessions, run back to back, the first one first in even rounds."""
    times = np.zeros((rounds, 2))
    for index in range(rounds):
        for which in ((0, 1) if index % 2 == 0 else (1, 0)):
            start = time.perf_counter()
            sessions[which].run(None, dict(feeds))
            times[index, which] = time.perf_counter() - start
    return times


def paired_latency(reference: onnx.ModelProto | bytes, candidate: onnx.ModelProto | bytes,
                   feeds: Mapping[str, np.ndarray], threads: int = 1, repeats: int = 40, budget: float = 4.0,
                   reference_session=None) -> Comparison:
    """Time `candidate` against `reference` in alternation (see Comparison): up to `repeats` rounds,
    fewer when they would take more than `budget` seconds, after WARMUP untimed runs of each.
    `reference_session` reuses an onnxruntime session of `reference` (a search times many candidates
    against one model)."""
    first = reference_session or _session(reference, threads)
    sessions = (first, _session(candidate, threads))
    rounds = min(_warm_up(session, feeds, repeats, budget / 2) for session in sessions)
    times = _paired_rounds(sessions, feeds, rounds)
    ratios = times[:, 1] / times[:, 0]
    median = float(np.median(ratios))
    # The standard error of a median, from the median absolute deviation (both robust to a stray slow run).
    spread = 1.2533 * 1.4826 * float(np.median(np.abs(ratios - median))) / np.sqrt(rounds)
    reference_ms, candidate_ms = (1000 * float(np.median(times[:, which])) for which in (0, 1))
    return Comparison(reference_ms, candidate_ms, median, spread, _batch(feeds), threads, rounds)


@dataclass(frozen=True)
class NodeProfile:
    """Per-node kernel times (ms, medians) of the graph onnxruntime ran after its own optimisations."""

    times: dict[str, float]
    graph: onnx.GraphProto  # the optimised graph: fused nodes, renamed and re-laid-out weights


def node_latencies(model: onnx.ModelProto | bytes, feeds: Mapping[str, np.ndarray], threads: int = 1,
                   repeats: int = 10, budget: float = 2.0) -> NodeProfile:
    """The median kernel time of each node over up to `repeats` runs (see median_latency for `budget`),
    from onnxruntime's profiler, with the graph it ran (see attribute_to)."""
    with tempfile.TemporaryDirectory() as folder:
        optimised = Path(folder) / "optimised.onnx"
        session = _session(model, threads, str(Path(folder) / "profile"), optimised)
        repeats = _warm_up(session, feeds, repeats, budget)
        for _ in range(repeats):
            session.run(None, dict(feeds))
        events = json.loads(Path(session.end_profiling()).read_text())
        graph = onnx.load(str(optimised), load_external_data=False).graph
    durations: dict[str, list[float]] = defaultdict(list)
    for event in events:
        name = event.get("name", "")
        if event.get("cat") == "Node" and name.endswith("_kernel_time"):
            durations[name[:-len("_kernel_time")]].append(event.get("dur", 0) / 1000)
    return NodeProfile({name: float(np.median(times[-repeats:])) for name, times in durations.items()}, graph)


def _tensor_owners(original: onnx.GraphProto, layers: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Tensor name -> the layer whose result it is, through nodes with a single computed input."""
    constants = {t.name for t in original.initializer}
    owners: dict[str, str] = {}
    for node in original.node:
        if all(name in constants for name in node.input if name):  # Constant, Identity of a shared weight
            constants.update(node.output)
            continue
        computed = {owners.get(name) for name in node.input if name and name not in constants}
        owner = node.name if node.name in layers else (computed.pop() if len(computed) == 1 else None)
        if owner is not None:
            owners.update((name, owner) for name in node.output if name)
    return owners


def _owner(node: onnx.NodeProto, layers: Mapping[str, Sequence[str]], by_weight: Mapping[str, str],
           by_tensor: Mapping[str, str]) -> str | None:
    """The layer a run node computes: by name (onnxruntime calls what it fuses "fused NAME"), by the
    tensor it is named after when it does the layer's kind of work (onnxruntime's NCHWc convolutions are
    called after their output: "TENSOR_nchwc"), or by a weight only that layer reads."""
    name = node.name.removeprefix("fused ")
    if name in layers:
        return name
    for candidate in (node.name, *node.output):
        for _ in range(3):  # onnxruntime appends suffixes such as _nchwc to the names it makes
            owner = by_tensor.get(candidate)
            if owner is not None and layers[owner][0] in node.op_type:
                return owner
            candidate = candidate.rsplit("_", 1)[0]
    for weight in node.input:  # last: onnxruntime may share equal constants between layers
        if weight in by_weight:
            return by_weight[weight]
    return None


def attribute_to(profile: NodeProfile, original: onnx.GraphProto, layers: Mapping[str, Sequence[str]]
                 ) -> tuple[dict[str, float], float]:
    """(layer -> the kernel time of the run nodes that compute it, the time of all other run nodes).

    `layers` maps the names of `original`'s layer nodes to (op type, *their constant inputs).
    """
    readers: dict[str, set[str]] = defaultdict(set)
    for layer, (_, *weights) in layers.items():
        for weight in weights:
            readers[weight].add(layer)
    by_weight = {weight: owners.pop() for weight, owners in readers.items() if len(owners) == 1}
    by_tensor = _tensor_owners(original, layers)
    nodes = {node.name: node for node in profile.graph.node}
    owned: dict[str, float] = defaultdict(float)
    other = 0.0
    for run_name, milliseconds in profile.times.items():
        node = nodes.get(run_name)
        owner = _owner(node, layers, by_weight, by_tensor) if node is not None else None
        if owner is None:
            other += milliseconds
        else:
            owned[owner] += milliseconds
    return dict(owned), other


def weight_times(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], threads: int = 1,
                 budget: float = 2.0) -> dict[str, float]:
    """Weight name -> the measured kernel time (ms) of the layers that read it, from one profile:
    what each layer costs on this machine, where MACs only estimate it (a depthwise conv is slow for
    its MACs, a wide 1x1 conv fast)."""
    from spa.html_report.layer_graph import layer_graph

    layers = {layer.id: (layer.op, *layer.weights) for layer in layer_graph(model).layers}
    owned, _ = attribute_to(node_latencies(model, feeds, threads, budget=budget), model.graph, layers)
    times: dict[str, float] = defaultdict(float)
    for layer, (_, *weights) in layers.items():
        for weight in weights:
            times[weight] += owned.get(layer, 0.0)
    return dict(times)


def machine_signature(threads: int) -> str:
    """What a latency depends on besides the model and its inputs: this processor, onnxruntime, threads."""
    import onnxruntime

    model_name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            model_name = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                              model_name)
    except OSError:
        pass
    return f"{model_name}|{os.cpu_count()}|onnxruntime {onnxruntime.__version__}|{threads} threads"


class LatencyMeter:
    """Median latencies (ms) of models on fixed inputs, cached on disk per model and machine
    (spa.cache kind "latency"), so that searching for a latency target twice measures once."""

    def __init__(self, feeds: Mapping[str, np.ndarray], threads: int = 1, budget: float = 2.0) -> None:
        self.feeds, self.threads, self.budget = dict(feeds), threads, budget
        self.signature = machine_signature(threads)
        self.measured = 0  # models timed (not read from the cache)
        self._reference: tuple | None = None  # (bytes, digest, session) of the model candidates are timed against

    def __call__(self, model: onnx.ModelProto) -> float:
        from spa.cache import digest, load_arrays, store_arrays

        blob = model.SerializeToString()
        key = digest([blob, self.signature, self._shapes()])
        cached = load_arrays("latency", key)
        if cached is not None and "ms" in cached:
            return float(cached["ms"])
        milliseconds = median_latency(blob, self.feeds, self.threads, budget=self.budget).median_ms
        self.measured += 1
        store_arrays("latency", key, {"ms": np.asarray(milliseconds)})
        return milliseconds

    def ratio(self, reference: bytes, candidate: onnx.ModelProto) -> float:
        """An upper estimate of candidate latency / reference latency: the two timed in alternation
        (paired_latency), the median ratio plus its standard error, so that a search for a target aims
        past it by the measurement's own spread. Cached like the medians."""
        from spa.cache import digest, load_arrays, store_arrays

        blob = candidate.SerializeToString()
        if self._reference is None or self._reference[0] is not reference:
            self._reference = (reference, digest([reference]), _session(reference, self.threads))
        key = digest([self._reference[1], blob, self.signature, self._shapes(), "paired"])
        cached = load_arrays("latency", key)
        if cached is not None and "ratio" in cached:
            return float(cached["ratio"])
        compared = paired_latency(reference, blob, self.feeds, self.threads, budget=2 * self.budget,
                                  reference_session=self._reference[2])
        self.measured += 1
        store_arrays("latency", key, {"ratio": np.asarray(compared.ratio + compared.spread)})
        return compared.ratio + compared.spread

    def forget_reference(self) -> None:
        """Drop the session of the model candidates were timed against (a whole model's weights)."""
        self._reference = None

    def _shapes(self) -> str:
        return ";".join(f"{name}:{array.dtype}{array.shape}" for name, array in sorted(self.feeds.items()))

    def weight_times(self, model: onnx.ModelProto) -> dict[str, float]:
        """`weight_times` of `model` on this meter's inputs, cached like the medians."""
        from spa.cache import digest, load_arrays, store_arrays

        key = digest([model.SerializeToString(), self.signature, self._shapes(), "per weight"])
        cached = load_arrays("latency", key)
        if cached is not None and {"names", "ms"} <= cached.keys():
            return dict(zip(cached["names"].tolist(), cached["ms"].tolist()))
        times = weight_times(model, self.feeds, self.threads, self.budget)
        self.measured += 1
        store_arrays("latency", key, {"names": np.asarray(list(times), dtype=str),
                                      "ms": np.asarray(list(times.values()), dtype=np.float64)})
        return times
