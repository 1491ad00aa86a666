"""What every criterion shares: the interface, per-member normalisation and the group reduction.

A criterion maps a group to one score per group channel (float64, shape
`(group.channels,)`); low scores are pruned first. Most criteria score each
member tensor position by position (`SliceCriterion.position_values`), sum
the positions of one channel, normalise each member's channel vector and
combine the members channel-wise. Data beyond the weights (gradients,
Hessian products, norm scales) comes in `data`: kind -> tensor name -> array,
gathered once per model by `spa.criteria.score_groups`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from spa.errors import SPAError
from spa.groups import ROLES, Group, Member

NORMALIZERS = ("mean", "max", "none", "lamp")
REDUCTIONS = ("sum", "mean", "max", "prod")

# kind -> tensor name -> array; see spa.providers for the kinds.
TensorData = Mapping[str, Mapping[str, np.ndarray]]


class UnscorableGroup(SPAError):
    """No member of the group can be scored by the criterion (e.g. no BatchNorm for bn_scale)."""


class Criterion:
    """Base class: `scores(group, weights, data)` -> array of shape (group.channels,).

    `needs` lists the data kinds (beyond the weights) the criterion reads;
    `score_groups` fetches them before scoring and fails clearly if no
    provider has them.
    """

    name = "criterion"
    needs: tuple[str, ...] = ()

    def scores(self, group: Group, weights: Mapping[str, np.ndarray], data: TensorData | None = None) -> np.ndarray:
        """Per-channel importance of `group` (float64, shape (channels,)); lower is pruned first."""
        raise NotImplementedError

    def data_read(self, provider: object | None) -> str:
        """What the scores were computed from, for a plan's `data_used` (`provider` gave the `needs`)."""
        if self.needs:
            return f"{', '.join(self.needs)} from {type(provider).__name__}"
        return "weights only"


class SliceCriterion(Criterion):
    """Scores member positions, sums them per channel, normalises per member, reduces over members.

    Subclasses implement `position_values(member, weight, data)`: one value
    per position along the member axis, or None to skip the member.
    Channels a member does not touch are ignored for that member; a channel
    touched by no used member scores 0.
    """

    def __init__(self, normalizer: str = "mean", reduction: str = "mean", roles: Iterable[str] | None = None,
                 include_bias: bool = False) -> None:
        """`normalizer` in mean|max|none|lamp; `reduction` in sum|mean|max|prod; `roles` limits
        the members used (default: all); `include_bias` also scores 1-D producer members (biases),
        which are left out by default as in Torch-Pruning. Raises SPAError for bad settings."""
        if normalizer not in NORMALIZERS:
            raise SPAError(f"{self.name} criterion: unknown normalizer {normalizer!r}; "
                           f"choose from {', '.join(NORMALIZERS)}")
        if reduction not in REDUCTIONS:
            raise SPAError(f"{self.name} criterion: unknown reduction {reduction!r}; "
                           f"choose from {', '.join(REDUCTIONS)}")
        self.roles = tuple(ROLES if roles is None else roles)
        if not self.roles or any(r not in ROLES for r in self.roles):
            raise SPAError(f"{self.name} criterion: roles must be a non-empty subset of {', '.join(ROLES)}")
        self.normalizer = normalizer
        self.reduction = reduction
        self.include_bias = include_bias

    def uses(self, member: Member, weight: np.ndarray, data: TensorData) -> bool:
        """Whether `member` is scored: its role is selected, it is not a bias (unless asked for),
        and a norm member is a scale when the scales are known (running statistics and shifts
        say nothing about importance)."""
        if member.role not in self.roles:
            return False
        if member.role == "producer" and np.ndim(weight) == 1 and not self.include_bias:
            return False
        scales = data.get("norm_scales")
        return not (member.role == "norm" and scales is not None and member.tensor not in scales)

    def position_values(self, member: Member, weight: np.ndarray, data: TensorData) -> np.ndarray | None:
        """One float64 value per position along `member.axis` of `weight`, or None to skip the member."""
        raise NotImplementedError

    def scores(self, group: Group, weights: Mapping[str, np.ndarray], data: TensorData | None = None) -> np.ndarray:
        """Per-channel score of `group` (float64, shape (channels,)).

        Members whose tensor is missing from `weights` (or that the criterion
        skips) are left out; raises SPAError naming the group if none is left
        or if a tensor's axis does not match its member.
        """
        data = data or {}
        present = [m for m in group.members if m.tensor in weights]
        chosen = [m for m in present if self.uses(m, weights[m.tensor], data)]
        if not chosen:  # e.g. a group made only of biases: score what there is
            chosen = [m for m in present if m.role in self.roles]
        per_member = []
        for member in chosen:
            weight = check_member_shape(group, member, weights[member.tensor])
            values = self.position_values(member, weight, data)
            if values is not None:
                per_member.append(self._normalize(channel_sums(group, member, values)))
        if not per_member:
            raise UnscorableGroup(f"channel group {group.id}: none of its member tensors "
                           f"({', '.join(m.tensor for m in group.members) or 'none'}) can be scored by "
                           f"the {self.name} criterion")
        return reduce_members(np.stack(per_member), self.reduction)

    def _normalize(self, values: np.ndarray) -> np.ndarray:
        present = ~np.isnan(values)
        if self.normalizer == "none" or not present.any():
            return values
        if self.normalizer == "lamp":
            result = values.copy()
            result[present] = lamp(values[present])
            return result
        scale = values[present].mean() if self.normalizer == "mean" else values[present].max()
        return values / scale if scale > 0 else values


