"""spa.Target: how much `Model.plan` removes, as one value instead of four exclusive keywords."""

from __future__ import annotations

import pytest
import spa
from helpers import LIGHT_MODELS
from spa.errors import SPAError
from spa.groups import plan_to_dict

MODEL = LIGHT_MODELS[0]


@pytest.mark.parametrize("target, shorthand", [
    (spa.Target.channels(0.3), {"ratio": 0.3}),
    (spa.Target.params(0.2), {"target_params": 0.2}),
    (spa.Target.macs(0.25), {"target_flops": 0.25}),
])
def test_a_target_plans_what_its_shorthand_plans(target: spa.Target, shorthand: dict) -> None:
    model = spa.load(MODEL)
    groups = model.coupling_groups()
    by_target = plan_to_dict(model.plan("l2", target=target, quiet=True), groups)
    by_keyword = plan_to_dict(model.plan("l2", quiet=True, **shorthand), groups)
    assert by_target == by_keyword and any(group["removed"] for group in by_target["groups"])


@pytest.mark.parametrize("arguments, message", [
    ({}, "give exactly one target"),
    ({"target": spa.Target.macs(0.2), "ratio": 0.3}, "give exactly one target"),
    ({"ratio": 0.2, "target_flops": 0.3}, "give exactly one target"),
])
def test_plan_needs_exactly_one_target(arguments: dict, message: str) -> None:
    with pytest.raises(SPAError, match=message):
        spa.load(MODEL).plan("l2", quiet=True, **arguments)


@pytest.mark.parametrize("measure, fraction, message", [
    ("flops", 0.3, "a target measures one of channels, params, macs, latency"),
    ("macs", 1.0, r"a fraction in \[0, 1\)"),
    ("params", -0.1, r"a fraction in \[0, 1\)"),
])
def test_targets_reject_unknown_measures_and_fractions_outside_zero_to_one(measure, fraction, message) -> None:
    with pytest.raises(SPAError, match=message):
        spa.Target(measure, fraction)


def test_importing_spa_for_its_target_loads_no_mlir() -> None:
    import subprocess
    import sys

    code = "import sys, spa; spa.Target.macs(0.1); print(any(m == 'mlir' or m.startswith('mlir.') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
