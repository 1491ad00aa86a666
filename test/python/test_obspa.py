"""OBSPA: the OBS arithmetic against brute force, features against onnxruntime, and accuracy that can fail."""

from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import spa
import torch
from onnx import helper, numpy_helper
from oracle import masked_model
from spa.data import demo_model_path, load_demo_images
from spa.errors import SPAError
from spa.groups import Plan, plan_to_dict
from spa.obspa import OBSPAOptions
from spa.obspa.hessians import HessianAccumulator, layer_features
from spa.obspa.layers import ConvGeometry, LinearLayer
from spa.obspa.solver import (
    ConsumerState,
    channel_costs,
    damped,
    greedy_scores,
    inverse,
    reconstruct,
    remove_columns,
)
from torch import nn


def _problem(seed: int = 0, rows: int = 5, columns: int = 12, samples: int = 400):
    rng = np.random.default_rng(seed)
    mixing = rng.standard_normal((columns, columns))
    x = mixing @ rng.standard_normal((columns, samples))  # correlated features
    w = rng.standard_normal((rows, columns))
    return w, x, x @ x.T / samples


def test_reconstruct_is_the_least_squares_refit() -> None:
    w, x, h = _problem()
    removed = np.array([1, 4, 5, 9])
    keep = np.setdiff1d(np.arange(12), removed)
    expected = np.linalg.lstsq(x[keep].T, (w @ x).T, rcond=None)[0].T
    result = reconstruct(w, h, removed)
    np.testing.assert_allclose(result[:, keep], expected, rtol=1e-8, atol=1e-10)
    assert not result[:, removed].any()


@pytest.mark.parametrize("magnitude", [1.0, 1e-21, 1e-23, 1e-24])
def test_damped_hessians_are_positive_definite_even_from_denormal_features(magnitude: float) -> None:
    # Found on a randomly initialised MobileViT: an attention output of about 1e-23 gives float32
    # products that are denormal, and the rounding made the damped Hessian indefinite.
    layer = LinearLayer("w", "x", "matmul", True, (0, 48), (0, 8), None, None, None)
    accumulator = HessianAccumulator([layer])
    accumulator.add({"x": (np.random.default_rng(0).standard_normal((256, 48)) * magnitude).astype(np.float32)})
    h = accumulator.hessian(layer, False)
    result = damped(h, 0.01)
    np.linalg.cholesky(result)  # raises if not positive definite
    assert np.array_equal(result - np.diag(np.diag(result)), h - np.diag(np.diag(h)))  # only the diagonal moves
    assert np.allclose(inverse(result) @ result, np.eye(48), atol=1e-6)
    if magnitude == 1.0:  # a well-conditioned H gets exactly the usual damping
        assert np.allclose(np.diag(result) - np.diag(h), 0.01 * np.mean(np.diag(h)))


def test_layers_reading_the_same_features_share_one_sum_and_keep_their_own_hessian() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 6, 5, 5)).astype(np.float32)
    same = ConvGeometry((3, 3), (1, 1), (1, 1), (1, 1, 1, 1))
    layers = [LinearLayer("q", "h", "matmul", True, (0, 5), (0, 4), None, None, None),
              LinearLayer("k", "h", "matmul", True, (0, 5), (0, 2), None, "k.bias", None),
              LinearLayer("v", "h", "gemm", True, (0, 5), (0, 2), None, None, None),
              LinearLayer("g", "x", "conv", False, (0, 3), (0, 2), same, None, None),  # two conv groups
              LinearLayer("g", "x", "conv", False, (3, 6), (2, 4), same, None, None),
              LinearLayer("s", "x", "conv", False, (0, 3), (0, 2), ConvGeometry((3, 3), (2, 2), (1, 1), (1, 1, 1, 1)),
                          None, None)]
    activations = {"h": rng.standard_normal((7, 5)).astype(np.float32), "x": x}
    accumulator = HessianAccumulator(layers)
    accumulator.add(activations)
    assert len(accumulator.gram) == 4  # q/k/v share; each conv group and stride has its own
    for layer in layers:
        features = layer_features(layer, activations[layer.input]).astype(np.float64)
        expected = features.T @ features / len(features)
        assert np.allclose(accumulator.hessian(layer, False), expected, rtol=1e-5, atol=1e-6)
    with_bias = accumulator.hessian(layers[1], True)
    assert with_bias.shape == (6, 6) and with_bias[-1, -1] == 1.0


