"""Importance criteria: one score per channel of a group (low scores are pruned first).

Criteria are small objects in the style of Torch-Pruning: settings go to
`__init__`, and `scores(group, weights, data)` returns a float64 array of
shape `(group.channels,)`. Weight-only criteria live in `magnitude`,
derivative-based ones in `gradient`; OBSPA, which also rewrites the kept
weights, lives in `spa.obspa`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spa.criteria.base import (
    NORMALIZERS,
    REDUCTIONS,
    Criterion,
    SliceCriterion,
    TensorData,
    UnscorableGroup,
    lamp,
    reduce_members,
)
from spa.criteria.gradient import (
    CroPCriterion,
    GraSPCriterion,
    OBDCriterion,
    SNIPCriterion,
    TaylorCriterion,
)
from spa.criteria.magnitude import (
    BNScaleCriterion,
    FPGMCriterion,
    L1Criterion,
    L2Criterion,
    MagnitudeCriterion,
    RandomCriterion,
)
from spa.errors import SPAError
from spa.groups import Group
from spa.providers import Provider, fetch

__all__ = [
    "CRITERIA",
    "NORMALIZERS",
    "REDUCTIONS",
    "BNScaleCriterion",
    "Criterion",
    "CroPCriterion",
    "FPGMCriterion",
    "GraSPCriterion",
    "L1Criterion",
    "L2Criterion",
    "MagnitudeCriterion",
    "OBDCriterion",
    "RandomCriterion",
    "SNIPCriterion",
    "SliceCriterion",
    "TaylorCriterion",
    "lamp",
    "make_criterion",
    "reduce_members",
    "score_groups",
]

CRITERIA: dict[str, type[Criterion]] = {
    "l1": L1Criterion, "l2": L2Criterion, "random": RandomCriterion, "bn_scale": BNScaleCriterion,
    "fpgm": FPGMCriterion, "taylor": TaylorCriterion, "snip": SNIPCriterion, "grasp": GraSPCriterion,
    "crop": CroPCriterion, "obd": OBDCriterion,
}


def make_criterion(name: str, **options: Any) -> Criterion:
    """The criterion registered as `name` in CRITERIA, built with `options`.

    Raises SPAError for an unknown name or an option the criterion does not take.
    """
    factory = CRITERIA.get(name)
    if factory is None:
        raise SPAError(f"unknown criterion {name!r}; choose from {', '.join(sorted(CRITERIA))}, obspa")
    try:
        return factory(**options)
    except TypeError as error:
        raise SPAError(f"criterion {name!r}: bad options {sorted(options)}: {error}") from None


def score_groups(criterion: Criterion, groups: Sequence[Group], weights: Mapping[str, np.ndarray],
                 data: TensorData | None = None, provider: Provider | None = None) -> dict[int, np.ndarray]:
    """Scores of the prunable groups: group id -> array of shape (channels,).

    `data` holds data kinds already at hand (kind -> name -> array); kinds the
    criterion needs beyond those are fetched once from `provider` (SPAError if
    it cannot give them). Groups a criterion cannot score are left out when the
    criterion allows it (`skips_unscorable`, e.g. bn_scale on a group without
    BatchNorm); they are then not pruned.
    """
    data = dict(data or {})
    missing = [kind for kind in criterion.needs if kind not in data]
    if missing:
        names = sorted({m.tensor for g in groups if g.prunable for m in g.members if m.tensor in weights})
        data.update(fetch(criterion.name, missing, names, provider))
    scores = {}
    for group in groups:
        if not group.prunable:
            continue
        try:
            scores[group.id] = criterion.scores(group, weights, data)
        except UnscorableGroup:
            if not getattr(criterion, "skips_unscorable", False):
                raise
    return scores
