"""Importance criteria: magnitudes checked against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from spa.criteria import (CRITERIA, BNScaleCriterion, CroPCriterion, Criterion, FPGMCriterion, GraSPCriterion,
                          L1Criterion, L2Criterion, MagnitudeCriterion, OBDCriterion, RandomCriterion, SNIPCriterion,
                          TaylorCriterion, lamp,
                          make_criterion, score_groups)
from spa.errors import SPAError
from spa.groups import Group, Member

# Rows:    |1|+|-2| = 3,  |3|+|0| = 3,  |-1|+|1| = 2   (squares: 5, 9, 2)
# Columns: |1|+|3|+|-1| = 5,  |-2|+|0|+|1| = 3          (squares: 11, 5)
W = np.array([[1.0, -2.0], [3.0, 0.0], [-1.0, 1.0]])


def group(channels: int, *members: tuple[str, int, str, list[int]], group_id: int = 0) -> Group:
    return Group(group_id, channels, True, (), True, 1,
                 tuple(Member(name, axis, role, tuple(cop)) for name, axis, role, cop in members))


def test_l1_of_rows_by_hand() -> None:
    rows = group(3, ("w", 0, "producer", [0, 1, 2]))
    np.testing.assert_allclose(L1Criterion(normalizer="none").scores(rows, {"w": W}), [3, 3, 2])


def test_l2_is_sum_of_squares() -> None:
    rows = group(3, ("w", 0, "producer", [0, 1, 2]))
    np.testing.assert_allclose(L2Criterion(normalizer="none").scores(rows, {"w": W}), [5, 9, 2])


def test_consumer_columns_by_hand() -> None:
    columns = group(2, ("w", 1, "consumer", [0, 1]))
    np.testing.assert_allclose(L1Criterion(normalizer="none").scores(columns, {"w": W}), [5, 3])


def test_flatten_member_sums_its_positions_per_channel() -> None:
    # Column L1: 1, 3, 3, 5; channel 0 owns columns 0-1, channel 1 owns columns 2-3.
    fc = np.array([[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 0.0, -1.0]])
    flatten = group(2, ("fc", 1, "consumer", [0, 0, 1, 1]))
    np.testing.assert_allclose(L1Criterion(normalizer="none").scores(flatten, {"fc": fc}), [4, 8])


def test_positions_of_other_groups_are_ignored() -> None:
    fc = np.array([[100.0, 100.0, 3.0, 4.0]])
    concat = group(2, ("fc", 1, "consumer", [-1, -1, 1, 0]))
    np.testing.assert_allclose(L1Criterion(normalizer="none").scores(concat, {"fc": fc}), [4, 3])


def test_normalizers() -> None:
    rows = group(3, ("w", 0, "producer", [0, 1, 2]))
    weights = {"w": W}
    np.testing.assert_allclose(L1Criterion(normalizer="mean").scores(rows, weights), [9 / 8, 9 / 8, 6 / 8])
    np.testing.assert_allclose(L1Criterion(normalizer="max").scores(rows, weights), [1, 1, 2 / 3])


def test_lamp_divides_by_the_sum_of_larger_values() -> None:
    # Descending 4, 3, 2, 1 -> running sums 4, 7, 9, 10.
    np.testing.assert_allclose(lamp(np.array([1.0, 2.0, 3.0, 4.0])), [1 / 10, 2 / 9, 3 / 7, 1])
    diagonal = group(4, ("d", 0, "producer", [0, 1, 2, 3]))
    scores = L1Criterion(normalizer="lamp").scores(diagonal, {"d": np.array([1.0, -2.0, 3.0, 4.0])})
    np.testing.assert_allclose(scores, [1 / 10, 2 / 9, 3 / 7, 1])


@pytest.mark.parametrize("reduction, expected", [("sum", [4, 3, 4]), ("mean", [2, 1.5, 2]),
                                                 ("max", [3, 3, 2]), ("prod", [3, 0, 4])])
def test_member_reductions(reduction: str, expected: list[float]) -> None:
    # Rows of W give 3, 3, 2; the bias gives 1, 0, 2.
    conv = group(3, ("w", 0, "producer", [0, 1, 2]), ("b", 0, "producer", [0, 1, 2]))
    weights = {"w": W, "b": np.array([1.0, 0.0, -2.0])}
    scores = MagnitudeCriterion(p=1, normalizer="none", reduction=reduction, include_bias=True).scores(conv, weights)
    np.testing.assert_allclose(scores, expected)


def test_biases_and_running_statistics_are_left_out_by_default() -> None:
    conv = group(3, ("w", 0, "producer", [0, 1, 2]), ("b", 0, "producer", [0, 1, 2]),
                 ("gamma", 0, "norm", [0, 1, 2]), ("var", 0, "norm", [0, 1, 2]))
    weights = {"w": W, "b": np.array([100.0, 0.0, 0.0]), "gamma": np.array([1.0, 2.0, 3.0]),
               "var": np.array([50.0, 0.0, 0.0])}
    scores = L1Criterion(normalizer="none", reduction="sum").scores(conv, weights, {"norm_scales": {"gamma": None}})
    np.testing.assert_allclose(scores, [3 + 1, 3 + 2, 2 + 3])
    only_bias = group(3, ("b", 0, "producer", [0, 1, 2]))
    np.testing.assert_allclose(L1Criterion(normalizer="none").scores(only_bias, weights), [100, 0, 0])


def test_channel_missing_from_one_member_uses_the_others() -> None:
    # "partial" only touches channel 0; channel 1's mean comes from W's rows alone.
    both = group(2, ("w", 0, "producer", [0, 1, -1]), ("partial", 0, "consumer", [0, -1]))
    weights = {"w": W, "partial": np.array([7.0, 100.0])}
    np.testing.assert_allclose(L1Criterion(normalizer="none").scores(both, weights), [(3 + 7) / 2, 3])


def test_roles_select_members() -> None:
    conv = group(3, ("w", 0, "producer", [0, 1, 2]), ("bn.var", 0, "norm", [0, 1, 2]))
    weights = {"w": W, "bn.var": np.array([100.0, 1.0, 1.0])}
    only_producers = L1Criterion(normalizer="none", reduction="sum", roles=["producer"])
    np.testing.assert_allclose(only_producers.scores(conv, weights), [3, 3, 2])
    everything = L1Criterion(normalizer="none", reduction="sum")
    np.testing.assert_allclose(everything.scores(conv, weights), [103, 4, 3])


def test_missing_tensor_is_skipped_while_one_member_remains() -> None:
    conv = group(3, ("w", 0, "producer", [0, 1, 2]), ("absent", 0, "norm", [0, 1, 2]), group_id=7)
    np.testing.assert_allclose(L1Criterion(normalizer="none").scores(conv, {"w": W}), [3, 3, 2])
    with pytest.raises(SPAError, match="channel group 7"):
        L1Criterion().scores(conv, {})


def test_shape_that_does_not_match_the_member_is_an_error() -> None:
    rows = group(4, ("w", 0, "producer", [0, 1, 2, 3]))
    with pytest.raises(SPAError, match="axis 0 has 3 positions"):
        L1Criterion().scores(rows, {"w": W})
    with pytest.raises(SPAError, match="out of range"):
        L1Criterion().scores(group(3, ("w", 2, "producer", [0, 1, 2])), {"w": W})


def test_integer_weights_do_not_overflow() -> None:
    rows = group(2, ("q", 0, "producer", [0, 1]))
    weights = {"q": np.array([[-128, -128], [1, 2]], dtype=np.int8)}
    np.testing.assert_allclose(L2Criterion(normalizer="none").scores(rows, weights), [32768, 5])


def test_random_is_reproducible_per_seed_and_group() -> None:
    g = group(5, ("w", 0, "producer", [0, 1, 2, 3, 4]))
    first = RandomCriterion(seed=3).scores(g, {})
    assert first.shape == (5,)
    assert ((first >= 0) & (first < 1)).all()
    np.testing.assert_array_equal(first, RandomCriterion(seed=3).scores(g, {}))
    assert not np.array_equal(first, RandomCriterion(seed=4).scores(g, {}))


def test_registry_and_factory() -> None:
    assert set(CRITERIA) == {"l1", "l2", "random", "bn_scale", "fpgm", "taylor", "snip", "grasp", "crop", "obd"}
    l1 = make_criterion("l1", normalizer="max")
    assert isinstance(l1, L1Criterion) and l1.p == 1 and l1.normalizer == "max"
    assert make_criterion("l2").p == 2
    assert isinstance(make_criterion("random", seed=1), RandomCriterion)


def test_factory_errors_are_clear() -> None:
    with pytest.raises(SPAError, match="unknown criterion 'magic'; choose from bn_scale, crop, fpgm"):
        make_criterion("magic")
    with pytest.raises(SPAError, match="criterion 'l1'"):
        make_criterion("l1", colour="red")
    with pytest.raises(SPAError, match="unknown normalizer"):
        make_criterion("l2", normalizer="median")
    with pytest.raises(SPAError, match="unknown reduction"):
        MagnitudeCriterion(reduction="min")
    with pytest.raises(SPAError, match="p must be"):
        MagnitudeCriterion(p=0)


def test_score_groups_scores_only_prunable_groups() -> None:
    prunable = group(3, ("w", 0, "producer", [0, 1, 2]), group_id=1)
    frozen = Group(2, 2, False, ("graph output",), False, 1, (Member("w", 1, "consumer", (0, 1)),))
    scores = score_groups(L1Criterion(normalizer="none"), [prunable, frozen], {"w": W})
    assert list(scores) == [1]
    np.testing.assert_allclose(scores[1], [3, 3, 2])


# -- criteria beyond magnitude -------------------------------------------------------------------
G = np.array([[0.5, 1.0], [-1.0, 2.0], [0.0, -3.0]])  # a gradient (or H g) of W's shape


def test_bn_scale_reads_only_the_scales() -> None:
    bn = group(3, ("conv", 0, "producer", [0, 1, 2]), ("gamma", 0, "norm", [0, 1, 2]),
               ("beta", 0, "norm", [0, 1, 2]))
    weights = {"conv": W, "gamma": np.array([0.5, -2.0, 1.0]), "beta": np.array([9.0, 9.0, 9.0])}
    scores = BNScaleCriterion(normalizer="none").scores(bn, weights, {"norm_scales": {"gamma": weights["gamma"]}})
    np.testing.assert_allclose(scores, [0.5, 2.0, 1.0])


def test_bn_scale_leaves_groups_without_batchnorm_unscored() -> None:
    plain = group(3, ("w", 0, "producer", [0, 1, 2]), group_id=4)
    assert score_groups(BNScaleCriterion(), [plain], {"w": W}, {"norm_scales": {}}) == {}


def test_fpgm_sums_distances_to_the_other_filters() -> None:
    # Filters (rows) at 0, 1 and 3 on a line: distances 0->(1,3): 1+3, 1->(0,3): 1+2, 3->(0,1): 3+2.
    filters = np.array([[0.0], [1.0], [3.0]])
    rows = group(3, ("f", 0, "producer", [0, 1, 2]))
    np.testing.assert_allclose(FPGMCriterion(normalizer="none").scores(rows, {"f": filters}), [4, 3, 5])


def test_fpgm_uses_producers_by_default() -> None:
    both = group(2, ("w", 1, "consumer", [0, 1]), ("f", 0, "producer", [0, 1]))
    weights = {"w": np.array([[100.0, 0.0]]), "f": np.array([[0.0, 0.0], [3.0, 4.0]])}
    np.testing.assert_allclose(FPGMCriterion(normalizer="none").scores(both, weights), [5, 5])


@pytest.mark.parametrize("criterion, kind, expected", [
    # rows of |W*G|: 0.5+2, 3+0, 0+3
    (TaylorCriterion(normalizer="none"), "gradients", [2.5, 3.0, 3.0]),
    (SNIPCriterion(normalizer="none"), "gradients", [2.5, 3.0, 3.0]),
    # rows of W*G signed: 0.5-2, -3+0, 0-3
    (GraSPCriterion(), "hessian_gradient", [-1.5, -3.0, -3.0]),
    (CroPCriterion(normalizer="none"), "hessian_gradient", [2.5, 3.0, 3.0]),
    # rows of W^2*G/2 with G as the Fisher: (0.5+4)/2, (-9+0)/2, (0-3)/2
    (OBDCriterion(normalizer="none"), "squared_gradients", [2.25, -4.5, -1.5]),
])
def test_derivative_criteria_by_hand(criterion: Criterion, kind: str, expected: list[float]) -> None:
    rows = group(3, ("w", 0, "producer", [0, 1, 2]))
    np.testing.assert_allclose(criterion.scores(rows, {"w": W}, {kind: {"w": G}}), expected)


def test_derivative_criteria_skip_members_without_data() -> None:
    both = group(3, ("w", 0, "producer", [0, 1, 2]), ("b", 0, "producer", [0, 1, 2]))
    scores = TaylorCriterion(normalizer="none").scores(both, {"w": W, "b": np.ones(3)}, {"gradients": {"w": G}})
    np.testing.assert_allclose(scores, [2.5, 3.0, 3.0])


class _Gradients:
    kinds = ("gradients",)

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def tensors(self, kind: str, names: list[str]) -> dict[str, np.ndarray]:
        return {name: self.arrays[name] for name in names if name in self.arrays}


def test_score_groups_fetches_what_the_criterion_needs() -> None:
    rows = group(3, ("w", 0, "producer", [0, 1, 2]))
    scores = score_groups(TaylorCriterion(normalizer="none"), [rows], {"w": W}, provider=_Gradients({"w": G}))
    np.testing.assert_allclose(scores[0], [2.5, 3.0, 3.0])


def test_provider_errors_name_what_is_missing() -> None:
    rows = group(3, ("w", 0, "producer", [0, 1, 2]))
    with pytest.raises(SPAError, match="taylor criterion needs gradients .* no data provider"):
        score_groups(TaylorCriterion(), [rows], {"w": W})
    with pytest.raises(SPAError, match=r"grasp criterion needs Hessian-gradient products \(H g\), which _Gradients"):
        score_groups(GraSPCriterion(), [rows], {"w": W}, provider=_Gradients({"w": G}))
    with pytest.raises(SPAError, match="for none of the model's weights .* name_map"):
        score_groups(TaylorCriterion(), [rows], {"w": W}, provider=_Gradients({"conv.weight": G}))
    with pytest.raises(SPAError, match="have shape"):
        score_groups(TaylorCriterion(), [rows], {"w": W}, provider=_Gradients({"w": G.T}))
