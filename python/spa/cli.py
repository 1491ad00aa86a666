"""The `spa` command line: import and export models, and a demo on a bundled example."""

from __future__ import annotations

import argparse
import sys
import warnings

import spa
from spa.errors import SPAError, first_line
from spa.target import Target


def _import(args: argparse.Namespace) -> None:
    from spa.importer import ImportConfig, import_model
    from spa.ir.files import write_module

    config = ImportConfig(check=not args.no_check, fold_shapes=args.fold_shapes)
    module = import_model(args.model, config)
    write_module(module, args.output)


def _export(args: argparse.Namespace) -> None:
    from spa.exporter import save_module
    from spa.ir.files import read_module

    save_module(read_module(args.module), args.output, external_data=True if args.external_data else None,
                opset=args.opset)


def _analyze(args: argparse.Namespace) -> None:
    import json

    from spa.model import load
    from spa.report import groups_summary

    model = load(args.model)
    model.heads = args.heads
    groups = model.coupling_groups()
    if args.json:
        print(json.dumps({"groups": [group.to_json() for group in groups]}, indent=1))
        return
    shapes = {name: array.shape for name, array in model.weights().items()}
    print(f"{args.model}")
    print(groups_summary(groups, shapes))


class Stage:
    """The phase the command is in, named in the error line of an unexpected failure."""

    name = "start-up"
    model = ""


def _prune(args: argparse.Namespace) -> None:
    from spa.calibration import load_calibration
    from spa.execution import backend_for
    from spa.model import load
    from spa.obspa import OBSPAOptions

    Stage.model, Stage.name = args.model, "import"
    model = load(args.model)
    model.heads = args.heads
    Stage.name = "analysis"
    before = model.stats()
    groups = model.coupling_groups()
    target = _target(args)
    if args.criterion != "obspa" and args.hessian != "auto":
        raise SPAError("--hessian is an option of --criterion obspa")
    if args.calibration and args.criterion != "obspa" and args.allocation != "sensitivity":
        raise SPAError("--calibration is read by --criterion obspa and --allocation sensitivity")
    calibration = None
    if args.calibration:
        calibration = load_calibration(args.calibration, model.input_names(), args.calibration_samples)
    Stage.name = "scoring"
    backend = backend_for(args.ray, args.workers) if args.ray or args.workers else None
    options = OBSPAOptions(hessian=args.hessian, samples=args.synthetic_samples, damp=args.damp, seed=args.seed,
                           input_shapes=args.input_shape, sequential=not args.one_shot,
                           reestimate_batchnorm=args.reestimate_bn, synthesis=args.synthesis)
    try:
        plan = _plan(args, model, target, calibration, options, backend)
    finally:
        if backend is not None:
            backend.close()
    Stage.name = "pruning and verification" if args.verify else "pruning"
    inputs = _verification_inputs(args, model)
    applied = model.prune(plan, verify=args.verify, inputs=inputs, input_shapes=args.input_shape, opset=args.opset)
    after = model.stats()
    Stage.name = "export"
    model.save(args.output, opset=args.opset)
    if args.plan_out:
        _write_plan(args.plan_out, applied, groups, model.to_onnx(opset=args.opset))
    if args.report:
        _write_report(args, model, applied, groups)
    _print_result(args, model, applied, groups, before, after)


def _write_report(args: argparse.Namespace, pruned, plan, groups) -> None:
    from spa.groups import plan_to_dict
    from spa.html_report import write_report
    from spa.model import load

    Stage.name = "report"
    original = load(args.model)
    original.heads = args.heads
    write_report(args.report, original, pruned, plan_to_dict(plan, groups), input_shapes=args.input_shape)


def _report(args: argparse.Namespace) -> None:
    from spa.html_report.files import report_from_files

    Stage.model, Stage.name = args.model, "report"
    report_from_files(args.model, args.output, args.plan, args.pruned, args.heads, not args.no_latency,
                      args.input_shape)
    print(f"wrote {args.output}")


