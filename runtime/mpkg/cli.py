"""The `mpkg` command: a thin layer over the library.

Runtime commands (verify, inspect, unpack, serve) are defined here; builder
commands arrive through the ``mpkg.commands`` entry point group, so this module
never imports the builder. Every MpkgError is caught once, here.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from mpkg import __version__
from mpkg._internal.io.atomic import Terminated

from .errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, MpkgError, UsageError


def emit_json(obj: Any) -> None:
    """The one JSON object a --json command prints on stdout."""
    sys.stdout.write(json.dumps(obj, sort_keys=True, ensure_ascii=False) + "\n")


def info(message: str) -> None:
    print(message, file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse prints usage; keep it one line + exit 2
        self.exit(EXIT_USAGE, f"mpkg: {message} (see `{self.prog} --help`)\n")


def add_key_options(parser: argparse.ArgumentParser) -> None:
    """--key/--allow-unsigned, shared by every command that verifies a package."""
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="PUB",
        help="trusted public key (repeatable; also $MPKG_KEYS, colon-separated)",
    )
    parser.add_argument("--allow-unsigned", action="store_true", help="accept packages with no trusted signature")


def trusted_keys(args: argparse.Namespace) -> list[str]:
    env = [p for p in os.environ.get("MPKG_KEYS", "").split(os.pathsep) if p]
    return [*args.key, *env]


# Commands the runtime defines itself: running one never loads the builder (start-up cost
# counts at every deploy and container start).
_RUNTIME_COMMANDS = {"verify", "inspect", "unpack", "serve"}


def build_parser(with_builder: bool = True) -> argparse.ArgumentParser:
    parser = _Parser(prog="mpkg", description="Immutable, signed model packages.")
    parser.add_argument("--version", action="version", version=f"mpkg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    from .commands import register as register_runtime

    register_runtime(sub)
    from .serve.cli import register as register_serve

    register_serve(sub)
    if not with_builder:
        return parser
    from importlib.metadata import entry_points  # 20 ms: only when builder commands may run

    for ep in entry_points(group="mpkg.commands"):
        try:
            register = ep.load()
        except ImportError as exc:  # the builder's extra dependencies are not installed
            _missing_builder.append(str(exc))
            continue
        register(sub)
    return parser


_missing_builder: list[str] = []
_BUILDER_COMMANDS = {
    "build",
    "init",
    "lock",
    "sign",
    "keygen",
    "diff",
    "containerize",
    "deploy",
    "push",
    "pull",
    "promote",
    "rollback",
    "history",
    "gc",
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(with_builder=not argv or argv[0] not in _RUNTIME_COMMANDS)
    if argv and argv[0] in _BUILDER_COMMANDS and _missing_builder:
        info(f"mpkg: `{argv[0]}` needs the builder: pip install 'mpkg[builder]' ({_missing_builder[0]})")
        return EXIT_USAGE
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    as_json = bool(getattr(args, "json", False))
    try:
        code: int = args.handler(args)
        return code
    except MpkgError as exc:
        if as_json:
            emit_json({"ok": False, "errors": exc.reasons()})
        else:
            for line in exc.reasons():
                info(f"mpkg: {line}")
        return exc.exit_code
    except OSError as exc:  # the file system refused (disk full, permissions): one line, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        info(f"mpkg: {where}{exc.strerror or exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        info("mpkg: interrupted; nothing was written")
        return EXIT_FAILED
    except Terminated as exc:  # SIGTERM/SIGHUP while writing: temporaries were removed
        info(f"mpkg: {exc}; nothing was written")
        return 128 + exc.signum


def exit_code(ok: bool) -> int:
    return EXIT_OK if ok else EXIT_FAILED


__all__ = ["UsageError", "add_key_options", "emit_json", "exit_code", "info", "main", "trusted_keys"]
