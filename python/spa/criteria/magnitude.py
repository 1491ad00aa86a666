"""Criteria that read only the weights: L1/L2 magnitude, BatchNorm scale, FPGM, and random."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from spa.criteria.base import (
    Criterion,
    SliceCriterion,
    TensorData,
    as_float,
    sum_over_other_axes,
)
from spa.errors import SPAError
from spa.groups import Group, Member


class MagnitudeCriterion(SliceCriterion):
    """Group magnitude: per member, sum |w|^p over each position's slice, then per channel, then combine."""

    name = "magnitude"

    def __init__(self, p: float = 2, normalizer: str = "mean", reduction: str = "mean",
                 roles: Iterable[str] | None = None, include_bias: bool = False) -> None:
        """`p` > 0, plus the SliceCriterion settings. Raises SPAError for bad settings."""
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not np.isfinite(p) or p <= 0:
            raise SPAError(f"magnitude criterion: p must be a positive number, got {p!r}")
        super().__init__(normalizer, reduction, roles, include_bias)
        self.p = p

    def position_values(self, member: Member, weight: np.ndarray, data: TensorData) -> np.ndarray:
        """Sum of |w|^p over the slice of each position."""
        magnitude = np.abs(as_float(weight))
        return sum_over_other_axes(magnitude if self.p == 1 else magnitude ** self.p, member.axis)


class L1Criterion(MagnitudeCriterion):
    """Magnitude criterion with p = 1 (sum of absolute values)."""

    name = "l1"

    def __init__(self, normalizer: str = "mean", reduction: str = "mean",
                 roles: Iterable[str] | None = None, include_bias: bool = False) -> None:
        """Same settings as MagnitudeCriterion, with p fixed to 1."""
        super().__init__(p=1, normalizer=normalizer, reduction=reduction, roles=roles, include_bias=include_bias)


class L2Criterion(MagnitudeCriterion):
    """Magnitude criterion with p = 2 (sum of squares)."""

    name = "l2"

    def __init__(self, normalizer: str = "mean", reduction: str = "mean",
                 roles: Iterable[str] | None = None, include_bias: bool = False) -> None:
        """Same settings as MagnitudeCriterion, with p fixed to 2."""
        super().__init__(p=2, normalizer=normalizer, reduction=reduction, roles=roles, include_bias=include_bias)


class BNScaleCriterion(SliceCriterion):
    """|gamma| of the group's normalisation scales (BatchNorm, InstanceNorm, GroupNorm, LayerNorm).

    Reads the "norm_scales" data (scale tensor name -> array), which the
    model supplies from its graph. Groups without a normalisation scale
    cannot be scored and are left unpruned (`skips_unscorable`).
    """

    name = "bn_scale"
    needs = ("norm_scales",)
    skips_unscorable = True

    def data_read(self, provider: object | None) -> str:
        return "normalisation scales from the graph"

    def __init__(self, normalizer: str = "mean", reduction: str = "mean") -> None:
        """Normalisation and reduction as in SliceCriterion (only norm members are read)."""
        super().__init__(normalizer, reduction, roles=("norm",))

    def position_values(self, member: Member, weight: np.ndarray, data: TensorData) -> np.ndarray | None:
        """|gamma| per position, or None for norm members that are not a scale (bias, running stats)."""
        if member.tensor not in data.get("norm_scales", {}):
            return None
        return sum_over_other_axes(np.abs(as_float(weight)), member.axis)


class FPGMCriterion(SliceCriterion):
    """Filter pruning via geometric median (He et al. 2019): a position's slice close to all
    the others (near the geometric median) is redundant and scores low.

    Per member, the score of a position is the sum of Euclidean distances
    from its slice to the slices of the member's other in-group positions.
    By default only producer members (filters) are used.
    """

    name = "fpgm"

    def __init__(self, normalizer: str = "mean", reduction: str = "mean",
                 roles: Iterable[str] | None = ("producer",), include_bias: bool = False) -> None:
        """SliceCriterion settings; `roles` defaults to producers only."""
        super().__init__(normalizer, reduction, roles, include_bias)

    def position_values(self, member: Member, weight: np.ndarray, data: TensorData) -> np.ndarray:
        """Sum of distances from each position's slice to the other in-group positions' slices."""
        rows = np.moveaxis(as_float(weight), member.axis, 0).reshape(weight.shape[member.axis], -1)
        rows = rows.astype(np.float64)
        inside = member.channel_array() >= 0
        squared = (rows * rows).sum(axis=1)
        gram = rows @ rows[inside].T
        distances = np.sqrt(np.maximum(squared[:, None] + squared[None, inside] - 2 * gram, 0.0))
        return distances.sum(axis=1)


class RandomCriterion(Criterion):
    """Uniform random scores in [0, 1), reproducible per (seed, group id) whatever the call order."""

    name = "random"

    def data_read(self, provider: object | None) -> str:
        return "no data (random scores)"

    def __init__(self, seed: int = 0) -> None:
        """`seed`: a non-negative integer."""
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise SPAError(f"random criterion: seed must be a non-negative integer, got {seed!r}")
        self.seed = seed

    def scores(self, group: Group, weights: Mapping[str, np.ndarray], data: TensorData | None = None) -> np.ndarray:
        """Random per-channel scores for `group` (float64, shape (channels,)); `weights` is unused."""
        return np.random.default_rng([self.seed, group.id]).random(group.channels)
