"""Choosing which channels to remove: per group, globally, or up to a cost target.

Every selector returns a `Plan` and obeys the same rules for each group:
only prunable groups with scores are touched (a criterion that cannot
score a group leaves it out of the scores); groups with a member tensor
named in `protected` are skipped; at least one channel is kept; the removed
count is a multiple of `group.divisor`; and the kept count is a multiple of
`round_to` when the group allows it (otherwise the rounding is dropped for
that group). Lowest scores go first; ties go to the lower channel index.
"""

from __future__ import annotations

import heapq
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from spa.errors import SPAError
from spa.groups import Group, Plan


def select_per_group(groups: Sequence[Group], scores: Mapping[int, np.ndarray], ratio: float,
                     round_to: int = 1, protected: Iterable[str] = ()) -> Plan:
    """Remove about `ratio` of each eligible group's channels, lowest scores first.

    Takes the groups, group id -> per-channel scores, a ratio in [0, 1], the
    kept-count multiple `round_to` and protected tensor names. Each group
    removes the allowed count nearest to floor(ratio * channels) (ties: remove
    fewer). Returns the Plan.
    """
    _check_fraction(ratio, "ratio")
    _check_round_to(round_to)
    removed: dict[int, tuple[int, ...]] = {}
    for group in _eligible(groups, protected, scores):
        order = _removal_order(group, _checked_scores(group, scores))
        allowed = allowed_removal_counts(group, round_to)
        wanted = math.floor(ratio * group.channels + 1e-9)
        count = min(allowed, key=lambda n: (abs(n - wanted), n))
        if count:
            removed[group.id] = tuple(sorted(order[:count].tolist()))
    return Plan(removed)


def select_global(groups: Sequence[Group], scores: Mapping[int, np.ndarray], ratio: float,
                  round_to: int = 1, protected: Iterable[str] = ()) -> Plan:
    """Remove about `ratio` of all eligible channels, ranked across groups by score / group mean.

    Takes the same arguments as `select_per_group`. Removal stops once
    floor(ratio * eligible channels) are removed (a group's allowed steps may
    overshoot by less than one step). Returns the Plan.
    """
    _check_fraction(ratio, "ratio")
    _check_round_to(round_to)
    eligible = _eligible(groups, protected, scores)
    unit_costs = {group.id: 1.0 for group in eligible}
    total = sum(group.channels for group in eligible)
    target = math.floor(ratio * total + 1e-9)
    return _greedy(eligible, scores, unit_costs, target, round_to)


def select_target(groups: Sequence[Group], scores: Mapping[int, np.ndarray],
                  cost_per_channel: Mapping[int, float], total_cost: float, target_fraction: float,
                  round_to: int = 1, protected: Iterable[str] = ()) -> Plan:
    """Remove channels, lowest score / group mean first, until their cost reaches a target.

    Takes the groups, their scores, group id -> cost of one channel (e.g.
    `params_per_channel`), the model's `total_cost` and `target_fraction` in
    [0, 1]; stops as soon as the removed cost is at least
    target_fraction * total_cost, or nothing more can go. Returns the Plan.
    """
    _check_fraction(target_fraction, "target fraction")
    _check_round_to(round_to)
    if not total_cost > 0:
        raise SPAError(f"total cost must be positive, got {total_cost}")
    eligible = _eligible(groups, protected, scores)
    for group in eligible:
        cost = cost_per_channel.get(group.id)
        if cost is None or not cost >= 0:
            raise SPAError(f"channel group {group.id}: no valid cost per channel (got {cost!r})")
    return _greedy(eligible, scores, cost_per_channel, target_fraction * total_cost, round_to)


def select_counts(groups: Sequence[Group], scores: Mapping[int, np.ndarray], counts: Mapping[int, int],
                  protected: Iterable[str] = ()) -> Plan:
    """Remove `counts[g]` channels of each eligible group g, lowest scores first (the counts come
    from an allocation, e.g. spa.sensitivity; each must be one of allowed_removal_counts)."""
    removed: dict[int, tuple[int, ...]] = {}
    for group in _eligible(groups, protected, scores):
        count = int(counts.get(group.id, 0))
        if count:
            removed[group.id] = tuple(sorted(removal_order(group, scores)[:count].tolist()))
    return Plan(removed)


def removal_order(group: Group, scores: Mapping[int, np.ndarray]) -> np.ndarray:
    """The group's channels in the order selection removes them (lowest score first, one channel
    of each keep-one set last)."""
    return _removal_order(group, _checked_scores(group, scores))


def eligible_groups(groups: Sequence[Group], scores: Mapping[int, np.ndarray], protected: Iterable[str] = ()
                    ) -> list[Group]:
    """The groups selection may touch: prunable, scored, with no protected member, in id order."""
    return _eligible(groups, protected, scores)


def allowed_removal_counts(group: Group, round_to: int = 1) -> list[int]:
    """Ascending removal counts `group` allows: 0, and n < channels with n % divisor == 0
    and (channels - n) % round_to == 0; without the round_to condition if only 0 would pass it.
    Each `keep_one_of` set keeps a channel, so n also leaves room for one per set (never for more
    than the channels the sets hold)."""
    _check_round_to(round_to)
    held = len({c for channels in group.keep_one_of for c in channels})
    most = group.channels - max(1, min(len(group.keep_one_of), held))
    by_divisor = list(range(0, max(most, 0) + 1, group.divisor))
    rounded = [n for n in by_divisor if (group.channels - n) % round_to == 0 or n == 0]
    return rounded if len(rounded) > 1 else by_divisor


