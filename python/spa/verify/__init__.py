"""Verification: SPA never writes a model that does not load, run and compute what the plan says.

- `inputs`: feeds made from a model's declared inputs, or read from `--inputs DATA.npz`;
- `checks`: the onnx checker, onnxruntime runs, output signatures, output equality;
- `masking`: the zero-mask oracle's reference model;
- `trial`: one prune of the original with a plan, checked;
- `healing`: the whole plan first, then bisection that blocks the groups that break a check;
- `files`: `spa verify ORIGINAL PRUNED [--plan PLAN.json]` for users' own pipelines.

`spa.Model.prune` verifies by default (`verify=False` skips it).
"""

from spa.verify.checks import Failure
from spa.verify.healing import Verification, verified_prune
from spa.verify.inputs import generated_inputs, parse_input_shapes, read_inputs
from spa.verify.trial import Trial

__all__ = ["Failure", "Trial", "Verification", "generated_inputs", "parse_input_shapes", "read_inputs",
           "verified_prune"]
