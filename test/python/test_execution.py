"""Backends: local processes and a Ray cluster give the same sensitivity table, plan and sweep, and
survive a killed worker; `spa sweep` end to end."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from browser import parsed, rendered_dom
from ray_cluster import local_cluster

import spa
from spa.calibration import held_out_split
from spa.data import demo_model_path, load_demo_images
from spa.execution import LocalBackend
from spa.sweep import SweepInputs, run_sweep, write_results
from spa.sweep.front import pareto_front, quality
from spa.sensitivity import measure
from spa.sensitivity.measure import grid_counts
from spa.select import eligible_groups

pytestmark = pytest.mark.zoo  # the full tier only (see pyproject's markers)


@pytest.fixture(scope="module")
def ray_backend():
    with local_cluster(cpus=2) as address:
        from ray import cloudpickle

        from spa.execution.ray_backend import RayBackend

        cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import the tests
        backend = RayBackend(address)
        yield backend
        backend.close()


def _mnist_table_inputs():
    model = spa.load(demo_model_path())
    groups = model.coupling_groups()
    weights = model.weights()
    scores = {g.id: np.abs(weights[g.members[0].tensor]).reshape(g.channels, -1).sum(axis=1)
              for g in groups if g.prunable and g.members[0].axis == 0}
    eligible = [g for g in eligible_groups(groups, scores, ()) if g.id in scores]
    images, _ = load_demo_images()
    batches = [{"image": images[:32]}, {"image": images[32:64]}]
    counts = {g.id: grid_counts(g) for g in eligible}
    return model.to_onnx(), eligible, scores, batches, counts


def test_backends_agree_bit_for_bit_on_a_sensitivity_table(ray_backend) -> None:
    base, groups, scores, batches, counts = _mnist_table_inputs()
    tables = [measure(base, groups, scores, batches, counts, backend=backend)
              for backend in (LocalBackend(1), LocalBackend(2), ray_backend)]
    assert tables[0].counts and set(tables[0].damages) == {g.id for g in groups}
    for other in tables[1:]:
        assert set(other.damages) == set(tables[0].damages)
        for group_id, damages in tables[0].damages.items():
            assert np.array_equal(other.damages[group_id], damages)
            assert np.array_equal(other.counts[group_id], tables[0].counts[group_id])


def test_backends_make_the_same_plan(ray_backend, monkeypatch) -> None:
    monkeypatch.setenv("SPA_CACHE_DIR", "off")  # each backend measures its own table
    images, _ = load_demo_images()
    plans = []
    for backend in (LocalBackend(2), ray_backend):
        model = spa.load(demo_model_path())
        plans.append(model.plan(criterion="l1", target_flops=0.4, allocation="sensitivity",
                                calibration={"image": images[:64]}, backend=backend))
    assert plans[0].removed == plans[1].removed and plans[0].removed


def _dies_once(marker: str, item: int) -> int:
    """A task whose worker process dies the first time it gets item 1."""
    if item == 1 and not Path(marker).exists():
        Path(marker).touch()
        os._exit(1)
    return item * 2


def test_a_killed_local_worker_is_retried(tmp_path) -> None:
    marker = tmp_path / "died"
    assert LocalBackend(2).map(_dies_once, str(marker), range(4)) == [0, 2, 4, 6]
    assert marker.exists()


UNGUARDED_SCRIPT = """
from spa.execution import LocalBackend
print("top level ran", flush=True)
print(LocalBackend(2).map(divmod, 7, [2, 3, 4]), flush=True)
"""

GUARDED_SCRIPT_WITH_ITS_OWN_TASK = """
from spa.execution import LocalBackend
def task(shared, item):
    return shared + item
if __name__ == "__main__":
    print(LocalBackend(2).map(task, 10, [1, 2, 3]), flush=True)