def _sweep(args: argparse.Namespace) -> None:
    from spa.calibration import held_out_split, load_calibration
    from spa.execution import backend_for
    from spa.model import load
    from spa.sweep import SweepInputs, run_sweep, write_results
    from spa.verify import generated_inputs, read_inputs

    if args.round_to == "auto" and args.measure != "latency":
        raise SPAError("--round-to auto chooses the rounding by measured latency: use it with --measure latency")
    Stage.model, Stage.name = args.model, "import"
    model = load(args.model)  # one clear line for a file that is not a model, before any worker starts
    written = model.to_onnx()
    calibration = evaluation = None
    if args.calibration:
        calibration, evaluation = held_out_split(
            load_calibration(args.calibration, model.input_names(), args.calibration_samples), 64)
    if args.inputs:
        evaluation = read_inputs(args.inputs, written, limit=64)
    inputs = SweepInputs(written.SerializeToString(), args.measure, calibration,
                         evaluation or generated_inputs(written, args.input_shape), input_shapes=args.input_shape,
                         heads=args.heads, round_to=args.round_to)
    Stage.name = "sweep"
    backend = backend_for(args.ray, args.workers)
    try:
        dense, rows = run_sweep(inputs, args.criteria, args.targets, backend, args.quiet)
    finally:
        backend.close()
    files = write_results(args.output, args.model, dense, rows)
    print(f"{'dense':>8} {'':5} latency {dense['latency_ms']:.2f} ms")
    for row in rows:
        print(f"{row['criterion']:>8} {row['target']:<5g} {_sweep_outcome(row)}")
    print(f"wrote {len(files)} files into {args.output}: {', '.join(files[:3])} and the pruned models")


def _sweep_outcome(row: dict) -> str:
    from spa.sweep.front import quality

    if "error" in row:
        return f"failed: {row['error']}"
    return f"MACs -{row['macs_removed']:.1%}, latency {row['latency_ms']:.2f} ms, quality {quality(row):.3f}"


def _target(args: argparse.Namespace) -> Target:
    """The amount the command asks for: one of the four options, or 30 % of the channels."""
    given = (args.ratio, args.target_params, args.target_flops, args.target_latency)
    if all(value is None for value in given):
        return Target.channels(0.3)
    return Target.of(None, *given)


def _plan(args: argparse.Namespace, model, target: Target, calibration, options, backend):
    return model.plan(criterion=args.criterion, target=target, latency_threads=args.latency_threads,
                      global_ranking=args.global_ranking, round_to=args.round_to, protect=args.protect, seed=args.seed,
                      calibration=calibration, obspa=options, allocation=args.allocation,
                      input_shapes=args.input_shape, quiet=args.quiet, backend=backend)


def _verification_inputs(args: argparse.Namespace, model):
    if not args.inputs:
        return None
    from spa.ir.names import SPA_OPSET
    from spa.verify import read_inputs

    return read_inputs(args.inputs, model.to_onnx(opset=SPA_OPSET), limit=8)


def _write_plan(path: str, plan, groups, written) -> None:
    import json

    from spa.exporter import write_text_atomically
    from spa.groups import plan_to_dict
    from spa.verify.files import corrected_digests

    entries = plan_to_dict(plan, groups)
    entries["digests"] = corrected_digests(entries, written)  # lets `spa verify` notice changed weights
    write_text_atomically(path, json.dumps(entries, indent=1))


def _print_result(args: argparse.Namespace, model, plan, groups, before, after) -> None:
    from spa.report import change_line, stats_line

    print(f"criterion {args.criterion}: removed {plan.removed_count()} channels from "
          f"{sum(1 for c in plan.removed.values() if c)} of {sum(g.prunable for g in groups)} prunable groups")
    target = _target(args)
    if target.measure == "channels":
        small = [g for g in groups if g.prunable and not plan.removed.get(g.id)
                 and int(target.fraction * g.channels) < g.divisor]
        if small:
            sizes = ", ".join(sorted({f"{g.channels} in steps of {g.divisor}" for g in small}))
            print(f"kept whole: {len(small)} prunable groups are too small for --ratio {target.fraction:g} to "
                  f"remove a step of them ({sizes}; with --heads whole a channel is a head)")
    print(f"data used: {plan.data_used}")
    if plan.weight_updates:
        print(f"corrected {len(plan.weight_updates)} weight tensors of the kept channels")
    if model.verification is not None:
        for line in model.verification.lines():
            print(line)
    print(stats_line("before", before))
    print(stats_line("after", after))
    print(change_line(before, after))
    written = [args.output] + [path for path in (args.plan_out, args.report) if path]
    print(f"wrote {', '.join(written)}")


