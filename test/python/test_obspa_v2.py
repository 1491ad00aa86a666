"""OBSPA v2: sensitivity allocation, sequential refits, BatchNorm re-estimation and synthesised inputs."""

from __future__ import annotations

import io
import itertools

import numpy as np
import onnx
import pytest
import spa
from helpers import run
from spa.obspa import OBSPAOptions
from spa.obspa.batchnorm import reestimated_statistics
from spa.obspa.synthesis import synthesized_inputs
from spa.sensitivity.allocation import Options, allocate

pytestmark = pytest.mark.zoo  # the full tier only (see pyproject's markers)

torch = pytest.importorskip("torch")


# -- allocation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_allocation_is_the_least_damage_that_meets_the_target(seed: int) -> None:
    rng = np.random.default_rng(seed)
    options = {}
    for group in range(rng.integers(1, 5)):
        steps = int(rng.integers(1, 5))
        costs = np.concatenate([[0], np.sort(rng.choice(np.arange(1, 20), steps, replace=False))])
        damages = np.concatenate([[0.0], np.sort(rng.uniform(0, 3, steps))])
        options[10 + group] = Options(np.arange(steps + 1), costs.astype(float), damages)
    total = sum(float(o.costs.max()) for o in options.values())
    target = float(rng.integers(1, int(total)))
    chosen = allocate(options, target, resolution=int(total))  # integer costs: the discretisation is exact
    best = min(sum(o.damages[i] for o, i in zip(options.values(), pick))
               for pick in itertools.product(*[range(len(o.counts)) for o in options.values()])
               if sum(o.costs[i] for o, i in zip(options.values(), pick)) >= target)
    assert sum(options[g].costs[c] for g, c in chosen.items()) >= target
    assert sum(options[g].damages[c] for g, c in chosen.items()) == pytest.approx(best)


def test_an_unreachable_target_takes_every_group_s_largest_option() -> None:
    options = {0: Options(np.arange(3), np.array([0.0, 1, 2]), np.array([0.0, 1, 5]))}
    assert allocate(options, 10.0) == {0: 2}
    assert allocate(options, 0.0) == {0: 0}


# -- models made in the tests --------------------------------------------------------------------


def _digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0 - 0.5)[:, None]  # (1797, 1, 8, 8)
    y = digits.target.astype(np.int64)
    return x[:1400], y[:1400], x[1400:], y[1400:]


class _CNN(torch.nn.Module):
    def __init__(self, widths=(16, 32, 32), batchnorm: bool = True) -> None:
        super().__init__()
        layers, channels = [], 1
        for width in widths:
            layers += [torch.nn.Conv2d(channels, width, 3, padding=1, bias=not batchnorm)]
            layers += [torch.nn.BatchNorm2d(width)] if batchnorm else []
            layers += [torch.nn.ReLU()]
            channels = width
        self.features = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(channels, 10)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


def _trained(widths=(16, 32, 32), batchnorm: bool = True, epochs: int = 12) -> tuple[onnx.ModelProto, tuple]:
    torch.manual_seed(0)
    x, y, x_test, y_test = _digits()
    net = _CNN(widths, batchnorm)
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(epochs):
        for start in range(0, len(x), 64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(net(torch.from_numpy(x[start:start + 64])),
                                              torch.from_numpy(y[start:start + 64])).backward()
            optimizer.step()
    buffer = io.BytesIO()
    torch.onnx.export(net.eval(), (torch.zeros(1, 1, 8, 8),), buffer, dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "n"}}, do_constant_folding=False)
    return onnx.load_from_string(buffer.getvalue()), (x, y, x_test, y_test)


def _accuracy(model: onnx.ModelProto, x: np.ndarray, y: np.ndarray) -> float:
    return float((run(model, {"x": x})[0].argmax(1) == y).mean())


def _output_error(model: onnx.ModelProto, dense: onnx.ModelProto, x: np.ndarray) -> float:
    want, got = run(dense, {"x": x})[0], run(model, {"x": x})[0]
    return float(np.mean((want - got) ** 2) / np.mean(want ** 2))