"""


@pytest.mark.parametrize("script, expected", [(UNGUARDED_SCRIPT, "[(3, 1), (2, 1), (1, 3)]"),
                                              (GUARDED_SCRIPT_WITH_ITS_OWN_TASK, "[11, 12, 13]")])
def test_workers_run_the_users_script_only_when_they_need_it(tmp_path, script, expected) -> None:
    # Spawned workers re-run the parent's script unless SPA keeps it from them: the unguarded script
    # would print its first line three times, and each worker's own pool would fail while the parent
    # waited for ever. A task defined in the script still needs it, and gets it.
    path = tmp_path / "prune_it.py"
    path.write_text(script)
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("top level ran") == script.count("top level ran"), done.stdout
    assert expected in done.stdout, done.stdout


def test_workers_get_the_script_for_what_is_defined_in_it(monkeypatch) -> None:
    from spa.criteria import CRITERIA, L1Criterion
    from spa.execution.local import _needs_main

    in_script = type("Mine", (L1Criterion,), {"__module__": "__main__", "name": "mine"})
    assert not _needs_main((divmod, {"x": np.zeros(3)}, [1, 2]))
    assert _needs_main((divmod, None, [in_script]))
    monkeypatch.setitem(CRITERIA, "mine", in_script)  # a sweep's workers find criteria by name
    assert _needs_main((divmod, None, ["mine"]))


def test_a_killed_ray_worker_is_retried(ray_backend, tmp_path) -> None:
    marker = tmp_path / "died"
    done = []
    assert ray_backend.map(_dies_once, str(marker), range(4), done.append) == [0, 2, 4, 6]
    assert marker.exists() and sorted(done) == [0, 1, 2, 3]


def _sweep_inputs(images) -> SweepInputs:
    import onnx

    model = onnx.load(demo_model_path())
    calibration, evaluation = held_out_split({"image": images[:128]}, 64)
    return SweepInputs(model.SerializeToString(), "flops", calibration, evaluation)


def _task_process(name: str) -> int | None:
    """The pid of a process whose title says it runs the Ray task `name`."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes().startswith(f"ray::{name}".encode()):
                return int(entry.name)
        except OSError:
            continue
    return None


def test_a_sweep_survives_a_killed_ray_worker_and_matches_local(ray_backend, tmp_path) -> None:
    images, _ = load_demo_images()
    killed: list[int] = []
    finished = threading.Event()

    def kill_one_task() -> None:
        while not killed and not finished.is_set():
            pid = _task_process("prune_combination")
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one_task)
    killer.start()
    try:
        dense, on_ray = run_sweep(_sweep_inputs(images), ["l1", "obspa"], [0.2, 0.4], ray_backend, quiet=True)
    finally:
        finished.set()
        killer.join()
    assert killed, "no sweep task was seen running"
    _, local = run_sweep(_sweep_inputs(images), ["l1", "obspa"], [0.2, 0.4], LocalBackend(2), quiet=True)
    assert len(on_ray) == 4 and not [row for row in on_ray if "error" in row]
    for ray_row, local_row in zip(on_ray, local):
        for key in ("params", "macs", "top1_agreement", "output_error"):
            assert ray_row[key] == local_row[key], key
        assert ray_row["model"] == local_row["model"]  # the same pruned model, byte for byte
    files = write_results(tmp_path, "mnist", dense, on_ray)
    assert (tmp_path / "results.csv").read_text().count("\n") == 6 and len(files) == 7  # header, dense, 4
    summary = json.loads((tmp_path / "results.json").read_text())
    _assert_a_pareto_front(summary["dense"], summary["rows"], summary["pareto"])


def test_the_pareto_front_of_hand_made_rows() -> None:
    dense = {"top1_agreement": 1.0, "latency_ms": 10.0}
    rows = [{"top1_agreement": 0.9, "latency_ms": 8.0},   # on the front
            {"top1_agreement": 0.8, "latency_ms": 9.0},   # beaten by the row above on both
            {"top1_agreement": 0.5, "latency_ms": 4.0},   # on the front: the fastest
            {"top1_agreement": 0.5, "latency_ms": 5.0},   # beaten on latency at equal quality
            {"top1_agreement": None, "output_error": 0.2, "latency_ms": 6.0},  # quality 0.8: on the front
            {"error": "failed"}]                          # not measured: never on it
    assert pareto_front([dense, *rows]) == [3, 5, 1, 0]


def _dominates(a: dict, b: dict) -> bool:
    return (quality(a) >= quality(b) and a["latency_ms"] <= b["latency_ms"]
            and (quality(a) > quality(b) or a["latency_ms"] < b["latency_ms"]))


def _assert_a_pareto_front(dense: dict, rows: list[dict], listed: list[int]) -> None:
    """The listed rows are exactly those no row (the dense one included) dominates, in latency order."""
    front = [i for i, row in enumerate(rows) if not any(_dominates(other, row) for other in [dense, *rows])]
    assert listed == sorted(front, key=lambda i: rows[i]["latency_ms"])


