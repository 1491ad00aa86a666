"""Sequential reconstruction: refit each layer on the inputs the already-pruned model gives it.

One-shot OBSPA refits every consumer on the dense model's inputs, but the
pruned model feeds it different ones, so errors compound with depth. Here
the layers are taken in levels (a layer's level is the number of refitted
layers on its longest path from the inputs; one level's inputs depend only
on earlier levels). For each level, the dense model and the pruned model so
far (removed slices zeroed, earlier levels refitted) are run on the same
samples, up to that level's inputs and from where the previous level left off
(spa.providers.segmented), and each layer W of the level gets the least-squares refit of its
dense outputs on its pruned inputs, over its kept columns K:

    W'_K = (W C_:K + lambda W_:K) (P_KK + lambda I)^-1,   C = E[x_dense x_pruned^T],  P = E[x_pruned x_pruned^T]

(with the constant-1 feature for a bias or the following BatchNorm's mean; the damping lambda pulls
the refit toward the dense weights, so a layer whose inputs did not change keeps them).
Every reconstructible layer whose inputs the plan changes is refitted, also
those that lose no input channel themselves. A layer with fewer than four
feature rows per column (a classifier fed a few samples) would overfit them;
it keeps the one-shot refit. Groups that are not function-
preserving cannot be emulated by zeroed slices, so plans with them are
refitted one-shot instead (see OBSPA.updates).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx

from spa.groups import Group, Plan
from spa.obspa.hessians import layer_features
from spa.obspa.layers import LinearLayer
from spa.obspa.solve_tasks import Job, Solve, solve_all
from spa.progress import progress_bar
from spa.providers.pieces import node_reads
from spa.providers.segmented import SegmentedModel


def layer_levels(model: onnx.ModelProto, layers: Sequence[LinearLayer]) -> list[list[LinearLayer]]:
    """`layers` by level (see the module doc), in graph order within a level."""
    by_node: dict[int, list[LinearLayer]] = {}
    transposed = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Transpose"}
    for index, node in enumerate(model.graph.node):
        weights = {transposed.get(name, name) for name in node.input[1:]}
        for layer in layers:
            if node.input and node.input[0] == layer.input and layer.weight in weights:
                by_node.setdefault(index, []).append(layer)
    depth: dict[str, int] = {}
    levels: dict[int, list[LinearLayer]] = {}
    for index, node in enumerate(model.graph.node):
        level = max((depth.get(name, 0) for name in node_reads(node)), default=0)  # If bodies read too
        for layer in by_node.get(index, []):
            levels.setdefault(level, []).append(layer)
        for name in node.output:
            depth[name] = level + (1 if index in by_node else 0)
    return [levels[level] for level in sorted(levels)]


ROWS_PER_COLUMN = 4  # feature rows needed per weight column to refit on the pruned inputs


class SequentialRefit:
    """Sequential reconstruction of one OBSPA pruner's layers for a plan (see the module doc).

    `model` is the model the pruner was made for, with the feeding of
    `batches` applied (relaxed batch); `pruner` gives the layers, weights and
    the write-back into weights, biases and BatchNorm means.
    """

    def __init__(self, pruner, model: onnx.ModelProto, batches: Sequence[Mapping[str, np.ndarray]]) -> None:
        self.pruner, self.model, self.batches = pruner, model, list(batches)

    def updates(self, plan: Plan, groups: Sequence[Group], quiet: bool = False) -> dict[str, np.ndarray]:
        """Initializer name -> refitted array (unpruned shape, removed slices zero) for `plan`."""
        by_id = {g.id: g for g in groups}
        masks = removed_slices(plan, by_id)
        layers = [layer for layers in self.pruner.layers.values() for layer in layers]
        names = {n for n in masks} | {n for layer in layers for n in (layer.weight, layer.bias, layer.bn_mean) if n}
        levels = layer_levels(self.model, layers)
        session = SegmentedModel(self.model, sorted(names), self.batches)
        updates: dict[str, np.ndarray] = {}
        overrides = {name: masked(session.values[name], masks.get(name, ())) for name in names}
        bar = progress_bar(total=len(levels), description="sequential reconstruction", quiet=quiet)
        for level in levels:
            inputs = sorted({layer.input for layer in level})
            dense, pruned = session.advance(inputs, overrides)
            jobs = [Job(layer, self.pruner._item_bytes(layer), lambda layer=layer: self._refit(
                        layer, dense[inputs.index(layer.input)], pruned[inputs.index(layer.input)], masks))
                    for layer in level]
            solve_all(jobs, self.pruner.backend, lambda layer, refit: self.pruner._write(layer, refit, updates))
            for name, array in updates.items():
                overrides[name] = masked(array, masks.get(name, ()))
            bar.update(1)
        bar.close()
        return {name: masked(array, masks.get(name, ())) for name, array in updates.items()}

    def _refit(self, layer: LinearLayer, dense: np.ndarray, pruned: np.ndarray,
               masks: Mapping[str, Sequence[tuple[int, list[int]]]]) -> Solve:
        """The refit of one layer on its level's inputs, as a task's item (spa.obspa.solve_tasks)."""
        pruner = self.pruner
        with_bias = pruner._has_bias(layer)
        x_dense, x_pruned = layer_features(layer, dense), layer_features(layer, pruned)
        cross, gram = second_moment(x_dense, x_pruned, with_bias), second_moment(x_pruned, x_pruned, with_bias)
        removed = _removed_columns(layer, masks.get(layer.weight, ()))
        w = pruner._matrix(layer)
        if len(x_pruned) < ROWS_PER_COLUMN * gram.shape[0]:
            # Too few rows to fit so many columns (a classifier on a few samples) without overfitting
            # them: the one-shot refit on the dense Hessian instead.
            return Solve("refit", w, pruner._hessians[layer.key], removed)
        kept = np.setdiff1d(np.arange(gram.shape[0]), removed)
        block = gram[np.ix_(kept, kept)]
        damping = pruner.options.damp * max(float(np.mean(np.diag(block))), 1e-12)
        block[np.diag_indices_from(block)] += damping
        # A ridge toward the dense weights: W' = W (damped) when nothing changed.
        return Solve("ridge", w, block, kept, w @ cross[:, kept] + damping * w[:, kept])


def second_moment(a: np.ndarray, b: np.ndarray, with_bias: bool) -> np.ndarray:
    """E[a^T b] over the rows (float64), with the constant-1 feature appended to both when `with_bias`:
    bordered on, since appending the column would copy the whole feature matrix."""
    inner = (a.T @ b).astype(np.float64)
    if not with_bias:
        return inner / len(a)
    result = np.empty((inner.shape[0] + 1, inner.shape[1] + 1))
    result[:-1, :-1] = inner
    result[:-1, -1] = a.sum(axis=0, dtype=np.float64)
    result[-1, :-1] = b.sum(axis=0, dtype=np.float64)
    result[-1, -1] = len(a)
    return result / len(a)


def removed_slices(plan: Plan, groups: Mapping[int, Group]) -> dict[str, list[tuple[int, list[int]]]]:
    """Constant name -> (axis, positions) slices the plan removes."""
    slices: dict[str, list[tuple[int, list[int]]]] = {}
    for group_id, removed in plan.removed.items():
        group = groups[group_id]
        for member in group.members:
            positions = group.positions(member, removed)
            if positions:
                slices.setdefault(member.tensor, []).append((member.axis, positions))
    return slices


def masked(array: np.ndarray, slices: Sequence[tuple[int, list[int]]]) -> np.ndarray:
    """A copy of `array` with the (axis, positions) slices set to zero."""
    result = np.array(array, copy=True)
    for axis, positions in slices:
        index: list = [slice(None)] * result.ndim
        index[axis] = positions
        result[tuple(index)] = 0
    return result


def _removed_columns(layer: LinearLayer, slices: Sequence[tuple[int, list[int]]]) -> np.ndarray:
    """Columns of the layer's matrix that read removed input positions."""
    positions = sorted({p for axis, found in slices if axis == layer.input_axis for p in found})
    per_position = layer.columns_per_position()  # a grouped conv's weight columns are local to each group
    base = np.asarray(positions, dtype=np.int64)[:, None] * per_position
    return (base + np.arange(per_position)[None, :]).reshape(-1)
