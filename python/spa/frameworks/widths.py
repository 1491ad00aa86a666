"""Width arithmetic the adapters share when they patch a framework's layers."""

from __future__ import annotations


def pruned_groups(groups: int, old_out: int, new_out: int, per_group: int) -> int:
    """The group count of a pruned convolution. SPA prunes a depthwise convolution (groups == in == out)
    by whole groups, so its count follows the channels; other grouped convolutions keep theirs."""
    if groups > 1 and per_group == 1 and old_out == groups:
        return new_out
    return groups
