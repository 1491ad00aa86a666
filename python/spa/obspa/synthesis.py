"""Data-free inputs from the model itself: inputs the trained network recognises.

Starting from Gaussian noise in the model's normalised input space, a batch
of inputs is optimised (Adam) against what the network remembers of its
training data:
- "batchnorm": at every BatchNorm, the batch's per-channel mean and
  standard deviation approach the running ones (the ZeroQ objective);
- "inversion": each input is also driven to be classified as a class of
  its own, the classes spread evenly over the batch (cross-entropy on the
  single [N, classes] output; DeepInversion's objective), with BatchNorm
  matching where the model has BatchNorms. This is what a model without
  BatchNorm can be asked: which input is a "3"?
Small total-variation and L2 priors keep images smooth and in range.
Gradients come from PyTorch, through the onnx2torch conversion of the
`torch` extra (`pip install "spa[torch]"`). Without PyTorch and onnx2torch,
for a model with more than one input, or one with neither BatchNorm nor a
class output, `synthesized_inputs` returns None and data-free OBSPA keeps
its Gaussian inputs (its report says which it used). Results are kept in
spa.cache, so re-planning the same model at another target does not
synthesise again.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from spa.cache import digest, load_arrays, store_arrays
from spa.errors import SPAError, first_line
from spa.ir.onnx_model import initializers_of_their_own
from spa.obspa.batchnorm import batchnorm_parameters
from spa.obspa.hessians import input_normalisation, require_sized_floats, synthetic_batches
from spa.progress import progress_bar
from spa.providers.batching import feeding, relaxed_batch
from spa.verify.inputs import graph_inputs, resolve_shapes

ONNX2TORCH_OPSET = 17  # the newest opset whose operators onnx2torch 1.5 converts
OBJECTIVES = ("batchnorm", "inversion")
TOTAL_VARIATION = 1e-3  # prior weights, relative to the statistics and class terms
INPUT_L2 = 1e-3
CONFIDENT_LOSS = 0.1  # cross-entropy at which an input counts as its class (probability about 0.9)
# (samples, steps), most thorough first: on MNISTNet, 256 x 300 inverted inputs keep ratio-0.7 pruning at
# 92 % where 32 x 100 keep 83 %. A model gets the most its size allows within WORK_BUDGET multiply-
# accumulates (about a minute on two cores; MobileNetV2 at 224 x 224 gets 32 x 100).
SIZES = ((256, 300), (128, 300), (64, 200), (32, 100))
WORK_BUDGET = 3e12
CALL_COST = 3e8  # a run's own cost in multiply-accumulates (about 10 ms): counts when a fixed batch is small
STEPS_KEY = "__steps__"  # stored beside the inputs in the cache


def class_count(model: onnx.ModelProto) -> int | None:
    """The number of classes of a model whose single output is [N, classes] (classes >= 2), else None."""
    if len(model.graph.output) != 1:
        return None
    dims = model.graph.output[0].type.tensor_type.shape.dim
    if len(dims) != 2 or not dims[1].HasField("dim_value") or dims[1].dim_value < 2:
        return None
    return dims[1].dim_value


def objective_for(model: onnx.ModelProto, requested: str) -> str | None:
    """The objective a request ("auto" or one of OBJECTIVES) comes to for `model`, or None when none
    applies: one float input is needed, and BatchNorms for "batchnorm", a class output for "inversion".
    "auto" inverts a classifier and matches the BatchNorms of any other model."""
    inputs = graph_inputs(model)
    if len(inputs) != 1 or inputs[0].dtype != np.float32:
        return None
    has_norms, classes = bool(batchnorm_parameters(model)), class_count(model)
    if requested == "auto":
        requested = "inversion" if classes else "batchnorm"
    if requested == "inversion" and classes or requested == "batchnorm" and has_norms:
        return requested
    return None


@dataclass
class Synthesis:
    """The inputs made ({input name: (samples, ...) float32}), the objective and the steps taken."""

    inputs: dict[str, np.ndarray]
    objective: str
    steps: int


def synthesized_inputs(model: onnx.ModelProto, samples: int | None, steps: int | None, seed: int,
                       input_shapes: Mapping[str, Sequence[int]] | None = None, quiet: bool = False,
                       objective: str = "auto", macs: int | None = None) -> Synthesis | None:
    """Inputs optimised as the module doc says, or None. `samples` and `steps` left None are the most of
    SIZES that fit WORK_BUDGET for a model of `macs` multiply-accumulates per sample."""
    chosen = objective_for(model, objective)
    if chosen is None:
        return None
    inputs = graph_inputs(model)
    require_sized_floats(inputs, input_shapes or {})
    key = digest([model.SerializeToString(),
                  f"{chosen} {samples} {steps} {macs} {seed} {sorted((input_shapes or {}).items())}"])
    cached = load_arrays("synthesis", key)
    if cached is not None and set(cached) == {inputs[0].name, STEPS_KEY}:
        return Synthesis({inputs[0].name: cached[inputs[0].name]}, chosen, int(cached[STEPS_KEY]))
    shape = resolve_shapes(inputs, input_shapes)[inputs[0].name][1:]
    try:
        with warnings.catch_warnings():  # onnx2torch and torch warn about their own deprecations: not the user's
            warnings.simplefilter("ignore")
            module, fixed_batch = _module_and_batch(model, input_shapes, seed)
            if module is None:
                return None
            result = _Optimisation(module, model, inputs[0], shape, chosen, fixed_batch).run(samples, steps, seed,
                                                                                               quiet, macs)
    except Exception as error:  # noqa: BLE001 - the converted module fails to run: onnx2torch's limits
        if objective == "auto":
            return None  # Gaussian inputs then, as for a model onnx2torch cannot convert
        raise SPAError(f"obspa: synthesis={objective!r}: the model converted to PyTorch does not run "
                       f"({first_line(error)}); use --synthesis gaussian") from None
    if result is not None:
        store_arrays("synthesis", key, {**result.inputs, STEPS_KEY: np.array(result.steps)})
    return result


class _Optimisation:
    """The inputs of one model as optimisation variables, in its normalised input space."""

    def __init__(self, module, model: onnx.ModelProto, graph_input, shape: Sequence[int], objective: str,
                 batch: int | None = None) -> None:
        import torch

        self.module, self.name, self.shape, self.objective = module, graph_input.name, tuple(shape), objective
        self.norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        self.mean, self.std = (torch.from_numpy(np.asarray(a, np.float32))
                               for a in input_normalisation(model, graph_input.name))
        self.classes = class_count(model) if objective == "inversion" else None
        self.batch = batch  # an export's fixed batch, when it cannot be relaxed

    def run(self, samples: int | None, steps: int | None, seed: int, quiet: bool, macs: int | None = None
            ) -> Synthesis | None:
        import torch

        if self.objective == "batchnorm" and not self.norms:
            return None
        generator = torch.Generator().manual_seed(seed)
        samples, steps = self._sized(samples, steps, macs, self.batch)
        batch = self.batch or samples
        samples = -(-samples // batch) * batch  # whole batches of a fixed-batch export
        z = torch.randn((samples, *self.shape), generator=generator, requires_grad=True)
        labels = torch.randperm(samples, generator=generator) % self.classes if self.classes else None
        optimizer = torch.optim.Adam([z], lr=0.1)
        bar = progress_bar(total=steps, description="synthesising inputs", quiet=quiet)
        for _ in range(steps):
            optimizer.zero_grad()
            for start in range(0, samples, batch):  # one step's gradient, a fixed batch at a time
                part = slice(start, start + batch)
                (self._loss(z[part], None if labels is None else labels[part]) * (batch / samples)).backward()
            optimizer.step()
            bar.update(1)
        bar.close()
        return Synthesis({self.name: (self.mean + self.std * z.detach()).numpy().astype(np.float32)},
                         self.objective, steps)

    def _loss(self, z, labels):
        import torch

        captured: list[tuple[torch.nn.Module, torch.Tensor]] = []
        hooks = [norm.register_forward_hook(lambda m, args, out: captured.append((m, args[0])))
                 for norm in self.norms]
        try:
            output = self.module(self.mean + self.std * z)
        finally:
            for hook in hooks:
                hook.remove()
        loss = sum((_statistics_gap(norm, x) for norm, x in captured), z.new_zeros(()))
        if labels is not None:  # confident is enough: pushing further would drive inputs out of range
            confident = torch.nn.functional.cross_entropy(output, labels, reduction="none")
            loss = loss + confident.clamp(min=CONFIDENT_LOSS).mean()
        return loss + TOTAL_VARIATION * _total_variation(z) + INPUT_L2 * z.square().mean()

    def _sized(self, samples: int | None, steps: int | None, macs: int | None, batch: int | None
               ) -> tuple[int, int]:
        """The requested size, or the most thorough of SIZES within WORK_BUDGET for a model of `macs`
        multiply-accumulates per sample (a step costs about three forwards, and each run of a fixed
        batch CALL_COST more); the least when unknown."""
        for size in SIZES:
            chosen = (samples or size[0], steps or size[1])
            runs = -(-chosen[0] // batch) if batch else 1
            if macs and chosen[1] * (3 * macs * chosen[0] + CALL_COST * runs) <= WORK_BUDGET:
                return chosen
        return samples or SIZES[-1][0], steps or SIZES[-1][1]


def _module_and_batch(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None, seed: int):
    """The model as a torch module and the batch it must be run with: None when any batch runs, else the
    export's fixed batch. A fixed batch is relaxed when onnxruntime agrees the relaxed copy computes the
    same (spa.providers.batching decides, as it does for the Hessians)."""
    how = feeding(model, lambda size: synthetic_batches(model, size, size, seed, input_shapes), 1)
    if how.relax:
        return _torch_module(relaxed_batch(model)), None
    return _torch_module(model), how.batch if how.exact else None


def _statistics_gap(norm, x):
    axes = [0, *range(2, x.dim())]
    mean, std = x.mean(dim=axes), (x.var(dim=axes, unbiased=False) + norm.eps).sqrt()
    return (mean - norm.running_mean).norm() + (std - (norm.running_var + norm.eps).sqrt()).norm()


def _total_variation(z):
    if z.dim() < 4:
        return z.new_zeros(())
    return (z[..., 1:, :] - z[..., :-1, :]).abs().mean() + (z[..., :, 1:] - z[..., :, :-1]).abs().mean()


def _torch_module(model: onnx.ModelProto):
    """The model as a torch module in eval mode, or None when torch/onnx2torch or the conversion fail."""
    try:
        import onnx2torch
        import torch  # noqa: F401
    except ImportError:
        return None
    from spa.exporter.opset import convert_opset

    try:
        converted = convert_opset(initializers_of_their_own(model), ONNX2TORCH_OPSET, required=True)
        module = onnx2torch.convert(converted).eval()
    except Exception:  # noqa: BLE001 - an unconvertible model falls back to Gaussian inputs
        return None
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module
