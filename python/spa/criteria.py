"""Importance criteria: one score per channel of a group (low scores are pruned first).

Criteria are small objects in the style of Torch-Pruning: settings go to
`__init__`, and `scores(group, weights)` returns a float64 array of shape
`(group.channels,)` given a mapping from constant name to NumPy array.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from spa.errors import SPAError
from spa.groups import ROLES, Group, Member

NORMALIZERS = ("mean", "max", "none", "lamp")
REDUCTIONS = ("sum", "mean", "max", "prod")


class Criterion:
    """Base class: `scores(group, weights)` -> array of shape (group.channels,)."""

    def scores(self, group: Group, weights: Mapping[str, np.ndarray]) -> np.ndarray:
        """Per-channel importance of `group` (float64, shape (channels,)); lower is pruned first."""
        raise NotImplementedError


class MagnitudeCriterion(Criterion):
    """Group magnitude: per member, sum |w|^p over each position's slice, then per channel, then combine.

    For every member whose tensor is in `weights` (and whose role is in
    `roles`): |w|^p is summed over all axes but the member axis (one value
    per position), positions of the same channel are summed, the member's
    channel vector is normalised by `normalizer`, and the members are
    combined channel-wise by `reduction`. Channels that a member does not
    touch (no position maps to them) are ignored for that member; a channel
    touched by no member scores 0.
    """

    def __init__(self, p: float = 2, normalizer: str = "mean", reduction: str = "mean",
                 roles: Iterable[str] | None = None) -> None:
        """`p` > 0; `normalizer` in mean|max|none|lamp; `reduction` in sum|mean|max|prod;
        `roles` limits the members used (default: all roles). Raises SPAError for bad settings."""
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not np.isfinite(p) or p <= 0:
            raise SPAError(f"magnitude criterion: p must be a positive number, got {p!r}")
        if normalizer not in NORMALIZERS:
            raise SPAError(f"magnitude criterion: unknown normalizer {normalizer!r}; "
                           f"choose from {', '.join(NORMALIZERS)}")
        if reduction not in REDUCTIONS:
            raise SPAError(f"magnitude criterion: unknown reduction {reduction!r}; "
                           f"choose from {', '.join(REDUCTIONS)}")
        self.roles = tuple(ROLES if roles is None else roles)
        unknown = [r for r in self.roles if r not in ROLES]
        if unknown or not self.roles:
            raise SPAError(f"magnitude criterion: roles must be a non-empty subset of {', '.join(ROLES)}")
        self.p = p
        self.normalizer = normalizer
        self.reduction = reduction

    def scores(self, group: Group, weights: Mapping[str, np.ndarray]) -> np.ndarray:
        """Per-channel magnitude of `group` (float64, shape (channels,)).

        Members whose tensor is missing from `weights` are skipped; raises
        SPAError naming the group if no member is left, or if a tensor's
        axis does not match its member.
        """
        used = [m for m in group.members if m.role in self.roles and m.tensor in weights]
        if not used:
            raise SPAError(f"channel group {group.id}: none of its member tensors "
                           f"({', '.join(m.tensor for m in group.members) or 'none'}) has weights to score")
        per_member = [self._normalize(_channel_magnitude(group, m, weights[m.tensor], self.p)) for m in used]
        return _reduce(np.stack(per_member), self.reduction)

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


class L1Criterion(MagnitudeCriterion):
    """Magnitude criterion with p = 1 (sum of absolute values)."""

    def __init__(self, normalizer: str = "mean", reduction: str = "mean",
                 roles: Iterable[str] | None = None) -> None:
        """Same settings as MagnitudeCriterion, with p fixed to 1."""
        super().__init__(p=1, normalizer=normalizer, reduction=reduction, roles=roles)


class L2Criterion(MagnitudeCriterion):
    """Magnitude criterion with p = 2 (sum of squares)."""

    def __init__(self, normalizer: str = "mean", reduction: str = "mean",
                 roles: Iterable[str] | None = None) -> None:
        """Same settings as MagnitudeCriterion, with p fixed to 2."""
        super().__init__(p=2, normalizer=normalizer, reduction=reduction, roles=roles)


class RandomCriterion(Criterion):
    """Uniform random scores in [0, 1), reproducible per (seed, group id) whatever the call order."""

    def __init__(self, seed: int = 0) -> None:
        """`seed`: a non-negative integer."""
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise SPAError(f"random criterion: seed must be a non-negative integer, got {seed!r}")
        self.seed = seed

    def scores(self, group: Group, weights: Mapping[str, np.ndarray]) -> np.ndarray:
        """Random per-channel scores for `group` (float64, shape (channels,)); `weights` is unused."""
        return np.random.default_rng([self.seed, group.id]).random(group.channels)


CRITERIA: dict[str, type[Criterion]] = {"l1": L1Criterion, "l2": L2Criterion, "random": RandomCriterion}


def make_criterion(name: str, **options: Any) -> Criterion:
    """The criterion registered as `name` in CRITERIA, built with `options`.

    Raises SPAError for an unknown name or an option the criterion does not take.
    """
    factory = CRITERIA.get(name)
    if factory is None:
        raise SPAError(f"unknown criterion {name!r}; choose from {', '.join(sorted(CRITERIA))}")
    try:
        return factory(**options)
    except TypeError as error:
        raise SPAError(f"criterion {name!r}: bad options {sorted(options)}: {error}") from None


def score_groups(criterion: Criterion, groups: Sequence[Group],
                 weights: Mapping[str, np.ndarray]) -> dict[int, np.ndarray]:
    """Scores of every prunable group: group id -> array of shape (channels,)."""
    return {group.id: criterion.scores(group, weights) for group in groups if group.prunable}


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


def _channel_magnitude(group: Group, member: Member, weight: np.ndarray, p: float) -> np.ndarray:
    """Sum of |w|^p per channel of `member` (NaN for channels it does not touch)."""
    weight = np.asarray(weight)
    where = f"channel group {group.id}, member {member.tensor}"
    if not -weight.ndim <= member.axis < weight.ndim:
        raise SPAError(f"{where}: axis {member.axis} is out of range for shape {list(weight.shape)}")
    if weight.shape[member.axis] != len(member.channel_of_position):
        raise SPAError(f"{where}: axis {member.axis} has {weight.shape[member.axis]} positions, "
                       f"but the group maps {len(member.channel_of_position)}")
    if weight.dtype not in (np.float32, np.float64):
        weight = weight.astype(np.float64)
    magnitude = np.abs(weight) if p == 1 else np.abs(weight) ** p
    other_axes = tuple(a for a in range(weight.ndim) if a != member.axis % weight.ndim)
    per_position = magnitude.sum(axis=other_axes, dtype=np.float64)
    channels = member.channel_array()
    inside = channels >= 0
    totals = np.bincount(channels[inside], weights=per_position[inside], minlength=group.channels)
    touched = np.bincount(channels[inside], minlength=group.channels) > 0
    return np.where(touched, totals, np.nan)


def _reduce(per_member: np.ndarray, reduction: str) -> np.ndarray:
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
