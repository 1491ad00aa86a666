"""Channel groups (from the C++ coupling analysis) and pruning plans, as JSON.

A group is a set of channels that must be removed together from several
constant tensors. Each `Member` says which positions along one axis of one
constant belong to which group channel: `channel_of_position[p]` is the
channel of position `p`, or -1 when that position belongs to another group.
A `Plan` says which channels of which groups to remove; `plan_to_json` turns
it into the per-tensor indices the pruning pass deletes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from spa.errors import SPAError

ROLES = ("producer", "norm", "consumer")


def _require(entry: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in entry:
        raise SPAError(f"{where}: missing key {key!r}")
    value = entry[key]
    if isinstance(value, bool) and kind is int or not isinstance(value, kind):
        raise SPAError(f"{where}: {key!r} has the wrong type ({type(value).__name__})")
    return value


@dataclass(frozen=True)
class Member:
    """One constant tensor axis of a group: `channel_of_position[p]` is the channel of position p, or -1."""

    tensor: str
    axis: int
    role: str
    channel_of_position: tuple[int, ...]

    @classmethod
    def from_json(cls, entry: Mapping[str, Any], where: str = "member") -> Member:
        """A Member from its JSON object; raises SPAError naming `where` if a key is missing or malformed."""
        if not isinstance(entry, Mapping):
            raise SPAError(f"{where}: expected an object, got {type(entry).__name__}")
        tensor = _require(entry, "tensor", str, where)
        axis = _require(entry, "axis", int, where)
        role = _require(entry, "role", str, where)
        if role not in ROLES:
            raise SPAError(f"{where} ({tensor}): unknown role {role!r}; expected one of {', '.join(ROLES)}")
        positions = _require(entry, "channel_of_position", list, where)
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in positions):
            raise SPAError(f"{where} ({tensor}): channel_of_position must hold integers")
        return cls(tensor, axis, role, tuple(positions))

    def to_json(self) -> dict[str, Any]:
        """The member as the analysis writes it."""
        return {"tensor": self.tensor, "axis": self.axis, "role": self.role,
                "channel_of_position": list(self.channel_of_position)}

    def positions_in_group(self) -> int:
        """Number of positions along `axis` that belong to the group (those not -1)."""
        return sum(1 for channel in self.channel_of_position if channel >= 0)

    def channel_array(self) -> np.ndarray:
        """`channel_of_position` as an int64 NumPy array."""
        return np.asarray(self.channel_of_position, dtype=np.int64)


@dataclass(frozen=True)
class Site:
    """An op that makes its group not function-preserving: its type, its output (which names the
    node) and data input, that input's rank (-1: unknown) and channel axis, and the group channel of
    each position along that axis (-1: another group's)."""

    op: str
    output: str
    input: str
    rank: int
    axis: int
    channel_of_position: tuple[int, ...]

    @classmethod
    def from_json(cls, entry: Mapping[str, Any], where: str) -> Site:
        """A Site from its JSON object; raises SPAError naming `where` if a key is missing or malformed."""
        if not isinstance(entry, Mapping):
            raise SPAError(f"{where}: expected an object, got {type(entry).__name__}")
        positions = _require(entry, "channel_of_position", list, where)
        return cls(_require(entry, "op", str, where), _require(entry, "output", str, where),
                   _require(entry, "input", str, where), int(entry.get("rank", -1)),
                   _require(entry, "axis", int, where), tuple(int(c) for c in positions))

    def to_json(self) -> dict[str, Any]:
        """The site as the analysis writes it."""
        return {"op": self.op, "output": self.output, "input": self.input, "rank": self.rank, "axis": self.axis,
                "channel_of_position": list(self.channel_of_position)}


@dataclass(frozen=True)
class Group:
    """A set of coupled channels; removing channel c deletes every member position mapped to c."""

    id: int
    channels: int
    prunable: bool
    reasons: tuple[str, ...]
    function_preserving: bool
    divisor: int
    members: tuple[Member, ...]
    keep_one_of: tuple[tuple[int, ...], ...] = ()  # channel sets of which at least one must stay
    # Computed operands read through a Gather of the kept positions: (value, user op, axis) each.
    gathered: tuple[tuple[str, str, int], ...] = ()
    non_preserving: tuple[Site, ...] = ()  # the ops that make it not function-preserving

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> Group:
        """A Group from its JSON object; raises SPAError naming the group if anything is malformed.

        `reasons` defaults to none, `divisor` to 1 and `function_preserving` to False.
        """
        if not isinstance(entry, Mapping):
            raise SPAError(f"channel group: expected an object, got {type(entry).__name__}")
        group_id = _require(entry, "id", int, "channel group")
        where = f"channel group {group_id}"
        channels = _require(entry, "channels", int, where)
        if channels < 1:
            raise SPAError(f"{where}: 'channels' must be at least 1, got {channels}")
        prunable = _require(entry, "prunable", bool, where)
        reasons = entry.get("reasons", [])
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            raise SPAError(f"{where}: 'reasons' must be a list of strings")
        function_preserving = entry.get("function_preserving", False)
        if not isinstance(function_preserving, bool):
            raise SPAError(f"{where}: 'function_preserving' must be true or false")
        divisor = entry.get("divisor", 1)
        if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 1:
            raise SPAError(f"{where}: 'divisor' must be a positive integer, got {divisor!r}")
        member_entries = _require(entry, "members", list, where)
        members = tuple(Member.from_json(m, f"{where}, member {i}") for i, m in enumerate(member_entries))
        for member in members:
            bad = [c for c in member.channel_of_position if not -1 <= c < channels]
            if bad:
                raise SPAError(f"{where}, member {member.tensor}: channel {bad[0]} is outside 0..{channels - 1}")
        keep_one_of = entry.get("keep_one_of", [])
        if not isinstance(keep_one_of, list) or not all(
                isinstance(c, list) and c and all(isinstance(i, int) and 0 <= i < channels for i in c)
                for c in keep_one_of):
            raise SPAError(f"{where}: 'keep_one_of' must be a list of non-empty lists of channels")
        gathered = tuple((str(g.get("value", "")), str(g.get("user", "")), int(g.get("axis", 0)))
                         for g in entry.get("gathered", []) if isinstance(g, Mapping))
        sites = tuple(Site.from_json(e, f"{where}, non-preserving site {i}")
                      for i, e in enumerate(entry.get("non_preserving", [])))
        return cls(group_id, channels, prunable, tuple(reasons), function_preserving, divisor, members,
                   tuple(tuple(c) for c in keep_one_of), gathered, sites)

    def to_json(self) -> dict[str, Any]:
        """The group as the analysis writes it."""
        entry = {"id": self.id, "channels": self.channels, "prunable": self.prunable,
                 "function_preserving": self.function_preserving, "divisor": self.divisor,
                 "reasons": list(self.reasons), "members": [m.to_json() for m in self.members]}
        if self.keep_one_of:
            entry["keep_one_of"] = [list(c) for c in self.keep_one_of]
        if self.gathered:
            entry["gathered"] = [{"value": v, "user": u, "axis": a} for v, u, a in self.gathered]
        if self.non_preserving:
            entry["non_preserving"] = [site.to_json() for site in self.non_preserving]
        return entry

    def positions(self, member: Member, removed_channels: Iterable[int]) -> list[int]:
        """Sorted positions along `member.axis` of `member.tensor` to delete when `removed_channels` go."""
        removed = np.fromiter((int(c) for c in removed_channels if int(c) >= 0), dtype=np.int64)
        hits = np.isin(member.channel_array(), removed) if removed.size else np.zeros(0, dtype=bool)
        return np.flatnonzero(hits).tolist()

    def details(self) -> str:
        """A readable multi-line description: channels, status, constraints and one line per member."""
        reasons = "; ".join(self.reasons or ("no reason given",))
        status = "prunable" if self.prunable else f"not prunable ({reasons})"
        preserving = "function-preserving" if self.function_preserving else "not function-preserving"
        lines = [f"group {self.id}: {self.channels} channels, {status}, {preserving}, divisor {self.divisor}"]
        for member in self.members:
            total = len(member.channel_of_position)
            inside = member.positions_in_group()
            text = f"  {member.role:<8} {member.tensor} axis {member.axis}: {total} positions"
            if inside != total:
                text += f", {inside} in this group"
            if inside > self.channels:
                text += f" ({inside / self.channels:g} per channel)"
            lines.append(text)
        for value, user, axis in self.gathered:
            lines.append(f"  gathered {value} axis {axis}: computed, {user} reads its kept positions")
        return "\n".join(lines)


def load_groups(source: str | bytes | Mapping[str, Any]) -> list[Group]:
    """Groups from the analysis JSON (text, bytes, or the parsed `{"groups": [...]}` dict).

    Raises SPAError for invalid JSON, a malformed group or a repeated group id.
    """
    if isinstance(source, (str, bytes)):
        try:
            source = json.loads(source)
        except json.JSONDecodeError as error:
            raise SPAError(f"channel groups: invalid JSON: {error}") from None
    if not isinstance(source, Mapping) or not isinstance(source.get("groups"), list):
        raise SPAError('channel groups: expected an object {"groups": [...]}')
    groups = [Group.from_json(entry) for entry in source["groups"]]
    seen: set[int] = set()
    for group in groups:
        if group.id in seen:
            raise SPAError(f"channel groups: group id {group.id} appears twice")
        seen.add(group.id)
    return groups


@dataclass(frozen=True)
class Plan:
    """Which channels to remove: group id -> sorted removed channel indices.

    `weight_updates` (initializer name -> array of its unpruned shape) are
    written into the model before the channels are removed: OBSPA's
    corrections of the kept weights. `data_used` says what data the
    criterion read, for reports. `heads` is the head granularity of the
    groups the plan was made for (see spa.model.Model.heads; None: not recorded).
    `blocked` (group id -> reason) lists the groups verification took out of
    the plan because pruning them broke a check. `sensitivity` (group id ->
    (removal counts, damage of each)) is the table a sensitivity allocation
    measured, for reports. `round_to` is the multiple the kept widths were rounded to (the one
    chosen by measured latency for round_to="auto"; None: not recorded). `refit`, when set, computes
    the weight updates for another choice of removed channels (OBSPA's
    reconstruction), so that a plan with blocked groups gets consistent ones.
    """

    removed: dict[int, tuple[int, ...]] = field(default_factory=dict)
    weight_updates: dict[str, np.ndarray] = field(default_factory=dict)
    data_used: str = ""
    heads: str | None = None
    blocked: dict[int, str] = field(default_factory=dict)
    sensitivity: dict[int, tuple[tuple[int, ...], tuple[float, ...]]] = field(default_factory=dict, compare=False)
    round_to: int | None = None
    refit: Callable[[dict[int, tuple[int, ...]]], dict[str, np.ndarray]] | None = \
        field(default=None, repr=False, compare=False)

    def removed_count(self) -> int:
        """Total number of channels removed over all groups."""
        return sum(len(channels) for channels in self.removed.values())

    def restricted(self, group_ids: Iterable[int]) -> Plan:
        """The same plan removing only the channels of `group_ids` (weight updates kept as they are)."""
        keep = set(group_ids)
        return replace(self, removed={g: c for g, c in self.removed.items() if g in keep})


def plan_to_dict(plan: Plan, groups: Sequence[Group]) -> dict[str, Any]:
    """The plan as `{"groups": [{"id", "channels", "removed", "function_preserving", "members"}],
    "heads", "corrected", "blocked": [{"id", "reason"}], "data_used", "sensitivity", "round_to"}`.

    Each member entry is `{"tensor", "axis", "indices"}` with the positions to
    delete along that constant's own axis. Groups with nothing removed are left
    out. `corrected` names the constants whose kept values the plan changes
    (its weight updates); `sensitivity` maps group ids (as text) to
    `{"counts", "damages"}`. Raises SPAError if the plan names an unknown or
    unprunable group, a channel out of range, empties a group or breaks its divisor.
    """
    by_id = {group.id: group for group in groups}
    entries = []
    for group_id in sorted(plan.removed):
        removed = sorted(set(plan.removed[group_id]))
        if not removed:
            continue
        group = by_id.get(group_id)
        if group is None:
            raise SPAError(f"pruning plan: no channel group {group_id}")
        _check_removal(group, removed)
        members = [{"tensor": m.tensor, "axis": m.axis, "indices": group.positions(m, removed)}
                   for m in group.members]
        entries.append({"id": group.id, "channels": group.channels, "removed": removed,
                        "function_preserving": group.function_preserving, "members": members})
    return {"groups": entries, "heads": plan.heads, "corrected": sorted(plan.weight_updates),
            "blocked": [{"id": group_id, "reason": reason} for group_id, reason in sorted(plan.blocked.items())],
            "data_used": plan.data_used,
            "sensitivity": {str(group_id): {"counts": list(counts), "damages": [_finite(d) for d in damages]}
                            for group_id, (counts, damages) in sorted(plan.sensitivity.items())},
            "round_to": plan.round_to}


def _finite(value: float) -> float | None:
    """JSON has no infinity: an unmeasurable damage is written as null."""
    return float(value) if np.isfinite(value) else None


def plan_to_json(plan: Plan, groups: Sequence[Group], indent: int | None = None) -> str:
    """The plan as JSON text (see `plan_to_dict`); `indent` as in `json.dumps`."""
    return json.dumps(plan_to_dict(plan, groups), indent=indent)


def _check_removal(group: Group, removed: list[int]) -> None:
    where = f"pruning plan, group {group.id}"
    if not group.prunable:
        raise SPAError(f"{where}: the group is not prunable ({'; '.join(group.reasons)})")
    if removed[0] < 0 or removed[-1] >= group.channels:
        raise SPAError(f"{where}: channels must be in 0..{group.channels - 1}")
    if len(removed) >= group.channels:
        raise SPAError(f"{where}: removing all {group.channels} channels would empty the group")
    if len(removed) % group.divisor:
        raise SPAError(f"{where}: {len(removed)} removed channels is not a multiple of the divisor {group.divisor}")
    gone = set(removed)
    for channels in group.keep_one_of:
        if gone.issuperset(channels):
            raise SPAError(f"{where}: removing channels {list(channels)} would empty a slice that reads only them")