def check_member_shape(group: Group, member: Member, weight: np.ndarray) -> np.ndarray:
    """`weight` as an array whose `member.axis` has one entry per mapped position (else SPAError)."""
    weight = np.asarray(weight)
    where = f"channel group {group.id}, member {member.tensor}"
    if not -weight.ndim <= member.axis < weight.ndim:
        raise SPAError(f"{where}: axis {member.axis} is out of range for shape {list(weight.shape)}")
    if weight.shape[member.axis] != len(member.channel_of_position):
        raise SPAError(f"{where}: axis {member.axis} has {weight.shape[member.axis]} positions, "
                       f"but the group maps {len(member.channel_of_position)}")
    return weight


def sum_over_other_axes(values: np.ndarray, axis: int) -> np.ndarray:
    """Float64 sum of `values` over every axis but `axis` (one value per position)."""
    other_axes = tuple(a for a in range(values.ndim) if a != axis % values.ndim)
    return values.sum(axis=other_axes, dtype=np.float64)


def as_float(array: np.ndarray) -> np.ndarray:
    """`array` itself if float32/float64, else converted to float64 (no integer overflow)."""
    array = np.asarray(array)
    return array if array.dtype in (np.float32, np.float64) else array.astype(np.float64)


def channel_sums(group: Group, member: Member, per_position: np.ndarray) -> np.ndarray:
    """Sum of `per_position` over the positions of each channel (NaN for channels the member does not touch)."""
    channels = member.channel_array()
    inside = channels >= 0
    totals = np.bincount(channels[inside], weights=per_position[inside], minlength=group.channels)
    touched = np.bincount(channels[inside], minlength=group.channels) > 0
    return np.where(touched, totals, np.nan)


def reduce_members(per_member: np.ndarray, reduction: str) -> np.ndarray:
    """Combine a (members, channels) array with NaN holes channel-wise; all-NaN channels give 0."""
    present = ~np.isnan(per_member)
    count = present.sum(axis=0)
    if reduction == "sum":
        result = np.where(present, per_member, 0.0).sum(axis=0)
    elif reduction == "mean":
        result = np.where(present, per_member, 0.0).sum(axis=0) / np.maximum(count, 1)
    elif reduction == "max":
        result = np.where(present, per_member, -np.inf).max(axis=0)
    else:
        result = np.where(present, per_member, 1.0).prod(axis=0)
    return np.where(count > 0, result, 0.0)


def lamp(values: np.ndarray) -> np.ndarray:
    """LAMP normalisation: each value divided by the sum of all values at least as large.

    Takes a 1-D array of non-negative scores; the largest maps to 1. Ties are
    broken by index (a later equal value counts as larger) for determinism.
    """
    order = np.lexsort((-np.arange(values.size), -values))  # descending value, later index first
    result = np.empty_like(values, dtype=np.float64)
    sorted_values = values[order].astype(np.float64)
    totals = np.cumsum(sorted_values)
    result[order] = np.divide(sorted_values, totals, out=np.zeros_like(sorted_values), where=totals > 0)
    return result
