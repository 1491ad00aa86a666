"""Criteria that need derivatives of the loss: Taylor, SNIP, GraSP, CroP and OBD.

They read per-weight data from a provider (see spa.providers), keyed by
initializer name; members whose tensor the provider has no data for (a
constant that is not a trained parameter) are skipped.

| criterion | per weight                  | data kind           | meant for            |
| --------- | --------------------------- | ------------------- | -------------------- |
| taylor    | abs(w * g)                  | gradients           | trained models       |
| snip      | abs(w * g)                  | gradients           | freshly initialised  |
| grasp     | w * (H g)   (signed)        | hessian_gradient    | freshly initialised  |
| crop      | abs(w * (H g))              | hessian_gradient    | freshly initialised  |
| obd       | w^2 * F / 2  (F = E[g^2])   | squared_gradients   | trained models       |
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from spa.criteria.base import SliceCriterion, TensorData, as_float, sum_over_other_axes
from spa.errors import SPAError
from spa.groups import Member


class _PerWeightCriterion(SliceCriterion):
    """Sums a per-weight saliency built from the weight and one data kind over each position's slice."""

    kind = ""
    skips_unscorable = True  # groups of constants that are not trained parameters stay unpruned

    def __init__(self, normalizer: str = "mean", reduction: str = "mean",
                 roles: Iterable[str] | None = None, include_bias: bool = False) -> None:
        """SliceCriterion settings."""
        super().__init__(normalizer, reduction, roles, include_bias)

    @property
    def needs(self) -> tuple[str, ...]:  # type: ignore[override]
        return (self.kind,)

    def saliency(self, weight: np.ndarray, data: np.ndarray) -> np.ndarray:
        """Per-weight saliency from the weight and its data (same shapes)."""
        raise NotImplementedError

    def position_values(self, member: Member, weight: np.ndarray, data: TensorData) -> np.ndarray | None:
        values = data.get(self.kind, {}).get(member.tensor)
        if values is None:
            return None
        values = np.asarray(values)
        if values.shape != weight.shape:
            raise SPAError(f"{self.name} criterion: {self.kind} of {member.tensor} have shape "
                           f"{list(values.shape)}, but the weight has shape {list(weight.shape)}")
        return sum_over_other_axes(self.saliency(as_float(weight).astype(np.float64), values.astype(np.float64)),
                                   member.axis)


class TaylorCriterion(_PerWeightCriterion):
    """First-order Taylor estimate of the loss change: sum of |w * dL/dw| (Molchanov et al. 2019)."""

    name = "taylor"
    kind = "gradients"

    def saliency(self, weight: np.ndarray, data: np.ndarray) -> np.ndarray:
        return np.abs(weight * data)


class SNIPCriterion(TaylorCriterion):
    """SNIP connection sensitivity (Lee et al. 2019): |w * dL/dw| on a freshly initialised model."""

    name = "snip"


class GraSPCriterion(_PerWeightCriterion):
    """GraSP (Wang et al. 2020): keeps the weights whose removal would reduce gradient flow.

    Removing w changes the gradient norm by about -2 w (H g); GraSP removes
    the largest -w (H g), so the importance is w * (H g), summed with its
    sign (default normalisation none, reduction sum).
    """

    name = "grasp"
    kind = "hessian_gradient"

    def __init__(self, normalizer: str = "none", reduction: str = "sum",
                 roles: Iterable[str] | None = None, include_bias: bool = False) -> None:
        """SliceCriterion settings; signed scores are not normalised by default."""
        if normalizer in ("mean", "max", "lamp"):
            raise SPAError(f"grasp criterion: scores are signed, so normalizer {normalizer!r} is meaningless; "
                           "use 'none'")
        super().__init__(normalizer, reduction, roles, include_bias)

    def saliency(self, weight: np.ndarray, data: np.ndarray) -> np.ndarray:
        return weight * data


class CroPCriterion(TaylorCriterion):
    """CroP (Rachwan et al. 2022): preserves gradient flow in either direction, |w * (H g)|
    (Taylor's product with H g in place of g)."""

    name = "crop"
    kind = "hessian_gradient"


class OBDCriterion(_PerWeightCriterion):
    """Optimal Brain Damage (LeCun et al. 1990) with the empirical Fisher as the diagonal Hessian:
    w^2 * E[g^2] / 2."""

    name = "obd"
    kind = "squared_gradients"

    def saliency(self, weight: np.ndarray, data: np.ndarray) -> np.ndarray:
        return 0.5 * weight * weight * data
