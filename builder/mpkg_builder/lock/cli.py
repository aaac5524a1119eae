"""`mpkg lock [SRC]`: write the package's lockfile from this environment."""

from __future__ import annotations

import argparse
from typing import Any

from mpkg._internal.commandline import emit_json, info


def register(sub: Any) -> None:
    """Add `mpkg lock` to the command line."""
    p = sub.add_parser(
        "lock",
        help="write the lockfile from this environment: what the code imports and the format needs",
        description=(
            "Pin exactly the distributions the package code imports, what the model format needs at "
            "run time, and their requirements, to the versions installed here (spec/source.md)."
        ),
    )
    p.add_argument("source", nargs="?", default=".", help="folder holding mpkg.toml (default: .)")
    p.add_argument("-o", "--output", metavar="FILE", help="where to write (default: the lockfile mpkg.toml names)")
    p.add_argument("--format", choices=("requirements", "pylock"), help="requirements (default) or PEP 751 pylock")
    p.add_argument("--hashes", action="store_true", help="add --hash=sha256 for every pin, from the package index")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_lock)


def cmd_lock(args: argparse.Namespace) -> int:
    """`mpkg lock [SRC]`: pin what the package code imports, from this environment."""
    from .write import lock_source

    result = lock_source(args.source, args.output, args.format, args.hashes)
    if args.json:
        emit_json({"ok": True, **result.to_json()})
        return 0
    pins = result.resolution.pins
    info(f"wrote {result.path}: {len(pins)} pins{' with hashes' if result.hashed else ''} ({result.kind})")
    for root in result.resolution.roots:
        info(f"  {root.name}: {root.why}")
    for note in result.notes:
        info(f"  note: {note}")
    return 0
