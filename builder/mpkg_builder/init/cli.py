"""`mpkg init DIR --from SOURCE`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mpkg._internal.commandline import emit_json, info
from mpkg._internal.io.atomic import signals_unwind


def register(sub: Any) -> None:
    """Add `mpkg init` to the command line."""
    p = sub.add_parser(
        "init",
        help="write a package source folder from an .onnx, .safetensors, MLflow or Hugging Face model",
        description=(
            "Write DIR/mpkg.toml and everything it names (card, lockfile, example, contract) from SOURCE, "
            "so that `mpkg build DIR` builds it as it is. Never overwrites a file."
        ),
    )
    p.add_argument("directory", metavar="DIR", help="the source folder to write (created if needed)")
    p.add_argument("--from", dest="source", required=True, metavar="SOURCE", help=".onnx, .safetensors or a folder")
    p.add_argument("--code", metavar="FILE", help="Python module: predict() for safetensors, pre/postprocess for ONNX")
    p.add_argument("--contract", metavar="FILE", help="contract.json (required for safetensors)")
    p.add_argument("--run-dir", metavar="DIR", help="the MLflow run folder, when it is not found from mlruns/")
    p.add_argument("--name", help="package name (default: from SOURCE)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    """`mpkg init DIR --from SOURCE`: write a source folder that builds as it is."""
    from . import init_source
    from .options import InitOptions

    options = InitOptions(
        code=Path(args.code) if args.code else None,
        contract=Path(args.contract) if args.contract else None,
        run_dir=Path(args.run_dir) if args.run_dir else None,
        name=args.name,
    )
    with signals_unwind():  # SIGTERM/SIGHUP remove what init made, as Ctrl-C does
        result = init_source(args.directory, args.source, options)
    if args.json:
        emit_json({"ok": True, **result.to_json()})
        return 0
    info(f"wrote {result.directory}: {', '.join(result.files)}")
    info(f"  lockfile: {len(result.lockfile.packages)} pins from this environment; example: {result.example_origin}")
    for note in result.notes:
        info(f"  note: {note}")
    for warning in result.warnings:
        info(f"  to write by hand: {warning}")
    info(f"next: mpkg build {args.directory} -o {result.name}.mpkg")
    return 0
