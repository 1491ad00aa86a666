"""BatchNorm re-estimation: the running statistics a pruned model's BatchNorms see on real inputs.

Pruning and refitting change what reaches each BatchNorm, so its running
mean and variance no longer centre and scale its input. The pruned model
(its removed slices zeroed, its corrections written) is run with every
BatchNorm normalising by the statistics of the batch, as in training, so
each one sees inputs already re-normalised upstream; each BatchNorm's new
mean is the average of its batch means and its new variance the average of
its unbiased batch variances, as PyTorch computes them with momentum=None.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx

from spa.obspa.hessians import batch_statistics_model
from spa.providers.overridable import OverridableModel


def batchnorm_parameters(model: onnx.ModelProto) -> list[tuple[str, str, str]]:
    """(input value, mean initializer, variance initializer) of every BatchNormalization with constant statistics."""
    constants = {t.name for t in model.graph.initializer}
    constants |= {n.output[0] for n in model.graph.node  # exporters share equal tensors through Identity
                  if n.op_type == "Identity" and n.input and n.input[0] in constants}
    return [(node.input[0], node.input[3], node.input[4]) for node in model.graph.node
            if node.op_type == "BatchNormalization" and len(node.input) >= 5
            and node.input[3] in constants and node.input[4] in constants]


def reestimated_statistics(model: onnx.ModelProto, overrides: Mapping[str, np.ndarray],
                           batches: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Mean and variance initializer name -> re-estimated array, for `model` with `overrides` written.

    Channels whose input is zero in every sample (removed ones) keep their old statistics.
    """
    norms = batchnorm_parameters(model)
    if not norms:
        return {}
    inputs = [value for value, _, _ in norms]
    statistics = [name for _, mean, var in norms for name in (mean, var)]
    session = OverridableModel(batch_statistics_model(model), sorted({*overrides, *statistics}), inputs)
    sums: dict[str, list[np.ndarray]] = {value: [] for value in inputs}
    variances: dict[str, list[np.ndarray]] = {value: [] for value in inputs}
    for batch in batches:
        values = session.run([batch], overrides, inputs)
        for value, array in zip(inputs, values):
            x = np.asarray(array, np.float64)
            axes = (0, *range(2, x.ndim))
            sums[value].append(x.mean(axis=axes))
            count = x.size // x.shape[1]
            variances[value].append(x.var(axis=axes) * count / max(count - 1, 1))
    result = {}
    for value, mean_name, var_name in norms:
        old_mean = np.asarray(overrides.get(mean_name, session.values[mean_name]))
        old_var = np.asarray(overrides.get(var_name, session.values[var_name]))
        mean, var = np.mean(sums[value], axis=0), np.mean(variances[value], axis=0)
        live = var > 0
        result[mean_name] = np.where(live, mean, old_mean).astype(old_mean.dtype)
        result[var_name] = np.where(live, var, old_var).astype(old_var.dtype)
    return result