def test_sweep_command_on_local_processes(tmp_path) -> None:
    images, _ = load_demo_images()
    np.savez(tmp_path / "calibration.npz", image=images[:96])
    result = subprocess.run([sys.executable, "-m", "spa", "--quiet", "sweep", str(demo_model_path()),
                             "--targets", "0.3,0.5", "--criteria", "l2,obspa", "--calibration",
                             str(tmp_path / "calibration.npz"), "-o", str(tmp_path / "sweep"), "--workers", "2",
                             "--round-to", "8"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "sweep").glob("*.onnx")) == \
        ["l2-0.3.onnx", "l2-0.5.onnx", "obspa-0.3.onnx", "obspa-0.5.onnx"]
    for path in (tmp_path / "sweep").glob("*.onnx"):
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": images[:4]})
        hidden = [t for t in onnx.load(path).graph.initializer if t.name.endswith("weight") and len(t.dims) >= 2
                  and t.name != "classifier.2.weight"]  # the 10 classes stay
        assert hidden and all(t.dims[0] % 8 == 0 for t in hidden), path.name
    with open(tmp_path / "sweep" / "results.csv", newline="") as table:
        rows = [row for row in csv.DictReader(table) if row["criterion"] != "dense"]
    assert len(rows) == 4 and {row["round_to"] for row in rows} == {"8"}
    page = parsed(rendered_dom((tmp_path / "sweep" / "pareto.html").as_uri()))
    assert page.body.get("data-rows") == "4" and int(page.body["data-front"]) >= 1
    bad = subprocess.run([sys.executable, "-m", "spa", "sweep", str(demo_model_path()), "--targets", "0.3",
                          "--criteria", "taylor", "-o", str(tmp_path / "x")], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown criterion 'taylor'" in bad.stderr
    auto = subprocess.run([sys.executable, "-m", "spa", "sweep", str(demo_model_path()), "--targets", "0.3",
                           "--round-to", "auto", "-o", str(tmp_path / "y")], capture_output=True, text=True)
    assert auto.returncode == 1 and "use it with --measure latency" in auto.stderr and not (tmp_path / "y").exists()


def test_backends_agree_bit_for_bit_on_obspa_hessians(ray_backend) -> None:
    from spa.obspa import OBSPA, OBSPAOptions

    images, _ = load_demo_images()
    model = spa.load(demo_model_path())
    groups, weights = model.coupling_groups(), model.weights()
    options = OBSPAOptions(batch_size=16)
    hessians = []
    for backend in (LocalBackend(2), ray_backend, None):  # None: this process, on every core
        pruner = OBSPA(model.to_onnx(), groups, weights, {"image": images[:96]}, options, quiet=True, backend=backend)
        hessians.append(pruner._hessians)
    workers, ray, in_process = hessians
    # every layer whose input channels can go (all but the first convolution), from 6 batches in 2 shares
    assert {name for name, _ in workers} == {"features.3.weight", "classifier.0.weight", "classifier.2.weight"}
    assert ray.keys() == workers.keys() == in_process.keys()
    assert all(np.array_equal(ray[key], workers[key]) for key in workers)  # one thread per task on both
    assert all(np.allclose(in_process[key], workers[key], rtol=1e-5, atol=1e-7 * np.abs(workers[key]).max())
               for key in workers)


class _Counting:
    """A backend that notes how many tasks it is given, and gives them to `inner`."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.workers, self.tasks = inner, inner.name, inner.workers, 0

    def map(self, task, shared, items, on_done=None):
        items = list(items)
        self.tasks += len(items)
        return self.inner.map(task, shared, items, on_done)


class _CountingLocal(LocalBackend):
    """Two local processes that note how many tasks they are given."""

    def __init__(self) -> None:
        super().__init__(2)
        self.tasks = 0

    def map(self, task, shared, items, on_done=None):
        items = list(items)
        self.tasks += len(items)
        return super().map(task, shared, items, on_done)


def test_large_obspa_solves_run_on_ray_bit_for_bit_and_local_processes_keep_them(ray_backend,
                                                                                monkeypatch) -> None:
    import spa.obspa.solve_tasks
    from spa.groups import Plan
    from spa.obspa import OBSPA, OBSPAOptions

    monkeypatch.setattr(spa.obspa.solve_tasks, "DISTRIBUTED_BYTES", 0)  # these layers are small
    images, _ = load_demo_images()
    model = spa.load(demo_model_path())
    groups, weights = model.coupling_groups(), model.weights()
    pruner = OBSPA(model.to_onnx(), groups, weights, {"image": images[:96]}, OBSPAOptions(batch_size=16),
                   quiet=True)
    plan = Plan({g.id: list(range(0, g.channels, 3)) for g in groups if g.prunable})
    on_ray, local = _Counting(ray_backend), _CountingLocal()
    results = {}
    for name, backend in (("ray", on_ray), ("local", local), ("in process", None)):
        pruner.backend = backend
        results[name] = pruner.updates(plan)
    # the one-shot refit's three layers ran on Ray; local processes would start afresh for them
    assert on_ray.tasks == 3 and local.tasks == 0
    ray, in_process = results["ray"], results["in process"]
    assert ray.keys() == in_process.keys() == results["local"].keys() and ray
    assert all(np.array_equal(results["local"][key], in_process[key]) for key in ray)
    assert all(np.allclose(ray[key], in_process[key], rtol=1e-4, atol=1e-6 * np.abs(ray[key]).max()) for key in ray)
    again = _Counting(ray_backend)
    pruner.backend = again
    repeated = pruner.updates(plan)
    assert all(np.array_equal(repeated[key], ray[key]) for key in ray)  # the same bits every time
    assert again.tasks == 3
