"""Property: `spa prune` either writes a model that passes `spa verify`, or refuses with one clear line.

Graphs come from the block grammar in fuzz_graphs.py; the options are a
random criterion, amount (ratio or a params/MACs target), --global,
--round-to and head granularity. Graphs are built directly with onnx.helper
(fuzz_graphs.py) and as PyTorch modules exported by both of torch's
exporters (fuzz_torch.py). A written model is checked independently
of the prune: the onnx full check and onnxruntime on the file, then
`spa verify` with the plan (SPA re-imports the original, re-applies the plan
and runs the zero-mask oracle); and verification must not have blocked a
group on the way (healing is the user's safety net, but on graphs made of
blocks SPA knows, a group whose rewrite fails a check is a bug). A refusal must be exit code 1, one line,
no "internal error", and no output file. CI runs 230 graphs (200 + 30
exports, the same ones every run); `-m slow` runs 2,300 more, drawn at random.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import onnx
import pytest
from helpers import run, session
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from spa.cli import main
from spa.verify import generated_inputs
from spa.verify.files import verify_files

import fuzz_graphs
import fuzz_torch

pytestmark = pytest.mark.zoo  # the full tier only (see pyproject's markers)

CRITERIA = ["l1", "l2", "fpgm", "random", "bn_scale", "obspa"]


@st.composite
def prune_options(draw) -> list[str]:
    options = ["--criterion", draw(st.sampled_from(CRITERIA))]
    amount = draw(st.sampled_from(["--ratio", "--target-flops", "--target-params"]))
    options += [amount, f"{draw(st.floats(0.05, 0.8)):.2f}"]
    if draw(st.booleans()):
        options.append("--global")
    options += ["--round-to", str(draw(st.sampled_from([1, 1, 2, 4]))), "--heads", draw(st.sampled_from(["dims", "whole"]))]
    if "obspa" in options:
        options += ["--synthetic-samples", "16"]
    return options


def _spa(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def loads_in_onnxruntime(model: onnx.ModelProto) -> bool:
    """Whether onnxruntime, as users run it (every graph optimisation on), builds a session of `model`.
    Its pad fusion folds Pad -> Pad -> MaxPool into a pool whose pads reach the kernel, which its own
    kernel then refuses: such an original is onnxruntime's problem, not a case for SPA."""
    try:
        session(model)
    except Exception:  # onnxruntime raises its own Fail/InvalidGraph types
        return False
    return True


def check_prune(model: onnx.ModelProto, options: list[str]) -> None:
    assume(loads_in_onnxruntime(model))
    with tempfile.TemporaryDirectory() as folder:
        source, output, plan = (str(Path(folder) / name) for name in ("model.onnx", "pruned.onnx", "plan.json"))
        onnx.save(model, source)
        code, out, err = _spa("prune", source, "-o", output, "--plan-out", plan, *options)
        if code != 0:
            lines = err.strip().splitlines()
            assert code == 1 and len(lines) == 1 and lines[0].startswith("spa prune: error:"), err
            assert "internal error" not in lines[0], lines[0]
            assert not Path(output).exists() and not Path(plan).exists()
            return
        # Healing keeps users safe from a broken rewrite, but on these graphs a healed group is SPA's own bug.
        assert "blocked group" not in out, out
        onnx.checker.check_model(output, full_check=True)
        feeds = generated_inputs(model)
        assert [a.shape for a in run(output, feeds)] == [a.shape for a in run(source, feeds)]
        verify_files(source, output, plan)


FUZZ_SETTINGS = dict(deadline=None, suppress_health_check=list(HealthCheck), database=None)


@settings(max_examples=200, derandomize=True, **FUZZ_SETTINGS)
@given(model=fuzz_graphs.onnx_models(), options=prune_options())
def test_prune_writes_verified_models_or_refuses_clearly(model: onnx.ModelProto, options: list[str]) -> None:
    check_prune(model, options)


@settings(max_examples=30, derandomize=True, **FUZZ_SETTINGS)
@given(model=fuzz_torch.torch_models(), options=prune_options())
def test_torch_exports_prune_to_verified_models_or_refuse_clearly(model: onnx.ModelProto,
                                                                  options: list[str]) -> None:
    check_prune(model, options)


@pytest.mark.slow
@settings(max_examples=2000, **FUZZ_SETTINGS)
@given(model=fuzz_graphs.onnx_models(), options=prune_options())
def test_prune_fuzzing_at_length(model: onnx.ModelProto, options: list[str]) -> None:
    check_prune(model, options)


@pytest.mark.slow
@settings(max_examples=300, **FUZZ_SETTINGS)
@given(model=fuzz_torch.torch_models(), options=prune_options())
def test_torch_export_fuzzing_at_length(model: onnx.ModelProto, options: list[str]) -> None:
    check_prune(model, options)
