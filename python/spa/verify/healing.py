"""Verify a prune and heal it: groups whose rewrite breaks a check are blocked, the rest is pruned.

The whole plan is tried first. If it fails, the unpruned model is tried (a
failure there is no group's fault and is reported as such); then groups are
added back by bisection: a set of candidates that passes together with the
groups already accepted is accepted whole, one that fails is split in two,
and a single group that fails is blocked with the failure as its reason.
With k culprits among n groups this takes about 2 k log2(n) trials, and a
group that only fails in combination with others is caught too (the later
one of the pair is blocked).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from spa.errors import SPAError
from spa.groups import Plan
from spa.verify.checks import Failure
from spa.verify.trial import Pruned, Trial


@dataclass
class Verification:
    """What verification checked (`checks`), what it could not (`skipped`), and the groups it
    blocked (group id -> reason), with the number of trial prunes it took."""

    checks: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    blocked: dict[int, str] = field(default_factory=dict)
    trials: int = 0

    def lines(self) -> list[str]:
        """Readable lines for the CLI."""
        result = [f"verified: {', '.join(self.checks)}"]
        result += [f"not verified: {reason}" for reason in self.skipped]
        result += [f"blocked group {g}: {reason}" for g, reason in sorted(self.blocked.items())]
        return result


def verified_prune(trial: Trial, plan: Plan, progress: Callable[[str], None] | None = None
                   ) -> tuple[Pruned, Plan, Verification]:
    """The pruned copy to write, the plan it applies (with `blocked` filled) and the report.

    Raises SPAError when even the unpruned model fails, or when every group of the plan is blocked.
    """
    result = trial.run(plan)
    blocked: dict[int, str] = {}
    if isinstance(result, Failure):
        unpruned = trial.run(plan.restricted(()))
        if isinstance(unpruned, Failure):
            raise SPAError(f"{trial.label}: the model SPA would write fails verification even with nothing "
                           f"pruned ({unpruned.line()}); this is a bug in SPA's import or export, please report it")
        candidates = sorted(g for g, channels in plan.removed.items() if channels)
        accepted = _bisect(trial, plan, candidates, result, blocked, progress)
        if not accepted:
            first = next(iter(blocked.values()))
            raise SPAError(f"{trial.label}: verification blocked every group of the plan ({len(blocked)} groups; "
                           f"the first: {first})")
        healed = replace(plan.restricted(accepted), blocked=blocked)
        if healed.refit is not None:
            healed = replace(healed, weight_updates=healed.refit(healed.removed))
        result = trial.run(healed)
        if isinstance(result, Failure):
            raise SPAError(f"{trial.label}: the healed plan fails verification ({result.line()})")
        plan = healed
    return result, plan, _report(trial, plan, blocked)


def _bisect(trial: Trial, plan: Plan, candidates: Sequence[int], first_failure: Failure, blocked: dict[int, str],
            progress: Callable[[str], None] | None) -> list[int]:
    accepted: list[int] = []

    def add(batch: Sequence[int], failure: Failure | None = None) -> None:
        if not batch:
            return
        outcome = failure or trial.run(plan.restricted([*accepted, *batch]))
        if not isinstance(outcome, Failure):
            accepted.extend(batch)
        elif len(batch) == 1:
            blocked[batch[0]] = outcome.line()
            if progress:
                progress(f"blocked group {batch[0]}: {outcome.line()}")
        else:
            middle = len(batch) // 2
            add(batch[:middle])
            add(batch[middle:])

    add(candidates, first_failure)  # the whole plan is known to fail
    return accepted


def _report(trial: Trial, plan: Plan, blocked: dict[int, str]) -> Verification:
    checks = ["onnx checker" + (" (full)" if trial.full_check else " (plain)")]
    if trial.runnable:
        shapes = ", ".join(f"{name} {value.dtype}{list(value.shape)}" for name, value in trial.feeds.items())
        checks.append(f"onnxruntime runs it ({shapes})")
        checks.append("outputs keep the original's dtypes and shapes")
        oracle = trial.oracle_line(plan)
        if oracle:
            checks.append(oracle)
    return Verification(checks, list(trial.skipped), dict(blocked), trial.count)
