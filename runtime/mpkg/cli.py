"""The `mpkg` command: a thin layer over the library.

It parses, dispatches and catches every MpkgError once. Runtime commands come from
`mpkg.commands` and `mpkg.serve.cli`; every other command is found through the ``mpkg.commands``
entry-point group (the builder registers its own there), so this module names none of them and
never imports the builder. What commands share (options, output) is in `mpkg._internal.commandline`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from mpkg import __version__
from mpkg._internal.commandline import add_key_options, emit_json, exit_code, info, trusted_keys
from mpkg._internal.io.atomic import Terminated

from .errors import EXIT_FAILED, EXIT_USAGE, MpkgError, UsageError

ENTRY_POINT_GROUP = "mpkg.commands"

# The commands the runtime defines itself, and the module that registers each: running one
# never reads entry points nor loads the builder (start-up counts at every deploy).
_RUNTIME_COMMANDS = {
    "verify": "mpkg.commands",
    "inspect": "mpkg.commands",
    "unpack": "mpkg.commands",
    "serve": "mpkg.serve.cli",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        """A usage error: one line and exit 2 (argparse would print the whole usage first)."""
        self.exit(EXIT_USAGE, f"mpkg: {message} (see `{self.prog} --help`)\n")


class CommandUnavailable(UsageError):
    """A command is installed but cannot load (its extra is missing): say which extra, exit 2."""


def _entry_points(command: str | None) -> list[Any]:
    """The ``mpkg.commands`` entry points for `command` (all of them when None).

    mpkg's own distribution is read first: one metadata file instead of every installed
    distribution's (~20 ms), which is most of a builder command's start-up.
    """
    from importlib import metadata

    try:
        own = metadata.distribution("mpkg").entry_points.select(group=ENTRY_POINT_GROUP)
    except metadata.PackageNotFoundError:  # run from a source tree without being installed
        own = metadata.EntryPoints(())
    if command is not None and command in own.names:
        return list(own.select(name=command))
    found = metadata.entry_points(group=ENTRY_POINT_GROUP)  # plugins from other distributions
    return list(found) if command is None else list(found.select(name=command))


def _why_unavailable(command: str, ep: Any, exc: ImportError) -> str:
    """The one line a command that cannot import prints: which extra (or distribution) it needs."""
    dist = ep.dist.name if getattr(ep, "dist", None) is not None else "mpkg"
    need = "the builder: pip install 'mpkg[builder]'" if dist == "mpkg" else f"{dist}, which failed to import"
    return f"mpkg {command}: needs {need} ({exc})"


def build_parser(command: str | None = None, *, with_builder: bool = True) -> argparse.ArgumentParser:
    """The `mpkg` parser, holding the runtime's commands and those the entry points add.

    With `command` given, only the entry point of that name is loaded (one module instead of
    every builder command's); a command whose module fails to import raises CommandUnavailable.
    Without it, every command is loaded and those that fail are listed under `mpkg --help`.
    """
    import importlib

    parser = _Parser(prog="mpkg", description="Immutable, signed model packages.")
    parser.add_argument("--version", action="version", version=f"mpkg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    if command in _RUNTIME_COMMANDS:  # only its own module: `mpkg verify` never imports the server's CLI
        importlib.import_module(_RUNTIME_COMMANDS[command]).register(sub)
        return parser
    found = _entry_points(command) if with_builder else []
    wanted = command if found else None
    if command is not None and not found:  # not a command: load all, so the usage error lists them
        found = _entry_points(None) if with_builder else []
    if wanted is None:
        for module in dict.fromkeys(_RUNTIME_COMMANDS.values()):
            importlib.import_module(module).register(sub)
    loaded: set[str] = set()
    unavailable: dict[str, str] = {}
    for ep in found:
        if ep.value in loaded:  # one module registers several commands under several names
            continue
        try:
            register = ep.load()
        except ImportError as exc:
            if wanted is not None:
                raise CommandUnavailable(_why_unavailable(wanted, ep, exc)) from None
            unavailable[ep.name] = _why_unavailable(ep.name, ep, exc).split(": ", 1)[1]
            continue
        loaded.add(ep.value)
        register(sub)
    if unavailable:
        needs = sorted(set(unavailable.values()))
        parser.epilog = f"not available here: {', '.join(sorted(unavailable))}; {'; '.join(needs)}"
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; every refusal is one line (or one JSON object) and a documented exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and not argv[0].startswith("-") else None
    try:
        parser = build_parser(command)
    except CommandUnavailable as exc:
        info(exc.problems[0].reason)
        return exc.exit_code
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


# What commands share lives in mpkg._internal.commandline; these names stay importable from here
# for code written against earlier versions of this module.
__all__ = [
    "CommandUnavailable",
    "UsageError",
    "add_key_options",
    "build_parser",
    "emit_json",
    "exit_code",
    "info",
    "main",
    "trusted_keys",
]
