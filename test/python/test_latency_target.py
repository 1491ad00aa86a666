"""Pruning to a latency target: the search, the rounding chosen from measurements, and the meter's cache.

Selection is tested against a simulated machine (a meter whose latency is a known function of the
widths) so that what it must choose is known; the real meter is tested for what it measures and caches.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest

import spa
import spa.model
from spa.data import demo_model_path, load_demo_images
from spa.errors import SPAError
from spa.latency import LatencyMeter


class BlockedKernels:
    """A machine whose kernels run three times slower when a layer's output width is not a multiple of 16."""

    def __init__(self, feeds, threads: int = 1) -> None:
        self.feeds, self.threads = feeds, threads

    def __call__(self, model: onnx.ModelProto) -> float:
        cost = 0.0
        for tensor in model.graph.initializer:
            if tensor.name.endswith(".weight"):
                slow = 1 if tensor.dims[0] % 16 == 0 else 3
                cost += slow * float(np.prod(tensor.dims))
        return cost / 1e4


def test_latency_target_chooses_the_rounding_the_machine_rewards(monkeypatch) -> None:
    monkeypatch.setattr(spa.model, "LatencyMeter", BlockedKernels)
    model = spa.load(demo_model_path())
    dense = BlockedKernels({})(model.to_onnx())
    plan = model.plan(criterion="l1", target_latency=0.4)
    assert "multiples of 16" in plan.data_used and plan.round_to == 16
    model.prune(plan)
    pruned = BlockedKernels({})(model.to_onnx())
    assert pruned <= 0.6 * dense  # the target, as the machine measures it
    kept = [t.dims[0] for t in model.to_onnx().graph.initializer if t.name.endswith(".weight")]
    assert all(width % 16 == 0 for width in kept[:-1])  # the classifier's 10 outputs stay


def test_a_fixed_rounding_is_kept_and_auto_needs_a_latency_target(monkeypatch) -> None:
    monkeypatch.setattr(spa.model, "LatencyMeter", BlockedKernels)
    model = spa.load(demo_model_path())
    plan = model.plan(criterion="l1", target_latency=0.4, round_to=8)
    assert "rounded" not in plan.data_used and plan.round_to == 8  # one candidate: nothing to choose
    with pytest.raises(SPAError, match="target_latency"):
        model.plan(criterion="l1", ratio=0.3, round_to="auto")


def test_meter_measures_once_per_model_and_machine() -> None:
    images, _ = load_demo_images()
    model = onnx.load(demo_model_path())
    meter = LatencyMeter({"image": images[:32]}, threads=1, budget=0.2)
    first = meter(model)
    again = meter(model)
    assert first == again > 0 and meter.measured == 1  # the second came from the cache
    other = LatencyMeter({"image": images[:64]}, threads=1, budget=0.2)
    other(model)
    assert other.measured == 1  # other inputs, another entry
    times = other.weight_times(model)  # the profile of each layer, read back the second time
    assert all(times[f"{layer}.weight"] > 0 for layer in ("features.0", "features.3", "classifier.0"))
    assert other.weight_times(model) == times and other.measured == 2


def test_cli_latency_target_and_bad_rounding(tmp_path) -> None:
    def spa_cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "spa", *args], capture_output=True, text=True)

    out = tmp_path / "fast.onnx"
    result = spa_cli("--quiet", "prune", str(demo_model_path()), "-o", str(out), "--target-latency", "0.3",
                     "--input-shape", "image:8x1x28x28")
    assert result.returncode == 0, result.stderr
    assert "chosen by measured onnxruntime latency" in result.stdout and out.is_file()
    bad = spa_cli("prune", str(demo_model_path()), "-o", str(tmp_path / "x.onnx"), "--round-to", "auto")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "target_latency" in bad.stderr
    assert not (tmp_path / "x.onnx").exists()
    usage = spa_cli("prune", str(demo_model_path()), "-o", str(tmp_path / "x.onnx"), "--round-to", "zero")
    assert usage.returncode == 2 and "neither a positive integer nor auto" in usage.stderr