def _pruned(dense: onnx.ModelProto, **plan_options) -> onnx.ModelProto:
    model = spa.load(dense)
    model.prune(model.plan("obspa", quiet=True, **plan_options), verify=False)
    return model.to_onnx()


# -- sequential reconstruction -------------------------------------------------------------------


@pytest.mark.parametrize("widths, strictly", [((16, 16), False), ((16, 32, 32, 32, 32), True)])
def test_sequential_refit_is_never_worse_than_one_shot(widths, strictly: bool) -> None:
    dense, (x, _, x_test, _) = _trained(widths, batchnorm=False, epochs=6)
    calibration = {"x": x[:256]}
    errors = {}
    for sequential in (False, True):
        pruned = _pruned(dense, ratio=0.5, calibration=calibration, allocation="uniform",
                         obspa=OBSPAOptions(sequential=sequential))
        errors[sequential] = _output_error(pruned, dense, x_test)
    assert errors[True] <= errors[False] * 1.02
    if strictly:
        assert errors[True] < errors[False] * 0.9, errors


# -- BatchNorm re-estimation and synthesised inputs ----------------------------------------------


def test_batchnorm_re_estimation_equals_pytorch_s() -> None:
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.BatchNorm2d(6), torch.nn.ReLU(),
                              torch.nn.Conv2d(6, 4, 3), torch.nn.BatchNorm2d(4)).eval()
    buffer = io.BytesIO()
    torch.onnx.export(net, (torch.zeros(1, 3, 10, 10),), buffer, dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "n"}}, do_constant_folding=False)
    x = np.random.default_rng(0).standard_normal((24, 3, 10, 10)).astype(np.float32) * 2 + 0.5
    batches = [{"x": x[:8]}, {"x": x[8:16]}, {"x": x[16:]}]
    got = reestimated_statistics(onnx.load_from_string(buffer.getvalue()), {}, batches)
    for norm in (net[1], net[4]):
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average, as SPA computes it
    net.train()
    with torch.no_grad():
        for batch in batches:
            net(torch.from_numpy(batch["x"]))
    for index in (1, 4):
        np.testing.assert_allclose(got[f"{index}.running_mean"], net[index].running_mean.numpy(), atol=1e-5)
        np.testing.assert_allclose(got[f"{index}.running_var"], net[index].running_var.numpy(), rtol=1e-5)