def _verify(args: argparse.Namespace) -> None:
    from spa.verify.files import verify_files

    Stage.model, Stage.name = args.pruned, "verification"
    for line in verify_files(args.original, args.pruned, args.plan, args.inputs, args.input_shape):
        print(f"ok: {line}")
    print(f"{args.pruned}: verified against {args.original}")


def _criterion_choices() -> list[str]:
    """The registry's criteria, and OBSPA, which also rewrites weights (imported here: `spa --help`
    need not load NumPy)."""
    from spa.criteria import CRITERIA

    return [*CRITERIA, "obspa"]


def _rounding(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is neither a positive integer nor auto")
    return value


def _fractions(text: str) -> list[float]:
    return [_fraction(part) for part in text.split(",") if part.strip()]


SWEEP_CRITERIA = ("l1", "l2", "random", "bn_scale", "fpgm", "obspa")  # those that need no gradients


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in SWEEP_CRITERIA]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown criterion {unknown[0] if unknown else text!r}")
    return names


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a fraction in [0, 1)")
    return value


def _demo(args: argparse.Namespace) -> None:
    from spa.demo import run_demo

    run_demo()


def _add_opset_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--opset", type=int, metavar="N",
                        help="write the model at default-domain opset N (default: the opset it came with, "
                             "where onnx's version converter can convert back; a warning says when not)")


def _add_heads_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--heads", choices=["dims", "whole"], default="dims",
                        help="attention heads: remove the same head dims from every head (dims, default) "
                             "or whole heads (whole)")


def _add_input_options(parser) -> None:
    parser.add_argument("--inputs", metavar="DATA.npz",
                        help="inputs to run the models on (.npz with one array per model input, samples first; "
                             "default: made from the declared inputs)")
    parser.add_argument("--input-shape", type=_input_shape, action="append", metavar="NAME:DIMS",
                        help="the size of an input with dynamic dims, e.g. input:1x3x224x224 (repeatable); "
                             "used for made-up inputs (verification, data-free OBSPA)")


def _input_shape(text: str) -> tuple[str, tuple[int, ...]]:
    from spa.verify import parse_input_shapes

    try:
        return next(iter(parse_input_shapes([text]).items()))
    except SPAError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"spa: warning: {message}", file=sys.stderr)


def _add_prune_command(commands) -> None:
    prune = commands.add_parser("prune", help="remove channels from an ONNX model")
    prune.add_argument("model", help="ONNX model file (.onnx)")
    prune.add_argument("-o", "--output", required=True, help="pruned ONNX model file")
    prune.add_argument("--criterion", default="l1", choices=_criterion_choices(),
                       help="how channels are scored (default l1); obspa also corrects the kept weights; "
                            "taylor, snip, grasp, crop and obd need gradients, which only the Python API "
                            "can provide (spa.providers.TorchProvider)")
    amount = prune.add_mutually_exclusive_group()
    amount.add_argument("--ratio", type=_fraction, help="fraction of channels to remove (default 0.3)")
    amount.add_argument("--target-params", type=_fraction, help="fraction of parameters to remove")
    amount.add_argument("--target-flops", type=_fraction, help="fraction of MACs to remove")
    amount.add_argument("--target-latency", type=_fraction,
                        help="fraction of the onnxruntime latency on this machine to remove (0.5: twice as fast), "
                             "measured on inputs made from the declared ones (--input-shape sets dynamic dims, "
                             "the batch among them); kept widths are rounded to the multiple that measures best")
    prune.add_argument("--latency-threads", type=int, default=1, metavar="N",
                       help="onnxruntime threads for --target-latency (default 1)")
    prune.add_argument("--allocation", choices=["uniform", "global", "sensitivity"],
                       help="how the amount is shared among groups: the same ratio in each (uniform), channels "
                            "ranked across groups (global), or per-group counts with the least output damage "
                            "measured on samples (sensitivity; the default for obspa with --target-params or "
                            "--target-flops, else uniform)")
    prune.add_argument("--global", dest="global_ranking", action="store_true",
                       help="the same as --allocation global")
    _add_round_to_option(prune)
    prune.add_argument("--protect", nargs="+", default=[], metavar="NAME",
                       help="initializers whose groups must not be pruned")
    prune.add_argument("--plan-out", help="write the plan (removed indices per tensor) as JSON")
    prune.add_argument("--report", metavar="REPORT.html",
                       help="also write an HTML report of the pruning (see spa report)")
    prune.add_argument("--seed", type=int, default=0, help="seed of the random criterion and synthetic inputs")
    _add_opset_option(prune)
    _add_heads_option(prune)
    _add_backend_options(prune)
    _add_prune_groups(prune)


