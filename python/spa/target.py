"""How much to prune: a fraction of the channels, parameters, MACs or latency."""

from __future__ import annotations

from dataclasses import dataclass

from spa.errors import SPAError

MEASURES = ("channels", "params", "macs", "latency")


@dataclass(frozen=True)
class Target:
    """What to remove: a `fraction` in [0, 1) of a `measure`.

    The measure is "channels" (the same ratio of every group's channels under
    uniform allocation), "params", "macs" (MACs, which `spa prune` calls
    FLOPs) or "latency" (onnxruntime time on this machine). Build one with
    `Target.channels(0.3)`, `Target.params(0.2)`, `Target.macs(0.5)` or
    `Target.latency(0.3)`.
    """

    measure: str
    fraction: float

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise SPAError(f"a target measures one of {', '.join(MEASURES)}, not {self.measure!r}")
        if isinstance(self.fraction, bool) or not isinstance(self.fraction, (int, float)) \
                or not 0.0 <= self.fraction < 1.0:
            raise SPAError(f"a {self.measure} target is a fraction in [0, 1), not {self.fraction}")

    @classmethod
    def channels(cls, fraction: float) -> Target:
        return cls("channels", fraction)

    @classmethod
    def params(cls, fraction: float) -> Target:
        return cls("params", fraction)

    @classmethod
    def macs(cls, fraction: float) -> Target:
        return cls("macs", fraction)

    @classmethod
    def latency(cls, fraction: float) -> Target:
        return cls("latency", fraction)

    @classmethod
    def of(cls, target: Target | None = None, ratio: float | None = None, target_params: float | None = None,
           target_flops: float | None = None, target_latency: float | None = None) -> Target:
        """The one amount given, as a Target or by a shorthand keyword; SPAError unless exactly one is."""
        given = [cls(m, v) for m, v in (("channels", ratio), ("params", target_params), ("macs", target_flops),
                                        ("latency", target_latency)) if v is not None]
        if target is not None and not isinstance(target, Target):
            raise SPAError(f"target must be a spa.Target (Target.macs(0.3), say), not {target!r}")
        given += [target] if target is not None else []
        if len(given) != 1:
            raise SPAError("give exactly one target: target=Target..., or one of ratio, target_params, "
                           "target_flops and target_latency")
        return given[0]
