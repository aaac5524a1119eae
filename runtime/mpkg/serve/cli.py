"""``mpkg serve``: argument parsing only; the work is in :mod:`mpkg.serve.server`.

Importing this module stays cheap (no uvicorn, numpy or onnxruntime) because the
top-level CLI imports every command's ``register`` on each invocation.
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Any

from mpkg._internal.commandline import add_key_options, emit_json, trusted_keys
from mpkg.errors import EXIT_OK, UsageError

if TYPE_CHECKING:
    from .server import ServeOptions

_SIZE = re.compile(r"^\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
}


def parse_size(text: str) -> int:
    """'64MiB', '512k', '1000000' -> bytes (argparse type)."""
    m = _SIZE.match(text)
    if not m or int(m.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive size such as 64MiB, 512KiB or 1048576")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|)\s*$")


def parse_duration(text: str) -> float:
    """'5s', '500ms', '1m', '2.5' (seconds) -> seconds (argparse type)."""
    m = _DURATION.match(text)
    seconds = float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, "": 1.0}[m.group(2)] if m else 0.0
    if not 0.05 <= seconds <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration from 50ms to 24h, such as 5s, 500ms or 1m")
    return seconds


def _split(text: str) -> Any:
    from .splits import parse_split

    try:
        return parse_split(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(exc.problems[0].reason) from None


def _split_key(text: str) -> Any:
    from .splits import parse_split_key

    try:
        return parse_split_key(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(exc.problems[0].reason) from None


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 0")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e6:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0-65535; 0 picks a free one)")
    return int(text)


def register(subparsers: Any) -> None:
    """Add ``serve`` to the top-level ``mpkg`` parser (CLI convention)."""
    p = subparsers.add_parser(
        "serve",
        help="serve packages over the Open Inference Protocol (KServe V2)",
        description="Verify, load and smoke-test packages, then serve them over HTTP "
        "(Open Inference Protocol / KServe V2, binary tensors, Arrow IPC for tabular "
        "packages, Prometheus /metrics). SIGTERM drains in-flight requests and exits 0.",
    )
    p.add_argument(
        "packages",
        nargs="+",
        metavar="PKG",
        help=".mpkg files, or references pulled once into MPKG_HOME's cache "
        "(HOST[:PORT]/REPO:TAG, REPO:TAG in the local store, ...@sha256:...)",
    )
    p.add_argument("--insecure", action="store_true", help="talk plain HTTP to the registry a PKG reference names")
    p.add_argument(
        "--follow",
        action="store_true",
        help="watch each PKG reference's tag and swap in what it names after a promote or rollback: "
        "verified and smoke-tested first, no request failing (spec/runtime.md §9)",
    )
    p.add_argument(
        "--interval",
        type=parse_duration,
        default=None,
        metavar="DURATION",
        help="how often --follow asks the registry, e.g. 5s, 500ms, 1m (default 5s)",
    )
    add_key_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=8080, help="TCP port (default 8080; 0 picks a free one)")
    p.add_argument(
        "--workers", type=_positive, default=1, help="processes sharing the socket; each loads the packages (default 1)"
    )
    p.add_argument(
        "--split",
        type=_split,
        action="append",
        default=[],
        metavar="NAME=V:W,V:W",
        help="weighted split of unversioned requests, e.g. fraud=1.0.0:90,1.1.0:10",
    )
    p.add_argument(
        "--split-key",
        type=_split_key,
        default=None,
        metavar="header:NAME",
        help="make splits sticky: each value of this request header (a user id) always gets the same "
        "version; requests without it are drawn at random (spec/runtime.md §5)",
    )
    p.add_argument(
        "--split-seed", type=int, default=None, metavar="N", help="seed the split's random choice (reproducible tests)"
    )
    p.add_argument(
        "--max-body-bytes",
        type=parse_size,
        default="64MiB",
        metavar="SIZE",
        help="largest request body, also after decompression (default 64MiB)",
    )
    p.add_argument(
        "--isolate",
        action="store_true",
        help="run each package in its own process behind the one port, so one package's code "
        "cannot reach another's objects (spec/runtime.md §8)",
    )
    limits = p.add_argument_group("limits (spec/runtime.md §6: what each refusal answers)")
    limits.add_argument(
        "--max-inflight",
        type=_positive,
        default=2,
        metavar="N",
        help="calls of one model running at once, on its own threads (default 2)",
    )
    limits.add_argument(
        "--max-queue",
        type=_count,
        default=16,
        metavar="N",
        help="calls of one model waiting for a thread; beyond, 503 with Retry-After (default 16)",
    )
    limits.add_argument(
        "--max-connections",
        type=_positive,
        default=4096,
        metavar="N",
        help="open connections; at the cap idle ones are closed, else 503 (default 4096)",
    )
    limits.add_argument(
        "--max-header-bytes",
        type=parse_size,
        default="32KiB",
        metavar="SIZE",
        help="request line plus headers; beyond, 431 (default 32KiB)",
    )
    limits.add_argument(
        "--max-headers", type=_positive, default=100, metavar="N", help="header fields; beyond, 431 (default 100)"
    )
    limits.add_argument(
        "--max-request-line",
        type=parse_size,
        default="8KiB",
        metavar="SIZE",
        help="request target (URL); beyond, 414 (default 8KiB)",
    )
    limits.add_argument(
        "--header-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="time to send a request's head; then 408 and close (default 10)",
    )
    limits.add_argument(
        "--body-timeout",
        type=_seconds,
        default=60.0,
        metavar="SECONDS",
        help="time to send a request's body once started; then 408 and close (default 60)",
    )
    limits.add_argument(
        "--keepalive-timeout",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="idle keep-alive connections are closed after this (default 5)",
    )
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="request log on stderr: text or one JSON object per line",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="longest wait for in-flight requests after SIGTERM (default 30)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="the outcome as one JSON object on stdout (a refusal, or what was served at exit); "
        "the request log stays on stderr (see --log-format)",
    )
    p.set_defaults(handler=handle)


def local_packages(args: argparse.Namespace) -> tuple[list[str], list[str | None]]:
    """The PKG arguments as files: references are pulled (``mpkg pull``'s checks) into the cache;
    with each, the reference it came from (None for a file)."""
    if all(p.endswith(".mpkg") for p in args.packages):
        return list(args.packages), [None] * len(args.packages)
    from mpkg._internal.registry.fetch import FetchPolicy, is_reference, locate

    policy = FetchPolicy.from_paths(trusted_keys(args), args.allow_unsigned, insecure=args.insecure)
    return [locate(p, policy)[0] for p in args.packages], [p if is_reference(p) else None for p in args.packages]


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    """The parsed command line as ServeOptions."""
    from .limits import Limits
    from .server import ServeOptions

    if args.interval is not None and not args.follow:
        raise UsageError("sets how often --follow polls; add --follow", "--interval")
    packages, references = local_packages(args)
    return ServeOptions(
        packages=tuple(packages),
        references=tuple(references),
        follow_interval=(args.interval or 5.0) if args.follow else None,
        insecure=args.insecure,
        keys=tuple(trusted_keys(args)),
        allow_unsigned=args.allow_unsigned,
        host=args.host,
        port=args.port,
        workers=args.workers,
        splits=tuple(args.split),
        split_seed=args.split_seed,
        split_key=args.split_key,
        limits=Limits(
            max_body_bytes=args.max_body_bytes,
            max_inflight=args.max_inflight,
            max_queue=args.max_queue,
            max_connections=args.max_connections,
            max_header_bytes=args.max_header_bytes,
            max_headers=args.max_headers,
            max_request_line=args.max_request_line,
            header_timeout=args.header_timeout,
            body_timeout=args.body_timeout,
            keepalive_timeout=args.keepalive_timeout,
        ),
        isolate=args.isolate,
        log_format=args.log_format,
        drain_timeout=args.drain_timeout,
    )


def handle(args: argparse.Namespace) -> int:
    """`mpkg serve`: run until SIGTERM has drained the requests in flight."""
    import gc

    # Startup only allocates what lives as long as the server (modules, the model), so
    # collecting during it is wasted time (~30 ms of launch); the server turns the
    # collector back on, with those objects frozen, once the packages are loaded.
    gc.disable()
    from .server import run

    run(options_from_args(args))
    if args.json:
        emit_json({"ok": True, "served": list(args.packages)})
    return EXIT_OK