def test_synthesised_inputs_move_batchnorm_statistics_toward_the_running_ones() -> None:
    dense, _ = _trained((8, 8), epochs=2)
    model = spa.load(dense).to_onnx(opset=26)
    gaussian = np.random.default_rng(0).standard_normal((32, 1, 8, 8)).astype(np.float32)
    synthesised = synthesized_inputs(model, 32, 60, seed=0, quiet=True, objective="batchnorm").inputs["x"]
    torch_net = _CNN((8, 8))
    # the same network, to read its BatchNorm inputs: onnx2torch's conversion is what SPA optimised through
    from onnx2torch import convert

    converted = convert(onnx.version_converter.convert_version(model, 17)).eval()
    norms = [m for m in converted.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 2 and torch_net is not None

    def gap(inputs: np.ndarray) -> float:
        seen = []
        hooks = [n.register_forward_hook(lambda m, a, o: seen.append((m, a[0]))) for n in norms]
        with torch.no_grad():
            converted(torch.from_numpy(inputs))
        for hook in hooks:
            hook.remove()
        return sum(float((x.mean((0, 2, 3)) - m.running_mean).norm() + (x.var((0, 2, 3)) - m.running_var).norm())
                   for m, x in seen)

    assert gap(synthesised) < 0.6 * gap(gaussian)


def test_inverted_inputs_are_classified_as_the_classes_they_were_made_for() -> None:
    """A model without BatchNorm has no statistics to match; inversion asks it for each class instead."""
    dense, _ = _trained(batchnorm=False)
    made = synthesized_inputs(dense, 40, 60, seed=0, quiet=True, objective="auto")
    assert made is not None and made.objective == "inversion" and made.steps == 60
    predicted = run(dense, made.inputs)[0].argmax(1)
    assert np.bincount(predicted, minlength=10).min() >= 3  # every class, about evenly (40 samples)


def test_synthesis_size_follows_the_model_s_cost(monkeypatch) -> None:
    import spa.obspa.synthesis as synthesis

    dense, _ = _trained((8, 8), batchnorm=False, epochs=1)
    macs = spa.load(dense).stats().macs
    assert synthesized_inputs(dense, None, 2, seed=0, quiet=True, macs=macs).inputs["x"].shape[0] == \
        synthesis.SIZES[0][0]
    monkeypatch.setattr(synthesis, "WORK_BUDGET", 200 * (3 * macs * 64 + synthesis.CALL_COST))  # the third size
    made = synthesized_inputs(dense, None, None, seed=1, quiet=True, macs=macs)
    assert (made.inputs["x"].shape[0], made.steps) == (64, 200)
    made = synthesized_inputs(dense, 16, 2, seed=1, quiet=True)  # asked for: as asked
    assert (made.inputs["x"].shape[0], made.steps) == (16, 2)


def test_data_free_inversion_beats_gaussian_inputs_without_batchnorm() -> None:
    dense, (_, _, x_test, y_test) = _trained(batchnorm=False, epochs=30)
    gaussian = _pruned(dense, ratio=0.7, obspa=OBSPAOptions(synthesis="gaussian"))
    inverted = _pruned(dense, ratio=0.7, obspa=OBSPAOptions(synthesis="inversion", synthesis_samples=128,
                                                            synthesis_steps=100))
    assert _accuracy(dense, x_test, y_test) > 0.8
    # measured: 0.80 against 0.44 (dense 0.86)
    assert _accuracy(inverted, x_test, y_test) > _accuracy(gaussian, x_test, y_test) + 0.15


# -- end to end and caching ----------------------------------------------------------------------


def test_v2_data_free_beats_v1_data_free_on_a_trained_batchnorm_cnn() -> None:
    dense, (_, _, x_test, y_test) = _trained()
    v1 = _pruned(dense, target_flops=0.7, allocation="uniform",
                 obspa=OBSPAOptions(sequential=False, synthesis="gaussian"))
    v2 = _pruned(dense, target_flops=0.7)
    dense_accuracy = _accuracy(dense, x_test, y_test)
    assert dense_accuracy > 0.9
    assert _accuracy(v2, x_test, y_test) > _accuracy(v1, x_test, y_test) + 0.1  # measured: 0.95 against 0.69


def test_sensitivity_tables_are_cached(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SPA_CACHE_DIR", str(tmp_path))
    dense, _ = _trained((8, 8), epochs=1)
    calls = []
    import spa.sensitivity as sensitivity

    real = sensitivity.measure  # the function sensitivity_table calls
    monkeypatch.setattr(sensitivity, "measure", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = spa.load(dense).plan("l2", target_flops=0.3, allocation="sensitivity", quiet=True)
    second = spa.load(dense).plan("l2", target_flops=0.5, allocation="sensitivity", quiet=True)
    assert len(calls) == 1 and list(tmp_path.glob("sensitivity/*.npz"))
    assert sum(map(len, second.removed.values())) > sum(map(len, first.removed.values()))
    assert "sensitivity table" in first.data_used


def test_synthesised_inputs_are_cached_and_measure_the_sensitivity(tmp_path, monkeypatch) -> None:
    """Re-planning at another target reuses the synthesised inputs, and the data-free sensitivity
    table is measured on them rather than on Gaussian noise."""
    pytest.importorskip("onnx2torch")
    monkeypatch.setenv("SPA_CACHE_DIR", str(tmp_path))
    dense, _ = _trained((8, 8), epochs=1)
    import spa.obspa.synthesis as synthesis

    runs = []
    real = synthesis._Optimisation.run
    monkeypatch.setattr(synthesis._Optimisation, "run", lambda *a, **k: runs.append(1) or real(*a, **k))
    options = OBSPAOptions(synthesis="batchnorm", synthesis_samples=32, synthesis_steps=5, sequential=False)
    first = spa.load(dense).plan("obspa", target_flops=0.3, obspa=options, quiet=True)
    spa.load(dense).plan("obspa", target_flops=0.5, obspa=options, quiet=True)
    assert len(runs) == 1 and list(tmp_path.glob("synthesis/*.npz"))
    assert "synthesised samples" in first.data_used, first.data_used
    assert "24 inputs synthesised" in first.data_used  # of 32, every fourth is kept to judge plans on


def test_the_proposed_allocation_is_kept_only_when_it_damages_less_end_to_end() -> None:
    from spa.groups import Plan
    from spa.sensitivity import least_damage

    proposed, uniform = Plan({0: (1, 2), 1: ()}), Plan({0: (1,), 1: (0,)})
    refits = []

    def refit(plan):
        refits.append(plan.removed)
        return {"w": np.full(1, len(refits))}

    def judge(by_removed):
        return lambda plan: by_removed[tuple(sorted((g, c) for g, c in plan.removed.items()))]

    damages = {((0, (1, 2)), (1, ())): 0.5, ((0, (1,)), (1, (0,))): 0.2}
    plan, updates, note = least_damage({"sensitivity": proposed, "uniform": uniform}, refit, judge(damages))
    assert plan is uniform and updates["w"][0] == 2 and "uniform allocation kept" in note and "0.5" in note
    from spa.sensitivity.validation import Judgement

    assert Judgement(0.1, 9.0) < Judgement(0.2, 0.1)  # fewer changed predictions outweigh a larger damage
    damages[((0, (1,)), (1, (0,)))] = 0.5  # a tie keeps the first candidate
    plan, _, _ = least_damage({"sensitivity": proposed, "uniform": uniform}, refit, judge(damages))
    assert plan is proposed
    refits.clear()  # the same plan twice is refitted and judged once
    plan, _, note = least_damage({"sensitivity": proposed, "uniform": Plan(dict(proposed.removed))}, refit,
                                 judge(damages))
    assert plan is proposed and len(refits) == 1 and note == "sensitivity allocation"


def test_logit_damage_ignores_a_softmax_shift_and_grows_with_the_change() -> None:
    from spa.sensitivity.measure import output_damage

    logits = np.random.default_rng(0).standard_normal((8, 10))
    assert output_damage([logits], [logits + 3.0]) == pytest.approx(0.0, abs=1e-12)
    small, large = output_damage([logits], [logits * 1.1]), output_damage([logits], [logits * 2.0])
    assert 0 < small < large


def test_held_out_samples_are_spread_over_the_calibration_file() -> None:
    """Calibration files are often sorted (by class, by source image): the samples that judge the
    allocation are every fourth one, never a tail, and never also fitted on."""
    from spa.calibration import held_out_split

    labels = np.repeat(np.arange(8), 16)  # 128 samples sorted by class
    fit, held = held_out_split({"x": labels}, 32)
    assert len(held["x"]) == 32 and set(held["x"]) == set(range(8))
    assert len(fit["x"]) == 96 and sorted(np.concatenate([fit["x"], held["x"]])) == sorted(labels)
    few = {"x": np.arange(16)}
    assert all(np.array_equal(part["x"], few["x"]) for part in held_out_split(few, 32))


@pytest.mark.parametrize("with_bias", [False, True])
def test_second_moments_border_the_bias_feature_as_an_appended_column_would(with_bias: bool) -> None:
    from spa.obspa.sequential import second_moment

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((50, 7)).astype(np.float32), rng.standard_normal((50, 7)).astype(np.float32)
    if with_bias:
        ones = np.ones((50, 1), np.float32)
        want = np.hstack([a, ones]).astype(np.float64).T @ np.hstack([b, ones]).astype(np.float64) / 50
    else:
        want = a.astype(np.float64).T @ b.astype(np.float64) / 50
    np.testing.assert_allclose(second_moment(a, b, with_bias), want, rtol=1e-5, atol=1e-6)
