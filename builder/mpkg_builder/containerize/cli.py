"""`mpkg containerize`: argument parsing and output only; the work is in `.core`."""

from __future__ import annotations

import argparse
from typing import Any

from mpkg._internal.commandline import add_key_options, emit_json, info, trusted_keys
from mpkg.errors import UsageError

from .core import containerize
from .dockerfile import DEFAULT_BASE
from .follow import DEFAULT_INTERVAL, Followed, parse_interval


def register(subparsers: Any) -> None:
    """Add ``containerize`` to the ``mpkg`` parser (CLI convention)."""
    p = subparsers.add_parser(
        "containerize",
        help="build a serving container image for a package",
        description="Write a deterministic build context (Dockerfile, wheels, the package, keys) "
        "and "
        "build it through the Docker Engine API ($DOCKER_HOST, Docker's or podman's socket). The "
        "image verifies the package while building and serves it with `mpkg serve` as a "
        "non-root user.",
    )
    p.add_argument("package", metavar="PKG", help="the .mpkg to serve (with --follow: the registry REF to follow)")
    p.add_argument("-t", "--tag", required=True, metavar="IMAGE[:TAG]", help="name of the image to build")
    p.add_argument(
        "--base",
        metavar="IMAGE",
        help=f"base image with Python 3.11 as python3 (default {DEFAULT_BASE}; "
        "with --modelcar one with sh, ln and sleep, default busybox:1.36)",
    )
    p.add_argument(
        "--modelcar",
        action="store_true",
        help="build the image that carries only the package under /models, for KServe's storageUri oci://",
    )
    p.add_argument(
        "--follow",
        action="store_true",
        help="build the image that runs `mpkg serve REF --follow`: it serves what the registry reference "
        "names and swaps in a promote or rollback; wheels come from what REF names now",
    )
    p.add_argument(
        "--interval",
        type=parse_interval,
        metavar="DURATION",
        help=f"how often the image's server asks the registry with --follow (default {DEFAULT_INTERVAL:g}s)",
    )
    p.add_argument("--insecure", action="store_true", help="with --follow: the registry talks plain HTTP")
    add_key_options(p)
    p.add_argument("--context-only", metavar="DIR", help="write the build context to DIR and do not build")
    p.add_argument("--wheelhouse", metavar="DIR", help="folder of wheels to take dependencies from first")
    p.add_argument("--offline", action="store_true", help="take wheels only from --wheelhouse (no index)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_containerize)


def cmd_containerize(args: argparse.Namespace) -> int:
    """Run `mpkg containerize`: the image, or with --context-only its build context."""
    if args.interval is not None and not args.follow:
        raise UsageError("sets how often --follow polls; add --follow", "--interval")
    if args.insecure and not args.follow:
        raise UsageError("applies to the registry a --follow image reads; add --follow", "--insecure")
    follow = Followed(args.package, args.interval or DEFAULT_INTERVAL, args.insecure) if args.follow else None
    result = containerize(
        args.package,
        args.tag,
        base=args.base,
        keys=trusted_keys(args),
        allow_unsigned=args.allow_unsigned,
        context_only=args.context_only,
        wheelhouse=args.wheelhouse,
        offline=args.offline,
        log=info,
        modelcar=args.modelcar,
        follow=follow,
    )
    if args.json:
        emit_json({**result.to_json(), "follow": follow.reference if follow else None})
    elif result.built and follow is not None:
        info(f"built {result.tag} ({result.image_id}) following {follow.reference} every {follow.interval_text}")
    elif result.built:
        info(
            f"built {result.tag} ({result.image_id}) {'carrying' if args.modelcar else 'serving'} "
            f"{result.package.name} {result.package.version} {result.package.digest}"
        )
    else:
        info(f"wrote the build context for {result.tag} to {result.context}")
    return 0


__all__ = ["cmd_containerize", "register"]