def test_sequential_obs_removals_equal_the_joint_refit() -> None:
    w, _, h = _problem(1)
    state = ConsumerState(w.copy(), inverse(h), [])
    remove_columns(state, np.array([2, 3]))
    remove_columns(state, np.array([7]))
    np.testing.assert_allclose(state.w, reconstruct(w, h, np.array([2, 3, 7])), rtol=1e-7, atol=1e-9)


def test_channel_cost_is_the_output_error_after_the_best_refit() -> None:
    w, x, h = _problem(2)
    columns = [np.array([0, 1, 2]), np.array([3]), np.array([4, 5, 6, 7]), np.arange(8, 12)]
    costs = channel_costs(ConsumerState(w, inverse(h), columns), np.arange(4))
    for channel, cols in enumerate(columns):
        error = (w - reconstruct(w, h, cols)) @ x
        np.testing.assert_allclose(costs[channel], 0.5 * (error ** 2).sum() / x.shape[1], rtol=1e-7)


def test_greedy_scores_remove_the_redundant_channel_first() -> None:
    rng = np.random.default_rng(3)
    base = rng.standard_normal((3, 500))
    x = np.vstack([base, base[:1] + 0.01 * rng.standard_normal((1, 500))])  # feature 3 copies feature 0
    w = np.ones((2, 4))
    h = x @ x.T / 500
    scores = greedy_scores(4, [ConsumerState(w, inverse(h), [np.array([c]) for c in range(4)])], steps=4)
    assert np.argmin(scores) in (0, 3)
    assert len(set(scores.tolist())) == 4  # strictly ordered


@pytest.mark.parametrize("strides, pads, dilations, group", [
    ((1, 1), (1, 1, 1, 1), (1, 1), 1), ((2, 1), (0, 1, 2, 0), (1, 1), 1), ((1, 1), (2, 2, 2, 2), (2, 2), 2)])