class SlowClassifier:
    """A machine on which the first classifier layer runs 50 times slower than its MACs say: latency is
    the sum of each layer's MACs (as widths give them), that layer's times 50, and the meter reports
    the same per weight, as onnxruntime's profiler would."""

    def __init__(self, feeds, threads: int = 1) -> None:
        self.feeds, self.threads = feeds, threads

    def weight_times(self, model: onnx.ModelProto) -> dict[str, float]:
        shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
        times = {"features.0.weight": np.prod(shapes["features.0.weight"]) * 26 * 26,
                 "features.3.weight": np.prod(shapes["features.3.weight"]) * 24 * 24,
                 "classifier.0.weight": 50 * np.prod(shapes["classifier.0.weight"]),
                 "classifier.2.weight": np.prod(shapes["classifier.2.weight"])}
        return {name: float(value) / 1e6 for name, value in times.items()}

    def __call__(self, model: onnx.ModelProto) -> float:
        return sum(self.weight_times(model).values())


def test_latency_costs_follow_the_measured_layer_times(monkeypatch) -> None:
    from spa.planning import Planner

    monkeypatch.setattr(spa.model, "LatencyMeter", SlowClassifier)
    model = spa.load(demo_model_path())
    plan = model.plan(criterion="l1", target_latency=0.3, allocation="sensitivity")
    groups, weights = model.coupling_groups(), model.weights()
    planner = Planner(model, groups, {n: a.shape for n, a in weights.items()}, {g.id: np.ones(g.channels)
                                                                               for g in groups if g.prunable})
    latency, macs = planner.costs("latency"), planner.costs("macs")
    # Group 2 is the classifier's hidden width: by MACs it is cheap next to the convs, measured it is not.
    assert latency[2] / latency[1] > 5 * macs[2] / macs[1]
    model.prune(plan)
    assert SlowClassifier({})(model.to_onnx()) <= 0.7 * SlowClassifier({})(spa.load(demo_model_path()).to_onnx())


class FlatSecondConv(SlowClassifier):
    """A machine on which the second conv takes as long at any width (an overhead-bound kernel), and
    every other layer as long as its MACs say. A dense profile cannot tell it from a machine where
    that conv narrows like the rest; profiles at several widths can."""

    flat = True

    def weight_times(self, model: onnx.ModelProto) -> dict[str, float]:
        times = super().weight_times(model)
        times["classifier.0.weight"] /= 50  # no slow classifier here
        if self.flat:
            times["features.3.weight"] = 2.0  # whatever its widths
        return times


class ProportionalSecondConv(FlatSecondConv):
    """The same conv, 2 ms at full width, narrowing like its MACs."""

    flat = False

    def weight_times(self, model: onnx.ModelProto) -> dict[str, float]:
        times = super().weight_times(model)
        times["features.3.weight"] *= 2.0 / (64 * 32 * 9 * 24 * 24 / 1e6)
        return times


def _latency_costs(machine, monkeypatch) -> dict[int, float]:
    from spa.planning import Planner

    monkeypatch.setattr(spa.model, "LatencyMeter", machine)
    model = spa.load(demo_model_path())
    model.plan(criterion="l1", target_latency=0.5)  # sets up the meter
    groups, weights = model.coupling_groups(), model.weights()
    planner = Planner(model, groups, {n: a.shape for n, a in weights.items()},
                      {g.id: np.ones(g.channels) for g in groups if g.prunable})
    return planner.costs("latency", 0.5)


def test_latency_prices_come_from_layer_times_over_channel_counts(monkeypatch) -> None:
    dense = spa.load(demo_model_path()).to_onnx()
    proportional_dense = ProportionalSecondConv({}).weight_times(dense)
    proportional_dense["features.3.weight"] = 2.0
    assert FlatSecondConv({}).weight_times(dense) == proportional_dense  # one dense profile, two machines
    flat, proportional = (_latency_costs(m, monkeypatch) for m in (FlatSecondConv, ProportionalSecondConv))
    # Groups 0 and 1 are the widths the second conv reads and writes: narrowing them saves little there.
    assert flat[0] < 0.5 * proportional[0] and flat[1] < 0.5 * proportional[1]
    assert flat[2] == pytest.approx(proportional[2])  # the classifier's hidden width does not touch it



