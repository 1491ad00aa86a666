"""Channel groups, pruning plans and channel selection, against answers worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from spa.criteria import L1Criterion, score_groups
from spa.errors import SPAError
from spa.groups import Group, Member, Plan, load_groups, plan_to_dict, plan_to_json
from spa.select import (allowed_removal_counts, count_params, params_per_channel, select_global,
                        select_per_group, select_target)


def simple(group_id: int, channels: int, divisor: int = 1, tensor: str | None = None,
           prunable: bool = True) -> Group:
    member = Member(tensor or f"conv{group_id}.weight", 0, "producer", tuple(range(channels)))
    return Group(group_id, channels, prunable, () if prunable else ("graph output",), True, divisor, (member,))


GROUPS_JSON = {"groups": [
    {"id": 0, "channels": 2, "prunable": True, "reasons": [], "function_preserving": True, "divisor": 1,
     "members": [
         {"tensor": "conv.weight", "axis": 0, "role": "producer", "channel_of_position": [0, 1]},
         {"tensor": "bn.scale", "axis": 0, "role": "norm", "channel_of_position": [0, 1]},
         {"tensor": "fc.weight", "axis": 1, "role": "consumer", "channel_of_position": [0, 0, 1, 1, -1]}]},
    {"id": 1, "channels": 3, "prunable": False, "reasons": ["graph output", "opaque op onnx.Custom"],
     "function_preserving": False, "divisor": 1,
     "members": [{"tensor": "fc.weight", "axis": 0, "role": "producer", "channel_of_position": [0, 1, 2]}]},
]}


# --- groups and plans -------------------------------------------------------------------------

def test_load_groups_reads_text_and_dicts() -> None:
    groups = load_groups(json.dumps(GROUPS_JSON))
    assert groups == load_groups(GROUPS_JSON)
    first, second = groups
    assert first.members[2] == Member("fc.weight", 1, "consumer", (0, 0, 1, 1, -1))
    assert second.prunable is False and second.reasons == ("graph output", "opaque op onnx.Custom")


def test_positions_of_removed_channels() -> None:
    first = load_groups(GROUPS_JSON)[0]
    fc = first.members[2]
    assert first.positions(fc, [1]) == [2, 3]
    assert first.positions(fc, [0, 1]) == [0, 1, 2, 3]
    assert first.positions(fc, []) == []


def test_details_name_members_and_reasons() -> None:
    first, second = load_groups(GROUPS_JSON)
    text = first.details()
    assert text.splitlines()[0] == "group 0: 2 channels, prunable, function-preserving, divisor 1"
    assert "consumer fc.weight axis 1: 5 positions, 4 in this group (2 per channel)" in text
    assert "not prunable (graph output; opaque op onnx.Custom)" in second.details()


@pytest.mark.parametrize("broken, message", [
    ("{not json", "invalid JSON"),
    ({"groups": [GROUPS_JSON["groups"][0], GROUPS_JSON["groups"][0]]}, "group id 0 appears twice"),
    ({"groups": [{"id": 4, "channels": 2, "prunable": True, "members": [
        {"tensor": "t", "axis": 0, "role": "producer", "channel_of_position": [0, 2]}]}]}, "channel 2 is outside"),
    ({"groups": [{"id": 4, "channels": 2, "prunable": True, "members": [
        {"tensor": "t", "axis": 0, "role": "input", "channel_of_position": [0, 1]}]}]}, "unknown role 'input'"),
    ({"groups": [{"id": 5, "prunable": True, "members": []}]}, "group 5: missing key 'channels'"),
    ([], "expected an object"),
])
def test_malformed_groups_are_clear_errors(broken: object, message: str) -> None:
    with pytest.raises(SPAError, match=message):
        load_groups(broken if isinstance(broken, str) else json.dumps(broken))


def test_plan_to_json_gives_indices_for_every_member() -> None:
    groups = load_groups(GROUPS_JSON)
    data = json.loads(plan_to_json(Plan({0: (1,)}, heads="dims", blocked={1: "the checker failed"}), groups))
    assert data == {"groups": [{"id": 0, "channels": 2, "removed": [1], "function_preserving": True, "members": [
        {"tensor": "conv.weight", "axis": 0, "indices": [1]},
        {"tensor": "bn.scale", "axis": 0, "indices": [1]},
        {"tensor": "fc.weight", "axis": 1, "indices": [2, 3]}]}],
        "heads": "dims", "corrected": [], "blocked": [{"id": 1, "reason": "the checker failed"}],
        "data_used": "", "sensitivity": {}, "round_to": None}
    assert plan_to_dict(Plan({0: ()}), groups)["groups"] == []


@pytest.mark.parametrize("plan, message", [
    (Plan({1: (0,)}), "group 1: the group is not prunable"),
    (Plan({0: (0, 1)}), "would empty the group"),
    (Plan({0: (2,)}), "channels must be in 0..1"),
    (Plan({9: (0,)}), "no channel group 9"),
])
def test_invalid_plans_are_rejected(plan: Plan, message: str) -> None:
    with pytest.raises(SPAError, match=message):
        plan_to_json(plan, load_groups(GROUPS_JSON))


def test_plan_breaking_the_divisor_is_rejected() -> None:
    with pytest.raises(SPAError, match="not a multiple of the divisor 2"):
        plan_to_json(Plan({3: (0,)}), [simple(3, 4, divisor=2)])


# --- per-group selection ----------------------------------------------------------------------

def test_per_group_removes_the_lowest_scores() -> None:
    scores = {0: np.array([5.0, 1.0, 9.0, 3.0, 7.0, 0.5, 8.0, 2.0, 6.0, 4.0])}
    plan = select_per_group([simple(0, 10)], scores, 0.3)
    assert plan.removed == {0: (1, 5, 7)}  # scores 1.0, 0.5 and 2.0


def test_every_keep_one_of_set_keeps_a_channel() -> None:
    """A Slice reading channels 0 and 1 only (their scores are the lowest) keeps the better of them,
    per group and globally; the round trip through JSON keeps the sets."""
    group = Group(0, 6, True, (), True, 1, (Member("w", 0, "producer", tuple(range(6))),), ((0, 1), (4, 5)))
    assert Group.from_json(group.to_json()) == group
    scores = {0: np.array([0.2, 0.1, 3.0, 4.0, 5.0, 6.0])}
    assert allowed_removal_counts(group) == [0, 1, 2, 3, 4]  # one channel left for each set
    assert select_per_group([group], scores, 0.99).removed == {0: (1, 2, 3, 4)}  # 0 and 5 stay
    assert select_global([group], scores, 0.99).removed == {0: (1, 2, 3, 4)}


def test_ties_go_to_the_lower_index() -> None:
    assert select_per_group([simple(0, 4)], {0: np.ones(4)}, 0.5).removed == {0: (0, 1)}


def test_ratio_is_floored_without_float_error() -> None:
    # 0.29 * 100 is 28.999999999999996 in floating point; the intent is 29.
    plan = select_per_group([simple(0, 100)], {0: np.arange(100.0)}, 0.29)
    assert len(plan.removed[0]) == 29


def test_round_to_rounds_the_kept_count_to_the_nearest_multiple() -> None:
    # Wanted: remove 5 of 10, keep 5; multiples of 4 are 4 and 8: 4 is nearer, so remove 6.
    assert len(select_per_group([simple(0, 10)], {0: np.arange(10.0)}, 0.5, round_to=4).removed[0]) == 6
    # Wanted: keep 10 of 12; 8 and 12 are equally near: keep more, so remove nothing.
    assert select_per_group([simple(0, 12)], {0: np.arange(12.0)}, 1 / 6, round_to=4).removed == {}
    # Keep at least round_to: removing 7 of 8 would keep 1, so keep 4.
    assert len(select_per_group([simple(0, 8)], {0: np.arange(8.0)}, 0.9, round_to=4).removed[0]) == 4


def test_round_to_is_dropped_when_the_group_cannot_meet_it() -> None:
    # 6 channels can never keep a multiple of 8: prune as if round_to were 1.
    assert allowed_removal_counts(simple(0, 6), round_to=8) == [0, 1, 2, 3, 4, 5]
    assert len(select_per_group([simple(0, 6)], {0: np.arange(6.0)}, 0.5, round_to=8).removed[0]) == 3


def test_divisor_makes_the_removed_count_a_multiple() -> None:
    grouped = simple(0, 8, divisor=4)
    scores = {0: np.arange(8.0)}
    assert select_per_group([grouped], scores, 0.4).removed == {0: (0, 1, 2, 3)}  # wanted 3 -> 4
    assert select_per_group([grouped], scores, 0.2).removed == {}  # wanted 1 -> 0


def test_divisor_and_round_to_together() -> None:
    # 16 channels, even removal, kept a multiple of 3: removing 0, 4 (keep 12) or 10 (keep 6).
    group = simple(0, 16, divisor=2)
    assert allowed_removal_counts(group, round_to=3) == [0, 4, 10]
    assert len(select_per_group([group], {0: np.arange(16.0)}, 0.5, round_to=3).removed[0]) == 10


def test_never_empties_a_group() -> None:
    assert len(select_per_group([simple(0, 5)], {0: np.arange(5.0)}, 1.0).removed[0]) == 4
    assert len(select_per_group([simple(0, 4, divisor=2)], {0: np.arange(4.0)}, 1.0).removed[0]) == 2
    assert select_per_group([simple(0, 1)], {0: np.zeros(1)}, 1.0).removed == {}


def test_protected_and_unprunable_groups_are_skipped() -> None:
    groups = [simple(0, 4), simple(1, 4, tensor="head.weight"), simple(2, 4, prunable=False)]
    scores = {i: np.arange(4.0) for i in range(3)}
    plan = select_per_group(groups, scores, 0.5, protected=["head.weight"])
    assert plan.removed == {0: (0, 1)}
    assert set(select_per_group(groups, scores, 0.5, protected="head.weight").removed) == {0}
    assert set(select_per_group(groups, scores, 0.5).removed) == {0, 1}


def test_groups_without_scores_are_left_alone() -> None:
    groups = [simple(0, 4), simple(1, 4)]
    assert select_per_group(groups, {1: np.arange(4.0)}, 0.5).removed == {1: (0, 1)}
    assert select_global(groups, {}, 0.5).removed == {}


def test_bad_scores_and_settings_are_errors() -> None:
    groups = [simple(0, 4)]
    with pytest.raises(SPAError, match=r"shape \(3,\), expected \(4,\)"):
        select_per_group(groups, {0: np.ones(3)}, 0.5)
    with pytest.raises(SPAError, match="finite"):
        select_global(groups, {0: np.array([1.0, np.nan, 1.0, 1.0])}, 0.5)
    with pytest.raises(SPAError, match="ratio must be"):
        select_per_group(groups, {0: np.ones(4)}, 1.5)
    with pytest.raises(SPAError, match="round_to"):
        select_global(groups, {0: np.ones(4)}, 0.5, round_to=0)


# --- global and target selection ------------------------------------------------------------

def test_global_ranks_by_score_over_group_mean() -> None:
    # A normalised: 1/3, 2/3, 1, 2.  B normalised: 1, 1, 1, 1 (B's raw scores are all smaller).
    groups = [simple(0, 4), simple(1, 4)]
    scores = {0: np.array([10.0, 20.0, 30.0, 60.0]), 1: np.ones(4)}
    assert select_global(groups, scores, 0.25).removed == {0: (0, 1)}
    assert select_per_group(groups, scores, 0.25).removed == {0: (0,), 1: (0,)}


def test_global_never_empties_and_moves_on_to_the_next_group() -> None:
    # A normalised: 1/25.75 x3, 100/25.75; its last channel must stay, so B's first goes instead.
    groups = [simple(0, 4), simple(1, 4)]
    scores = {0: np.array([1.0, 1.0, 1.0, 100.0]), 1: np.full(4, 5.0)}
    assert select_global(groups, scores, 0.5).removed == {0: (0, 1, 2), 1: (0,)}


def test_global_removes_divisor_sized_steps() -> None:
    # A (divisor 2) normalised 0.4, 0.8, 1.2, 1.6: its first step removes two channels (mean 0.6).
    groups = [simple(0, 4, divisor=2), simple(1, 4)]
    scores = {0: np.array([1.0, 2.0, 3.0, 4.0]), 1: np.ones(4)}
    assert select_global(groups, scores, 0.25).removed == {0: (0, 1)}


def test_target_stops_once_the_cost_is_reached() -> None:
    # A: normalised 0.4, 0.8, 1.2, 1.6 at cost 10 each; B: normalised 1 at cost 1 each. Total 44.
    groups = [simple(0, 4), simple(1, 4)]
    scores = {0: np.array([1.0, 2.0, 3.0, 4.0]), 1: np.ones(4)}
    costs = {0: 10.0, 1: 1.0}
    assert select_target(groups, scores, costs, 44, 0.25).removed == {0: (0, 1)}  # 10, 20 >= 11
    assert select_target(groups, scores, costs, 44, 0.5).removed == {0: (0, 1), 1: (0, 1)}  # 20 + 1 + 1 >= 22
    everything = select_target(groups, scores, costs, 44, 1.0)  # unreachable: all but one channel each
    assert everything.removed == {0: (0, 1, 2), 1: (0, 1, 2)}
    assert select_target(groups, scores, costs, 44, 0.0).removed == {}


def test_target_needs_a_cost_for_every_group() -> None:
    with pytest.raises(SPAError, match="group 1: no valid cost"):
        select_target([simple(0, 4), simple(1, 4)], {0: np.ones(4), 1: np.ones(4)}, {0: 1.0}, 8, 0.5)


# --- costs ------------------------------------------------------------------------------------

def test_params_per_channel_and_count() -> None:
    shapes = {"conv.weight": (4, 3, 3, 3), "conv.bias": (4,), "fc.weight": (10, 8), "cat.weight": (5, 6)}
    group = Group(0, 4, True, (), True, 1, (
        Member("conv.weight", 0, "producer", (0, 1, 2, 3)),           # 27 per channel
        Member("conv.bias", 0, "producer", (0, 1, 2, 3)),             # 1
        Member("fc.weight", 1, "consumer", (0, 0, 1, 1, 2, 2, 3, 3)),  # 2 columns x 10 rows = 20
        Member("cat.weight", 1, "consumer", (0, 1, 2, 3, -1, -1)),     # 1 column x 5 rows = 5
    ))
    assert params_per_channel(group, shapes) == 27 + 1 + 20 + 5
    assert count_params(shapes) == 108 + 4 + 80 + 30
    with pytest.raises(SPAError, match="no shape"):
        params_per_channel(group, {"conv.weight": (4, 3, 3, 3)})
    with pytest.raises(SPAError, match="does not match shape"):
        params_per_channel(group, {**shapes, "fc.weight": (10, 9)})


def test_score_select_and_write_a_plan() -> None:
    groups = load_groups(GROUPS_JSON)
    weights = {"conv.weight": np.array([[1.0, 1.0], [5.0, 5.0]]), "bn.scale": np.array([1.0, 1.0]),
               "fc.weight": np.ones((3, 5))}
    scores = score_groups(L1Criterion(), groups, weights)
    plan = select_per_group(groups, scores, 0.5)
    assert plan.removed == {0: (0,)}
    members = json.loads(plan_to_json(plan, groups))["groups"][0]["members"]
    assert [m["indices"] for m in members] == [[0], [0], [0, 1]]