def params_per_channel(group: Group, shapes: Mapping[str, Sequence[int]]) -> float:
    """Parameters removed with one channel of `group`, given constant name -> shape.

    Sums over members: (positions in the group / channels) x product of the
    other dims. Raises SPAError if a member's tensor is missing or its axis
    does not match its shape.
    """
    total = 0.0
    for member in group.members:
        shape = shapes.get(member.tensor)
        where = f"channel group {group.id}, member {member.tensor}"
        if shape is None:
            raise SPAError(f"{where}: no shape for this tensor")
        if not -len(shape) <= member.axis < len(shape) or shape[member.axis] != len(member.channel_of_position):
            raise SPAError(f"{where}: axis {member.axis} does not match shape {list(shape)}")
        others = math.prod(shape) // shape[member.axis] if shape[member.axis] else 0
        total += member.positions_in_group() / group.channels * others
    return total


def count_params(shapes: Mapping[str, Sequence[int]]) -> int:
    """Total number of elements over all shapes (constant name -> shape)."""
    return sum(math.prod(shape) for shape in shapes.values())


def _greedy(eligible: list[Group], scores: Mapping[int, np.ndarray], cost_per_channel: Mapping[int, float],
            target_cost: float, round_to: int) -> Plan:
    """Remove allowed steps of channels, lowest mean normalised score first, until `target_cost` is reached."""
    orders: dict[int, np.ndarray] = {}
    normalized: dict[int, np.ndarray] = {}
    counts: dict[int, list[int]] = {}
    heap: list[tuple[float, int, int]] = []  # (mean normalised score of the next step, group id, step)
    for group in eligible:
        group_scores = _checked_scores(group, scores)
        orders[group.id] = _removal_order(group, group_scores)
        normalized[group.id] = _normalized(group_scores)
        counts[group.id] = allowed_removal_counts(group, round_to)
        _push_step(heap, group.id, 0, orders, normalized, counts)
    removed_count = {group.id: 0 for group in eligible}
    removed_cost = 0.0
    while heap and removed_cost < target_cost:
        _, group_id, step = heapq.heappop(heap)
        new_count = counts[group_id][step + 1]
        removed_cost += (new_count - removed_count[group_id]) * cost_per_channel[group_id]
        removed_count[group_id] = new_count
        _push_step(heap, group_id, step + 1, orders, normalized, counts)
    return Plan({gid: tuple(sorted(orders[gid][:n].tolist())) for gid, n in removed_count.items() if n})


def _push_step(heap: list[tuple[float, int, int]], group_id: int, step: int, orders: dict[int, np.ndarray],
               normalized: dict[int, np.ndarray], counts: dict[int, list[int]]) -> None:
    allowed = counts[group_id]
    if step + 1 < len(allowed):
        channels = orders[group_id][allowed[step]:allowed[step + 1]]
        heapq.heappush(heap, (float(normalized[group_id][channels].mean()), group_id, step))


def _eligible(groups: Sequence[Group], protected: Iterable[str], scores: Mapping[int, np.ndarray]) -> list[Group]:
    """Prunable, scored groups with no member tensor in `protected`, in id order."""
    if isinstance(protected, str):
        protected = (protected,)
    protected_names = set(protected)
    return sorted((g for g in groups if g.prunable and g.id in scores
                   and not any(m.tensor in protected_names for m in g.members)),
                  key=lambda g: g.id)


def _checked_scores(group: Group, scores: Mapping[int, np.ndarray]) -> np.ndarray:
    if group.id not in scores:
        raise SPAError(f"channel group {group.id}: no scores")
    values = np.asarray(scores[group.id], dtype=np.float64)
    if values.shape != (group.channels,):
        raise SPAError(f"channel group {group.id}: scores have shape {values.shape}, expected ({group.channels},)")
    if not np.isfinite(values).all():
        raise SPAError(f"channel group {group.id}: scores must be finite")
    return values


def _removal_order(group: Group, scores: np.ndarray) -> np.ndarray:
    """Channels lowest score first, except that the best channel of each `keep_one_of` set goes last
    (allowed_removal_counts never reaches those), so every such set keeps one."""
    order = _ascending(scores)
    keep = {max(channels, key=lambda c: (scores[c], -c)) for channels in group.keep_one_of}
    if not keep:
        return order
    return np.concatenate([order[~np.isin(order, list(keep))], order[np.isin(order, list(keep))]])


def _ascending(values: np.ndarray) -> np.ndarray:
    """Channel indices by ascending score, ties by ascending index."""
    return np.lexsort((np.arange(values.size), values))


def _normalized(values: np.ndarray) -> np.ndarray:
    """Scores divided by their mean (unchanged if the mean is not positive)."""
    mean = values.mean()
    return values / mean if mean > 0 else values


def _check_fraction(value: float, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise SPAError(f"{name} must be a number in [0, 1], got {value!r}")


def _check_round_to(round_to: int) -> None:
    if isinstance(round_to, bool) or not isinstance(round_to, numbers.Integral) or round_to < 1:
        raise SPAError(f"round_to must be a positive integer, got {round_to!r}")