class DriftingMachine(BlockedKernels):
    """BlockedKernels on a machine that slows down as it works (thermal throttling, a neighbour's job):
    each separate timing reads 20 % more than the one before (and is cached per model, as the real
    meter's are), while two models timed in alternation keep their true ratio."""

    def __init__(self, feeds, threads: int = 1) -> None:
        super().__init__(feeds, threads)
        self.timed: dict[bytes, float] = {}

    def __call__(self, model: onnx.ModelProto) -> float:
        blob = model.SerializeToString()
        if blob not in self.timed:
            self.timed[blob] = super().__call__(model) * (1 + 0.2 * len(self.timed))
        return self.timed[blob]

    def ratio(self, reference: bytes, candidate: onnx.ModelProto) -> float:
        return BlockedKernels.__call__(self, candidate) / BlockedKernels.__call__(self, onnx.load_from_string(reference))


def test_latency_target_compares_candidates_with_the_original_in_alternation(monkeypatch) -> None:
    monkeypatch.setattr(spa.model, "LatencyMeter", DriftingMachine)
    model = spa.load(demo_model_path())
    dense = BlockedKernels({})(model.to_onnx())
    model.prune(model.plan(criterion="l1", target_latency=0.4))
    pruned = BlockedKernels({})(model.to_onnx())
    # Met, and not by pruning everything it can: separate timings would have read every later
    # candidate as slower than it is and driven the search to its upper end.
    assert 0.45 * dense <= pruned <= 0.6 * dense


class FakeClock:
    """perf_counter for spa.latency: time passes only when a FakeSession runs."""

    def __init__(self) -> None:
        self.now, self.runs = 0.0, 0

    def perf_counter(self) -> float:
        return self.now


class FakeSession:
    """A session whose run takes `base` seconds times a slowdown that grows by half of it with every run
    of any session: a machine slowing down fast."""

    def __init__(self, clock: FakeClock, base: float) -> None:
        self.clock, self.base = clock, base

    def run(self, *_) -> None:
        self.clock.now += self.base * (1 + 0.5 * self.clock.runs)
        self.clock.runs += 1


def test_alternating_rounds_cancel_a_drifting_machine(monkeypatch) -> None:
    import spa.latency

    clock = FakeClock()
    monkeypatch.setattr(spa.latency, "time", clock)
    times = spa.latency._paired_rounds((FakeSession(clock, 1.0), FakeSession(clock, 2.0)), {}, 20)
    ratios = times[:, 1] / times[:, 0]
    # The one run second reads the drift on top: over 2 in rounds where the reference runs first, under
    # 2 where the candidate does. Timed in one fixed order, every ratio would read at least 2.05.
    assert np.all(ratios[0::2] > 2.04) and np.all(ratios[1::2] < 1.96)
    assert np.median(ratios) == pytest.approx(2.0, rel=0.01)


def test_paired_latency_and_the_meters_ratio_on_real_models() -> None:
    from spa.latency import paired_latency

    images, _ = load_demo_images()
    feeds = {"image": images[:64]}
    dense = spa.load(demo_model_path())
    half = spa.load(demo_model_path())
    half.prune(half.plan(criterion="l1", ratio=0.75, round_to=8))
    same = paired_latency(dense.to_onnx(), dense.to_onnx(), feeds, budget=1.0)
    assert abs(same.ratio - 1) < 0.15 and same.spread < 0.1 and same.repeats >= 5
    faster = paired_latency(dense.to_onnx(), half.to_onnx(), feeds, budget=1.0)
    assert faster.ratio < 0.7 and faster.candidate_ms < faster.reference_ms
    meter = LatencyMeter(feeds, threads=1, budget=0.5)
    reference = dense.to_onnx().SerializeToString()
    first = meter.ratio(reference, half.to_onnx())
    assert first < 0.8 and meter.ratio(reference, half.to_onnx()) == first and meter.measured == 1
