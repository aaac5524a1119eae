"""What every `mpkg` command shares, so that an option or an output convention is written once.

Runtime commands (`mpkg.commands`, `mpkg.serve.cli`) and builder commands (found through the
``mpkg.commands`` entry-point group) both import this module, never `mpkg.cli`: the top-level
CLI imports the commands, so a command importing it back would be a cycle.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from mpkg.errors import EXIT_FAILED, EXIT_OK


def emit_json(obj: Any) -> None:
    """The one JSON object a --json command prints on stdout."""
    sys.stdout.write(json.dumps(obj, sort_keys=True, ensure_ascii=False) + "\n")


def info(message: str) -> None:
    """A message for the person at the terminal: stderr, so stdout stays the command's output."""
    print(message, file=sys.stderr)


def exit_code(ok: bool) -> int:
    """0 when every check passed, else 1 (spec/README.md: exit codes)."""
    return EXIT_OK if ok else EXIT_FAILED


def add_key_options(
    parser: argparse.ArgumentParser | Any,
    *,
    help: str = "trusted public key (repeatable; also $MPKG_KEYS, colon-separated)",
    allow_unsigned: bool = True,
) -> None:
    """--key PUB (and --allow-unsigned), declared once for every command that checks signatures.

    Read them back with :func:`trusted_keys`, which adds ``$MPKG_KEYS``: a command that declared
    ``--key`` by hand would silently ignore the keys a cluster passes through the environment.
    """
    parser.add_argument("--key", action="append", default=[], metavar="PUB", help=help)
    if allow_unsigned:
        parser.add_argument("--allow-unsigned", action="store_true", help="accept packages with no trusted signature")


def trusted_keys(args: argparse.Namespace) -> list[str]:
    """The public keys a command trusts: its --key flags, then ``$MPKG_KEYS`` (os.pathsep-separated)."""
    env = [p for p in os.environ.get("MPKG_KEYS", "").split(os.pathsep) if p]
    return [*args.key, *env]


__all__ = ["add_key_options", "emit_json", "exit_code", "info", "trusted_keys"]
