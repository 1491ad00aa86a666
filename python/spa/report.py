"""Human-readable summaries of channel groups and pruning results for the CLI."""

from __future__ import annotations

from collections import defaultdict

from spa.groups import Group
from spa.stats import ModelStats


def _params_touched(groups: list[Group], shapes: dict[str, tuple[int, ...]]) -> int:
    """Elements of the distinct constants that the groups slice."""
    tensors = {member.tensor for group in groups for member in group.members}
    total = 0
    for name in tensors:
        count = 1
        for size in shapes.get(name, (0,)):
            count *= size
        total += count
    return total


def groups_summary(groups: list[Group], shapes: dict[str, tuple[int, ...]]) -> str:
    """Counts of groups and channels, prunable ones first, unprunable ones grouped by reason."""
    prunable = [g for g in groups if g.prunable]
    lines = [f"{len(groups)} channel groups, {len(prunable)} prunable",
             f"  prunable: {sum(g.channels for g in prunable)} channels, "
             f"{_params_touched(prunable, shapes):,} parameters in the constants they slice"]
    not_preserving = [g for g in prunable if not g.function_preserving]
    if not_preserving:
        lines.append(f"  {len(not_preserving)} prunable groups are not function-preserving "
                     "(they feed a normalisation or reduction over channels)")
    by_reason: dict[str, list[Group]] = defaultdict(list)
    for group in groups:
        if not group.prunable:
            by_reason[group.reasons[0] if group.reasons else "unknown"].append(group)
    if by_reason:
        lines.append("  not prunable, by reason:")
        for reason, members in sorted(by_reason.items(), key=lambda item: -len(item[1])):
            lines.append(f"    {len(members):4d} groups, {sum(g.channels for g in members):6d} channels: {reason}")
    return "\n".join(lines)


def stats_line(label: str, stats: ModelStats) -> str:
    return f"{label:8s} params {stats.params:>12,}   MACs {stats.macs:>15,}"


def change_line(before: ModelStats, after: ModelStats) -> str:
    params = 1 - after.params / before.params if before.params else 0.0
    macs = 1 - after.macs / before.macs if before.macs else 0.0
    return f"removed  params {params:12.1%}   MACs {macs:15.1%}"
