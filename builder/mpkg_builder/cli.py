"""`mpkg build`, `sign` and `keygen`, found by `mpkg` through the ``mpkg.commands`` entry points.

The builder's other commands register from their own modules (init, lock, diff, containerize,
deploy, registry), each named in pyproject.toml, so `mpkg build` imports none of them.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import Any

from mpkg._internal.commandline import emit_json, info
from mpkg._internal.io.progress import progress_bar

from .signing import ALGORITHMS, keygen, sign


def register(sub: Any) -> None:
    """Add build, sign and keygen to the `mpkg` parser."""
    p = sub.add_parser("build", help="build a package from a source folder")
    p.add_argument("source", nargs="?", default=".", help="folder holding mpkg.toml (default: .)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mpkg")
    p.add_argument("--key", metavar="NAME.key", help="sign the package while building it")
    p.add_argument("--base", metavar="PREV.mpkg", help="infer the version from the previous package")
    p.add_argument(
        "--strict-card", action="store_true", help="refuse card sections that still say 'Not stated' (for CI)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_build)

    p = sub.add_parser("sign", help="add a signature to a package in place (its digest does not change)")
    p.add_argument("package")
    p.add_argument("--key", required=True, metavar="NAME.key")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_sign)

    p = sub.add_parser("keygen", help="write NAME.key (private, 0600) and NAME.pub")
    p.add_argument("name")
    p.add_argument("--algorithm", choices=ALGORITHMS, default="ed25519")
    p.add_argument("--force", action="store_true", help="overwrite existing key files")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_keygen)


def cmd_build(args: argparse.Namespace) -> int:
    """`mpkg build`: the package, its warnings, and what was written."""
    from .build import build_package  # onnx and friends load only when building

    with contextlib.ExitStack() as stack:

        def bar(total: int) -> Any:
            return stack.enter_context(progress_bar("building", total, not args.json))

        result = build_package(
            args.source, args.output, key=args.key, base=args.base, progress=bar, strict_card=args.strict_card
        )
    for warning in result.warnings:
        info(f"mpkg: warning: {warning}")
    if args.json:
        emit_json(result.to_json())
    else:
        info(f"built {result.name} {result.version} {result.digest}")
        info(f"  {result.path} ({result.size} bytes){' signed' if result.signed_by else ' unsigned'}")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    """`mpkg sign`: add a signature in place; the digest stays."""
    keyid = sign(args.package, args.key)
    if args.json:
        emit_json({"ok": True, "path": args.package, "keyid": keyid})
    else:
        info(f"signed {args.package} with key {keyid[:16]}")
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    """`mpkg keygen`: a key pair, the private half 0600."""
    pair = keygen(Path(args.name), args.algorithm, force=args.force)
    doc = {
        "private_key": str(pair.private_path),
        "public_key": str(pair.public_path),
        "keyid": pair.keyid,
        "algorithm": pair.algorithm,
    }
    if args.json:
        emit_json(doc)
    else:
        info(f"wrote {pair.private_path} (private, mode 0600) and {pair.public_path}; key id {pair.keyid[:16]}")
    return 0
