"""`mpkg push|pull|promote|rollback|history|gc`: thin argparse handlers over :mod:`.lifecycle`."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mpkg.cli import add_key_options, emit_json, info, trusted_keys
from mpkg.errors import UsageError
from mpkg.progress import progress_bar

from . import lifecycle
from .auth import Credentials
from .backend import Backend
from .history import HistoryReport
from .refs import STAGES, Reference, parse_ref

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> dt.timedelta:
    m = _DURATION.match(text.strip())
    if not m:
        raise UsageError(f"{text!r} is not a duration; write N followed by s, m, h, d or w (e.g. 90d)", "--older-than")
    return dt.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def _registry_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--insecure", action="store_true", help="talk plain HTTP to the registry (no TLS)")
    p.add_argument("--username", help="registry user (default: from ~/.docker/config.json)")
    p.add_argument("--password-stdin", action="store_true", help="read the registry password from stdin")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _backend(args: argparse.Namespace, ref: Reference) -> Backend:
    creds = None
    if args.password_stdin and not args.username:
        raise UsageError("--password-stdin needs --username", "--password-stdin")
    if args.username:
        if not args.password_stdin:
            raise UsageError("--username needs --password-stdin (passwords never go on the command line)", "--username")
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("no password on stdin", "--password-stdin")
        creds = Credentials(args.username, password)
    if ref.host is None and (args.insecure or creds):
        raise UsageError(
            f"{ref} names the local store (no host); --insecure and credentials only apply to a registry", "REF"
        )
    return lifecycle.open_backend(ref, insecure=args.insecure, credentials=creds)


def _run(args: argparse.Namespace, ref: Reference, fn: Callable[[Backend], Any]) -> Any:
    backend = _backend(args, ref)
    try:
        return fn(backend)
    finally:
        backend.close()


def register(sub: Any) -> None:
    p = sub.add_parser("push", help="store a package in a registry or the local store")
    p.add_argument("package", metavar="PKG")
    p.add_argument("ref", metavar="REF", help="[HOST[:PORT]/]REPO[:TAG] (default tag: version)")
    p.add_argument("--key", metavar="NAME.key", help="sign the history entry with this key")
    _registry_options(p)
    p.set_defaults(handler=cmd_push)

    p = sub.add_parser("pull", help="fetch and verify a package; nothing is written unless valid")
    p.add_argument("ref", metavar="REF")
    p.add_argument("-o", "--output", required=True, metavar="OUT.mpkg")
    add_key_options(p)
    _registry_options(p)
    p.set_defaults(handler=cmd_pull)

    p = sub.add_parser("promote", help="move a stage tag to a package, if its gates pass")
    p.add_argument("ref", metavar="REF")
    p.add_argument("--to", required=True, choices=STAGES, dest="stage")
    p.add_argument(
        "--require",
        action="append",
        default=[],
        metavar="GATE",
        help="e.g. 'f1>=production+0.005', 'loss<=staging', 'accuracy>=0.9'",
    )
    p.add_argument("--require-signature", metavar="PUB", help="the package must carry a valid signature by this key")
    p.add_argument("--key", metavar="NAME.key", help="sign the history entry with this key")
    _registry_options(p)
    p.set_defaults(handler=cmd_promote)

    p = sub.add_parser("rollback", help="move a stage back to its previous holder")
    p.add_argument("name", metavar="NAME", help="[HOST[:PORT]/]REPO")
    p.add_argument("--stage", required=True, choices=STAGES)
    p.add_argument("--key", metavar="NAME.key", help="sign the history entry with this key")
    _registry_options(p)
    p.set_defaults(handler=cmd_rollback)

    p = sub.add_parser("history", help="every push, stage move and delete, checked")
    p.add_argument("name", metavar="NAME", help="[HOST[:PORT]/]REPO")
    p.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="PUB",
        help="trusted public key for entry signatures (repeatable; also $MPKG_KEYS)",
    )
    p.add_argument("--require-signed", action="store_true", help="fail unless every entry is signed by a trusted key")
    p.add_argument("--html", metavar="OUT.html", help="also write the history as a self-contained HTML report")
    _registry_options(p)
    p.set_defaults(handler=cmd_history)

    p = sub.add_parser("gc", help="delete old versions that never reached a stage")
    p.add_argument("name", metavar="NAME", help="[HOST[:PORT]/]REPO")
    p.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 90d, 12h, 2w")
    p.add_argument("--yes", action="store_true", help="really delete (default: dry run)")
    p.add_argument("--key", metavar="NAME.key", help="sign the history entries with this key")
    _registry_options(p)
    p.set_defaults(handler=cmd_gc)


def cmd_push(args: argparse.Namespace) -> int:
    ref = parse_ref(args.ref, allow_digest=False)
    package = Path(args.package)
    if not package.is_file():
        raise UsageError("no such file", args.package)
    with contextlib.ExitStack() as bars:

        def bar(total: int) -> Any:
            return bars.enter_context(progress_bar("pushing", total, not args.json))

        result = _run(args, ref, lambda b: lifecycle.push(b, ref, package, key=args.key, progress=bar))
    if args.json:
        emit_json(result.to_json())
    else:
        state = "uploaded" if result.uploaded else "already present, nothing uploaded"
        info(f"pushed {result.name} {result.version} to {result.ref} ({state})")
        info(f"  package {result.package_digest}  manifest {result.manifest_digest}")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    ref = parse_ref(args.ref)
    keys = trusted_keys(args)
    with contextlib.ExitStack() as bars:

        def bar(total: int) -> Any:
            return bars.enter_context(progress_bar("pulling", total, not args.json))

        result = _run(
            args,
            ref,
            lambda b: lifecycle.pull(
                b, ref, Path(args.output), keys=keys, allow_unsigned=args.allow_unsigned, progress=bar
            ),
        )
    if args.json:
        emit_json(result.to_json())
    else:
        info(f"pulled {result.name} {result.version} {result.package_digest} -> {result.path}")
    return 0


def _report_move(args: argparse.Namespace, result: lifecycle.MoveResult) -> int:
    if args.json:
        emit_json(result.to_json())
        return 0
    for g in result.gates:
        info(f"  gate {g.gate}: {g.detail}")
    name = f"{result.repository}:{result.stage}"
    if not result.changed:
        info(f"{name} already holds {result.target.version} ({result.target.package}); unchanged")
        return 0
    before = f"{result.source.version} ({result.source.package})" if result.source else "nothing"
    info(f"{name}: {before} -> {result.target.version} ({result.target.package})")
    if result.archived_as:
        info(f"  previous holder kept as {result.repository}:{result.archived_as}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    ref = parse_ref(args.ref)
    result = _run(
        args,
        ref,
        lambda b: lifecycle.promote(
            b, ref, args.stage, requires=args.require, require_signature=args.require_signature, key=args.key
        ),
    )
    return _report_move(args, result)


def cmd_rollback(args: argparse.Namespace) -> int:
    ref = parse_ref(args.name, allow_tag=False, allow_digest=False)
    result = _run(args, ref, lambda b: lifecycle.rollback(b, ref, args.stage, key=args.key))
    return _report_move(args, result)


def cmd_history(args: argparse.Namespace) -> int:
    ref = parse_ref(args.name, allow_tag=False, allow_digest=False)
    if args.html is not None:
        from mpkg.report import require

        require()

    def history(b: Backend) -> HistoryReport:
        report = lifecycle.history(b, ref, keys=trusted_keys(args), require_signed=args.require_signed)
        if args.html is not None:
            from ..report.history import write_history_report

            write_history_report(args.html, b, ref.name, report)
            info(f"wrote {args.html}")
        return report

    report = _run(args, ref, history)
    if args.json:
        emit_json(report.to_json())
    else:
        for r in report.events:
            e = r.event
            what = e.action + (f" {e.stage}" if e.stage else "")
            src = f"{e.source.version} " if e.source else ""
            dst = f"{e.target.version} {e.target.package}" if e.target else (e.voids or "")
            arrow = f"{src}-> {dst}" if e.action in ("promote", "rollback") else dst
            who = e.user + (f" key:{e.key[:16]}" if e.key else "")
            flag = " CONCURRENT" if r.digest in report.concurrent else ""
            print(f"{e.sequence:>4} {e.time} {what:<18} {arrow}  by {who} [{r.signature}]{flag}")
        for stage, holder in report.holders.items():
            print(f"{stage}: {f'{holder.version} {holder.package}' if holder else '-'}")
        for problem in report.problems:
            info(f"mpkg: {problem}")
    return 0 if report.ok else 1


def cmd_gc(args: argparse.Namespace) -> int:
    ref = parse_ref(args.name, allow_tag=False, allow_digest=False)
    age = parse_duration(args.older_than)
    result = _run(args, ref, lambda b: lifecycle.gc(b, ref, older_than=age, yes=args.yes, key=args.key))
    if args.json:
        emit_json(result.to_json())
    else:
        verb = "deleted" if result.deleted else "would delete"
        for c in result.candidates:
            info(f"{verb} {c.version} ({c.package})")
        if not result.candidates:
            info("nothing to delete")
        elif not result.deleted:
            info("dry run: pass --yes to delete")
    return 0
