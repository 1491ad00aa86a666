"""The `spa` command line: import and export models, and a demo on a bundled example."""

from __future__ import annotations

import argparse
import sys

import spa
from spa.errors import SPAError


def _import(args: argparse.Namespace) -> None:
    from spa.importer import ImportConfig, import_model
    from spa.mlir_files import write_module

    config = ImportConfig(check=not args.no_check)
    module = import_model(args.model, config)
    write_module(module, args.output)


def _export(args: argparse.Namespace) -> None:
    from spa.exporter import save_module
    from spa.mlir_files import read_module

    save_module(read_module(args.module), args.output, external_data=True if args.external_data else None)


def _demo(args: argparse.Namespace) -> None:
    from spa.demo import run_demo

    run_demo()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spa", description="Structurally Prune Anything: structured pruning of ONNX models.")
    parser.add_argument("--version", action="version", version=f"spa {spa.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    importer = commands.add_parser("import", help="convert an ONNX model to an MLIR module (onnx dialect)")
    importer.add_argument("model", help="ONNX model file (.onnx)")
    importer.add_argument("-o", "--output", required=True,
                          help="output MLIR file: .mlir for text, .mlirbc for bytecode")
    importer.add_argument("--no-check", action="store_true", help="skip onnx.checker on the input")
    importer.set_defaults(run=_import)

    exporter = commands.add_parser("export", help="convert an MLIR module (onnx dialect) to an ONNX model")
    exporter.add_argument("module", help="MLIR file (.mlir text or .mlirbc bytecode)")
    exporter.add_argument("-o", "--output", required=True, help="output ONNX model file")
    exporter.add_argument("--external-data", action="store_true",
                          help="store weights in OUTPUT.data beside the model (automatic above 2 GB)")
    exporter.set_defaults(run=_export)

    demo = commands.add_parser("demo", help="run SPA on a bundled example model (no arguments)")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 success, 1 bad input, 2 usage)."""
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except SPAError as error:
        print(f"spa {args.command}: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