def _add_prune_groups(prune: argparse.ArgumentParser) -> None:
    """The OBSPA and verification options of `spa prune`."""
    obspa = prune.add_argument_group("obspa", "options of --criterion obspa")
    obspa.add_argument("--calibration", metavar="DATA.npz",
                       help="inputs to estimate layer Hessians from (.npz with one array per model input, "
                            "or .npy for a single input); without it OBSPA is data-free")
    obspa.add_argument("--calibration-samples", type=int, default=None, metavar="N",
                       help="use only the first N calibration samples")
    obspa.add_argument("--hessian", default="auto", choices=["auto", "calibration", "data-free", "identity"],
                       help="where layer Hessians come from (default: calibration if given, else data-free)")
    obspa.add_argument("--synthetic-samples", type=int, default=128, metavar="N",
                       help="synthetic inputs for data-free Hessians (default 128)")
    obspa.add_argument("--damp", type=float, default=0.01,
                       help="Hessian dampening, a fraction of its mean diagonal (default 0.01)")
    obspa.add_argument("--one-shot", action="store_true",
                       help="refit every layer on the dense model's inputs (OBSPA v1) instead of layer by layer "
                            "on the pruned model's own")
    obspa.add_argument("--reestimate-bn", action="store_true",
                       help="with --calibration, re-estimate BatchNorm statistics on the pruned model (helps when "
                            "the samples represent the data well)")
    obspa.add_argument("--synthesis", choices=["auto", "batchnorm", "inversion", "gaussian"], default="auto",
                       help="data-free inputs, optimised (needs spa[torch]) to match the model's BatchNorm "
                            "statistics (batchnorm), also to be classified as each class in turn (inversion), or "
                            "Gaussian; auto: inversion for a classifier, else batchnorm, where possible")
    checks = prune.add_argument_group("verification", "every written model is checked first (onnx checker, "
                                      "onnxruntime run, output shapes, zero-mask oracle); groups that break a "
                                      "check are left unpruned and reported")
    checks.add_argument("--no-verify", dest="verify", action="store_false",
                        help="write the pruned model without checking it")
    _add_input_options(checks)
    prune.set_defaults(run=_prune)


def _add_report_command(commands) -> None:
    report = commands.add_parser("report", help="write a self-contained HTML report: layer graph, coupling "
                                 "groups, widths, params, MACs and latency before and after pruning")
    report.add_argument("model", help="the original ONNX model")
    after = report.add_mutually_exclusive_group()
    after.add_argument("--plan", metavar="PLAN.json", help="a plan spa prune wrote (--plan-out): report it applied")
    after.add_argument("--pruned", metavar="PRUNED.onnx", help="the pruned model to compare with")
    report.add_argument("-o", "--output", required=True, metavar="REPORT.html", help="the HTML file to write")
    report.add_argument("--no-latency", action="store_true", help="do not time the models with onnxruntime")
    report.add_argument("--input-shape", type=_input_shape, action="append", metavar="NAME:DIMS",
                        help="the size of an input with dynamic dims, for timing (repeatable)")
    _add_heads_option(report)
    report.set_defaults(run=_report)


def _add_backend_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="run the work on the Ray cluster at ADDRESS, or on Ray started here (local); "
                             "needs spa[ray]")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="processes (or Ray CPUs with --ray local) to use (default: every core)")


def _add_round_to_option(parser) -> None:
    parser.add_argument("--round-to", type=_rounding, default=1, metavar="N",
                        help="keep a multiple of N channels per group (CPU kernels favour 8 or 16); auto (the "
                             "default with a latency target) measures 1, 8 and 16 and keeps the one meeting the "
                             "target with the fewest removed")