def test_conv_features_times_w_is_the_convolution(strides, pads, dilations, group) -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 7, 6)).astype(np.float32)
    weight = rng.standard_normal((6, 4 // group, 3, 3)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], strides=strides, pads=pads, dilations=dilations, group=group)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    per_out, per_in = 6 // group, 4 // group
    for g in range(group):
        layer = LinearLayer("w", "x", "conv", False, (g * per_in, (g + 1) * per_in), (g * per_out, (g + 1) * per_out),
                            ConvGeometry((3, 3), strides, dilations, pads), None, None)
        product = layer_features(layer, x) @ layer.matrix(weight, None).T  # (N*oh*ow, rows)
        expected = y[:, g * per_out:(g + 1) * per_out].transpose(0, 2, 3, 1).reshape(-1, per_out)
        np.testing.assert_allclose(product, expected, rtol=1e-4, atol=1e-4)


# -- end to end ---------------------------------------------------------------------------------
def _accuracy(model: spa.Model, images: np.ndarray, labels: np.ndarray) -> float:
    session = ort.InferenceSession(model.to_onnx().SerializeToString(), providers=["CPUExecutionProvider"])
    return float((session.run(None, {"image": images})[0].argmax(axis=1) == labels).mean())


@pytest.fixture(scope="module")
def mnist() -> tuple[np.ndarray, np.ndarray]:
    return load_demo_images()


def _pruned_accuracy(criterion: str, ratio: float, images, labels, **options) -> float:
    model = spa.load(demo_model_path())
    model.prune(model.plan(criterion, ratio=ratio, **options))
    return _accuracy(model, images[128:], labels[128:])


@pytest.mark.zoo
def test_obspa_beats_magnitude_and_random_without_fine_tuning(mnist) -> None:
    images, labels = mnist
    calibrated = _pruned_accuracy("obspa", 0.6, images, labels, calibration={"image": images[:128]})
    data_free = _pruned_accuracy("obspa", 0.6, images, labels)
    l1 = _pruned_accuracy("l1", 0.6, images, labels)
    random = _pruned_accuracy("random", 0.6, images, labels)
    assert calibrated > l1 + 0.03 and calibrated > random + 0.05, (calibrated, l1, random)
    assert data_free > l1 and data_free > random + 0.03, (data_free, l1, random)


@pytest.mark.zoo  # calibrated OBSPA on the bundled trained MNIST model: 8-9 s, the full tier
def test_obspa_corrections_bring_the_outputs_closer_to_the_dense_model(mnist) -> None:
    images, _ = mnist
    dense = spa.load(demo_model_path())
    reference = ort.InferenceSession(dense.to_onnx().SerializeToString(), providers=["CPUExecutionProvider"])
    expected = reference.run(None, {"image": images[128:]})[0]
    corrected = spa.load(demo_model_path())
    plan = corrected.plan("obspa", ratio=0.5, calibration={"image": images[:128]})
    assert plan.weight_updates and "calibration" in plan.data_used
    uncorrected = spa.load(demo_model_path())
    uncorrected.prune(Plan(plan.removed))
    corrected.prune(plan)
    errors = []
    for model in (corrected, uncorrected):
        session = ort.InferenceSession(model.to_onnx().SerializeToString(), providers=["CPUExecutionProvider"])
        errors.append(float(np.abs(session.run(None, {"image": images[128:]})[0] - expected).mean()))
    assert errors[0] < 0.5 * errors[1], errors


class _BatchNormNet(nn.Module):
    """Bias-free convs feeding BatchNorm (the running mean takes the correction), a grouped conv, a Gemm."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.grouped = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False), nn.BatchNorm2d(8),
                                     nn.ReLU())
        self.head = nn.Linear(8 * 6 * 6, 5)

    def forward(self, x):
        return self.head(self.grouped(self.stem(x)).flatten(1))


def _batchnorm_net() -> onnx.ModelProto:
    torch.manual_seed(0)
    net = _BatchNormNet()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.2, 1.5)
                module.bias.uniform_(-0.5, 0.5)
    buffer = io.BytesIO()
    torch.onnx.export(net.eval(), (torch.randn(2, 3, 6, 6),), buffer, dynamo=False, do_constant_folding=False,
                      input_names=["input"], dynamic_axes={"input": {0: "n"}})
    return onnx.load_from_string(buffer.getvalue())


@pytest.mark.parametrize("hessian", ["data-free", "identity"])
def test_obspa_plans_keep_the_zero_mask_oracle(hessian: str) -> None:
    """Pruning with the corrections equals the corrected dense model with the removed slices zeroed."""
    source = _batchnorm_net()
    model = spa.load(source)
    plan = model.plan("obspa", ratio=0.4, obspa=OBSPAOptions(hessian=hessian, samples=32))
    assert plan.removed
    if hessian == "identity":
        assert not any(name.endswith("running_mean") for name in plan.weight_updates)
    else:
        assert any(name.endswith("running_mean") for name in plan.weight_updates)
    corrected = spa.load(source)
    corrected.set_weights(plan.weight_updates)
    masked = masked_model(corrected.to_onnx(), plan_to_dict(plan, model.coupling_groups()))
    model.prune(plan)
    x = np.random.default_rng(5).standard_normal((4, 3, 6, 6)).astype(np.float32)
    run = lambda m: ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"input": x})[0]
    np.testing.assert_allclose(run(model.to_onnx()), run(masked), rtol=1e-4, atol=1e-4)


def test_obspa_errors_are_clear(mnist) -> None:
    images, _ = mnist
    model = spa.load(demo_model_path())
    with pytest.raises(SPAError, match="calibration Hessian needs calibration data"):
        model.plan("obspa", ratio=0.3, obspa=OBSPAOptions(hessian="calibration"))
    with pytest.raises(SPAError, match="no array for model input.*image"):
        model.plan("obspa", ratio=0.3, calibration={"pixels": images[:8]})
    with pytest.raises(SPAError, match=r"onnxruntime rejected the inputs \(image \[8, 1, 20, 28\]\)"):
        model.plan("obspa", ratio=0.3, calibration={"image": images[:8, :, :20]})
    with pytest.raises(SPAError, match="unknown Hessian source"):
        model.plan("obspa", ratio=0.3, obspa=OBSPAOptions(hessian="magic"))
    with pytest.raises(SPAError, match="only used by the obspa criterion"):
        model.plan("l1", ratio=0.3, calibration={"image": images[:8]})
    dynamic = helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
         helper.make_node("MatMul", ["r", "v"], ["y"])], "g",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", "d"])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 2])],
        [numpy_helper.from_array(np.ones((4, 6), np.float32), "w"),
         numpy_helper.from_array(np.ones((6, 2), np.float32), "v")]),
        opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(SPAError, match="input 'x' has dynamic dimensions besides the batch.*--input-shape"):
        spa.load(dynamic).plan("obspa", ratio=0.3)


def test_data_free_batchnorm_outputs_have_the_trained_statistics() -> None:
    from spa.obspa.hessians import batch_statistics_model, input_normalisation

    rng = np.random.default_rng(6)
    scale, bias = np.array([0.5, 2.0, 1.0], np.float32), np.array([1.0, -1.0, 0.0], np.float32)
    nodes = [helper.make_node("Sub", ["x", "mean"], ["centred"]), helper.make_node("Div", ["centred", "std"], ["n"]),
             helper.make_node("BatchNormalization", ["n", "scale", "bias", "rm", "rv"], ["y"])]
    constants = {"mean": np.float32(0.25), "std": np.float32(0.5), "scale": scale, "bias": bias,
                 "rm": np.zeros(3, np.float32), "rv": np.ones(3, np.float32)}
    model = helper.make_model(helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["n", 3, 4, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, ["n", 3, 4, 4])],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in constants.items()]),
        opset_imports=[helper.make_opsetid("", 17)])
    mean, std = input_normalisation(model, "x")
    assert float(mean) == 0.25 and float(std) == 0.5
    x = (5.0 + 3.0 * rng.standard_normal((64, 3, 4, 4))).astype(np.float32)  # far from the running statistics
    session = ort.InferenceSession(batch_statistics_model(model).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    y = session.run(None, {"x": x})[0]
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), bias, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=(0, 2, 3)), np.abs(scale), rtol=1e-3)


def test_obspa_refits_linear_layers_behind_transposes() -> None:
    """Unfolded PyTorch exports feed MatMul with Transpose(weight) for 3-D inputs; OBSPA refits them."""
    import spa.torch

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    tokens = torch.randn(64, 5, 6)  # (batch, tokens, features): exported as MatMul, not Gemm
    result = spa.torch.prune(net, tokens[:2], criterion="obspa", ratio=0.5,
                             calibration={"input_0": tokens.numpy()})
    assert "1 consumer layers reconstructed" in result.plan.data_used, result.plan.data_used
    assert {"2.weight", "2.bias"} <= set(result.plan.weight_updates)
    uncorrected = spa.load(spa.torch.export(net, tokens[:2]))
    uncorrected.prune(Plan(result.plan.removed))
    session = ort.InferenceSession(uncorrected.to_onnx().SerializeToString(), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        dense = net(tokens).numpy()
        corrected_error = np.abs(result.module(tokens).numpy() - dense).mean()
    uncorrected_error = np.abs(session.run(None, {"input_0": tokens.numpy()})[0] - dense).mean()
    assert corrected_error < 0.7 * uncorrected_error, (corrected_error, uncorrected_error)


def test_bn_scale_through_the_model_removes_the_smallest_gammas() -> None:
    source = _batchnorm_net()
    model = spa.load(source)
    plan = model.plan("bn_scale", ratio=0.5)
    gammas = {t.name: numpy_helper.to_array(t) for t in source.graph.initializer if t.name.endswith("1.weight")}
    stem = next(g for g in model.coupling_groups() if any(m.tensor == "stem.1.weight" for m in g.members))
    member = next(m for m in stem.members if m.tensor == "stem.1.weight")
    per_channel = np.bincount(member.channel_array(), weights=np.abs(gammas["stem.1.weight"]))
    expected = sorted(np.argsort(per_channel, kind="stable")[:stem.channels // 2].tolist())
    assert list(plan.removed[stem.id]) == expected
    assert "normalisation scales from the graph" in plan.data_used


def test_hessian_shares_are_cut_into_runs_that_depend_on_the_data_only() -> None:
    from spa.obspa.parallel_hessians import consecutive_runs

    assert consecutive_runs([]) == []
    for shares in range(1, 12):
        for length in range(1, 5):
            runs = consecutive_runs(list(range(shares)), length)
            assert [s for run in runs for s in run] == list(range(shares))  # every share once, in order
            assert all(len(run) == length for run in runs[:-1]) and 0 < len(runs[-1]) <= length