def _add_sweep_command(commands) -> None:
    sweep = commands.add_parser("sweep", help="prune at every target with every criterion: a table of params, "
                                "MACs, latency and output agreement, and its Pareto front")
    sweep.add_argument("model", help="ONNX model file (.onnx)")
    sweep.add_argument("--targets", type=_fractions, required=True, metavar="F,F,...",
                       help="amounts to remove, e.g. 0.1,0.2,0.3,0.5 (of --measure)")
    sweep.add_argument("--criteria", type=_names, default=["l1"], metavar="C,C,...",
                       help="criteria to compare, e.g. l2,obspa (default l1)")
    sweep.add_argument("--measure", choices=["flops", "params", "channels", "latency"], default="flops",
                       help="what the targets are fractions of (default flops: MACs)")
    sweep.add_argument("--calibration", metavar="DATA.npz",
                       help="samples for obspa (three quarters) and for the agreement (the rest)")
    sweep.add_argument("--calibration-samples", type=int, metavar="N", help="use only the first N samples")
    sweep.add_argument("-o", "--output", required=True, metavar="FOLDER", help="where the results go")
    _add_round_to_option(sweep)
    _add_input_options(sweep)
    _add_heads_option(sweep)
    _add_backend_options(sweep)
    sweep.set_defaults(run=_sweep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spa", description="Structurally Prune Anything: structured pruning of ONNX models.")
    parser.add_argument("--version", action="version", version=f"spa {spa.__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected failure")
    parser.add_argument("--quiet", action="store_true", help="no progress displays")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    importer = commands.add_parser("import", help="convert an ONNX model to an MLIR module (onnx dialect)")
    importer.add_argument("model", help="ONNX model file (.onnx)")
    importer.add_argument("-o", "--output", required=True,
                          help="output MLIR file: .mlir for text, .mlirbc for bytecode")
    importer.add_argument("--no-check", action="store_true", help="skip onnx.checker on the input")
    importer.add_argument("--fold-shapes", action="store_true",
                          help="fold static shape arithmetic into constants (as `spa prune` does), so that "
                               "spa-opt's passes can follow computed Reshape/Expand targets")
    importer.set_defaults(run=_import)

    exporter = commands.add_parser("export", help="convert an MLIR module (onnx dialect) to an ONNX model")
    exporter.add_argument("module", help="MLIR file (.mlir text or .mlirbc bytecode)")
    exporter.add_argument("-o", "--output", required=True, help="output ONNX model file")
    exporter.add_argument("--external-data", action="store_true",
                          help="store weights in OUTPUT.data beside the model (automatic above 2 GB)")
    _add_opset_option(exporter)
    exporter.set_defaults(run=_export)

    analyze = commands.add_parser("analyze", help="show the groups of coupled channels of an ONNX model")
    analyze.add_argument("model", help="ONNX model file (.onnx)")
    analyze.add_argument("--json", action="store_true",
                         help="print every group with its members (tensor, axis, channel of each position)")
    _add_heads_option(analyze)
    analyze.set_defaults(run=_analyze)

    _add_prune_command(commands)

    verify = commands.add_parser("verify", help="check a pruned model against its original (and the plan)")
    verify.add_argument("original", help="the unpruned ONNX model")
    verify.add_argument("pruned", help="the pruned ONNX model")
    verify.add_argument("--plan", metavar="PLAN.json",
                        help="the plan spa prune wrote (--plan-out): also check that the pruned model is what "
                             "the plan makes of the original and that it passes the zero-mask oracle")
    _add_input_options(verify)
    verify.set_defaults(run=_verify)

    _add_report_command(commands)
    _add_sweep_command(commands)

    demo = commands.add_parser("demo", help="prune a bundled trained MNIST model (no arguments) and show "
                               "its speed-up and report")
    demo.set_defaults(run=_demo)
    for command in commands.choices.values():  # `spa prune ... --quiet` reads as naturally as `spa --quiet prune`
        command.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress displays")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 success, 1 bad input, 2 usage)."""
    args = build_parser().parse_args(argv)
    if getattr(args, "input_shape", None) is not None:
        args.input_shape = dict(args.input_shape)
    warnings.showwarning = _print_warning  # one readable line per warning, not a source location
    from spa.progress import set_quiet

    set_quiet(args.quiet)  # each run of main says, also when called again in one process
    Stage.name, Stage.model = "start-up", getattr(args, "model", "")
    try:
        args.run(args)
    except SPAError as error:
        print(f"spa {args.command}: error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - any other failure is SPA's bug: one line, not a traceback
        if args.debug:
            raise
        where = f"{Stage.model}: " if Stage.model else ""
        print(f"spa {args.command}: error: {where}{Stage.name} failed: {type(error).__name__}: "
              f"{first_line(error)} (an internal error; --debug shows where)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
