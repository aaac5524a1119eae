"""`mpkg push|pull|promote|rollback|history|gc|ls`: thin argparse handlers over :mod:`.lifecycle` (ls: .ls_command)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mpkg._internal.commandline import add_key_options, emit_json, info, trusted_keys
from mpkg._internal.io.progress import progress_bar
from mpkg._internal.registry.aliases import is_alias
from mpkg._internal.registry.auth import Credentials
from mpkg._internal.registry.local import LOCAL_ORIGIN, default_home
from mpkg._internal.registry.refs import Reference, is_digest, parse_ref
from mpkg._internal.registry.trust import UNAUTHENTICATED_WARNING, HistoryPolicy
from mpkg.errors import UsageError

from . import lifecycle
from .backend import Backend
from .report import HistoryReport

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> dt.timedelta:
    """``30d``, ``12h``, ...: the age gc keeps, as a timedelta."""
    m = _DURATION.match(text.strip())
    if not m:
        raise UsageError(f"{text!r} is not a duration; write N followed by s, m, h, d or w (e.g. 90d)", "--older-than")
    return dt.timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def _registry_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--insecure", action="store_true", help="talk plain HTTP to the registry (no TLS)")
    p.add_argument("--username", help="registry user (default: from ~/.docker/config.json)")
    p.add_argument("--password-stdin", action="store_true", help="read the registry password from stdin")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _trust_option(p: argparse.ArgumentParser) -> None:
    """Trusted keys for the history on commands whose --key is the signing key."""
    p.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="PUB",
        help="public key trusted to sign history events (repeatable; also $MPKG_KEYS)",
    )


def history_key_option(p: argparse.ArgumentParser) -> None:
    """Trusted keys for the history on read-only commands (history, ls), where --key is a public key."""
    p.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="PUB",
        help="trusted public key for entry signatures (repeatable; also $MPKG_KEYS)",
    )


def _env_keys() -> list[str]:
    return [p for p in os.environ.get("MPKG_KEYS", "").split(os.pathsep) if p]


def _policy(ref: Reference, keys: Sequence[str], since_head: str | None = None) -> HistoryPolicy:
    """Every registry command's view of the history: the trusted keys given (flags, then
    MPKG_KEYS), this client's high-water marks and event cache in MPKG_HOME."""
    return HistoryPolicy.for_client(keys, home=default_home(), since_head=since_head)


def _warn_unauthenticated(ref: Reference, policy: HistoryPolicy) -> None:
    """Said after every command whose outcome the history decided, when no keys checked it."""
    if not policy.authenticated:
        info("mpkg: " + UNAUTHENTICATED_WARNING.format(name=ref.name))


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


def _run(
    args: argparse.Namespace, ref: Reference, fn: Callable[[Backend], Any], warn: HistoryPolicy | None = None
) -> Any:
    """Run ``fn`` on the store ``ref`` names; ``warn``: the policy of a command that acted on the history."""
    backend = _backend(args, ref)
    try:
        result = fn(backend)
    finally:
        backend.close()
    if warn is not None:
        _warn_unauthenticated(ref, warn)
    return result


def register(sub: Any) -> None:
    """Add the registry commands to the command line."""
    p = sub.add_parser("push", help="store a package in a registry or the local store")
    p.add_argument("package", metavar="PKG")
    p.add_argument(
        "ref", metavar="REF", help="[HOST[:PORT]/]REPO[:TAG], REPO ending in the package name (default tag: version)"
    )
    p.add_argument("--key", metavar="NAME.key", help="sign the history entry with this key")
    _trust_option(p)
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
    p.add_argument(
        "--to", required=True, dest="stage", metavar="ALIAS", help="staging, production or any alias (champion, canary)"
    )
    p.add_argument(
        "--require",
        action="append",
        default=[],
        metavar="GATE",
        help="e.g. 'f1>=production+0.005', 'loss<=staging', 'f1>=champion', 'accuracy>=0.9'",
    )
    p.add_argument("--require-signature", metavar="PUB", help="the package must carry a valid signature by this key")
    p.add_argument(
        "--allow-major", action="store_true", help="promote even a MAJOR change from the stage's holder (recorded)"
    )
    p.add_argument(
        "--allow-downgrade", action="store_true", help="promote even a lower version than the holder's (recorded)"
    )
    p.add_argument("--key", metavar="NAME.key", help="sign the history entry with this key")
    _trust_option(p)
    _registry_options(p)
    p.set_defaults(handler=cmd_promote)

    p = sub.add_parser("rollback", help="move a stage back to its previous holder")
    p.add_argument("name", metavar="NAME", help="[HOST[:PORT]/]REPO")
    p.add_argument("--stage", required=True, metavar="ALIAS", help="the alias to move back (production, champion, ...)")
    p.add_argument("--key", metavar="NAME.key", help="sign the history entry with this key")
    _trust_option(p)
    _registry_options(p)
    p.set_defaults(handler=cmd_rollback)

    p = sub.add_parser("history", help="every push, stage move and delete, checked")
    p.add_argument("name", metavar="NAME", help="[HOST[:PORT]/]REPO")
    history_key_option(p)
    p.add_argument(
        "--require-signed", action="store_true", help="fail unless keys are given and every entry is signed by one"
    )
    p.add_argument(
        "--since-head",
        metavar="DIGEST",
        help="fail unless the history still holds this event (a head recorded earlier, e.g. in CI)",
    )
    p.add_argument(
        "--forget-seen",
        action="store_true",
        help="forget the history head this client remembers for NAME (after a deliberate reset), then read it",
    )
    p.add_argument("--html", metavar="OUT.html", help="also write the history as a self-contained HTML report")
    _registry_options(p)
    p.set_defaults(handler=cmd_history)

    p = sub.add_parser("gc", help="delete old versions that never reached a stage")
    p.add_argument("name", metavar="NAME", help="[HOST[:PORT]/]REPO")
    p.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 90d, 12h, 2w")
    p.add_argument("--yes", action="store_true", help="really delete (default: dry run)")
    p.add_argument("--key", metavar="NAME.key", help="sign the history entries with this key")
    _trust_option(p)
    _registry_options(p)
    p.set_defaults(handler=cmd_gc)

    from .ls_command import register as register_ls

    register_ls(sub)


def cmd_push(args: argparse.Namespace) -> int:
    """`mpkg push PKG REF`."""
    ref = parse_ref(args.ref, allow_digest=False)
    package = Path(args.package)
    if not package.is_file():
        raise UsageError("no such file", args.package)
    with contextlib.ExitStack() as bars:

        def bar(total: int) -> Any:
            return bars.enter_context(progress_bar("pushing", total, not args.json))

        policy = _policy(ref, [*args.trust, *_env_keys()])
        result = _run(args, ref, lambda b: lifecycle.push(b, ref, package, key=args.key, progress=bar, policy=policy))
    if args.json:
        emit_json(result.to_json())
    else:
        state = "uploaded" if result.uploaded else "already present, nothing uploaded"
        info(f"pushed {result.name} {result.version} to {result.ref} ({state})")
        info(f"  package {result.package_digest}  manifest {result.manifest_digest}")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    """`mpkg pull REF -o OUT`: checked against the reference and the history, then verified."""
    ref = parse_ref(args.ref)
    keys = trusted_keys(args)
    policy = _policy(ref, keys)
    stage = ref.digest is None and is_alias(ref.tag)
    with contextlib.ExitStack() as bars:

        def bar(total: int) -> Any:
            return bars.enter_context(progress_bar("pulling", total, not args.json))

        result = _run(
            args,
            ref,
            lambda b: lifecycle.pull(
                b, ref, Path(args.output), keys=keys, allow_unsigned=args.allow_unsigned, progress=bar, policy=policy
            ),
            warn=policy if stage else None,
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
    if result.compat:
        info(f"  {result.compat.note}")
    for note in result.notes:
        info(f"  {note}")
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
    """`mpkg promote REF --to ALIAS`, with gates and the compatibility check."""
    ref = parse_ref(args.ref)
    policy = _policy(ref, [*args.trust, *_env_keys()])
    result = _run(
        args,
        ref,
        lambda b: lifecycle.promote(
            b,
            ref,
            args.stage,
            requires=args.require,
            require_signature=args.require_signature,
            allow_major=args.allow_major,
            allow_downgrade=args.allow_downgrade,
            key=args.key,
            policy=policy,
        ),
        warn=policy,
    )
    return _report_move(args, result)


def cmd_rollback(args: argparse.Namespace) -> int:
    """`mpkg rollback REPO --stage ALIAS`."""
    ref = parse_ref(args.name, allow_tag=False, allow_digest=False)
    policy = _policy(ref, [*args.trust, *_env_keys()])
    result = _run(args, ref, lambda b: lifecycle.rollback(b, ref, args.stage, key=args.key, policy=policy), policy)
    return _report_move(args, result)


def cmd_history(args: argparse.Namespace) -> int:
    """`mpkg history REPO`: the trusted history, as text, JSON or HTML."""
    ref = parse_ref(args.name, allow_tag=False, allow_digest=False)
    if args.since_head is not None and not is_digest(args.since_head):
        raise UsageError(f"{args.since_head!r} is not an event digest (sha256:<64 hex>)", "--since-head")
    if args.html is not None:
        from mpkg.report import require

        require()
    policy = _policy(ref, trusted_keys(args), since_head=args.since_head)
    if args.forget_seen and policy.seen is not None:
        origin = ref.host or LOCAL_ORIGIN
        if policy.seen.forget(origin, ref.repository):
            info(f"mpkg: forgot the history head remembered for {ref.name}; accepting what the registry shows now")

    def history(b: Backend) -> HistoryReport:
        report = lifecycle.history(b, ref, policy=policy, require_signed=args.require_signed)
        if args.html is not None:
            from ..report.history import write_history_report

            write_history_report(args.html, b, ref.name, report)
            info(f"wrote {args.html}")
        return report

    report = _run(args, ref, history, policy)
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
            status = "signed, not checked" if r.signature == "untrusted" and not report.authenticated else r.signature
            print(f"{e.sequence:>4} {e.time} {what:<18} {arrow}  by {who} [{status}]{flag}")
        for stage, holder in report.holders.items():
            print(f"{stage}: {f'{holder.version} {holder.package}' if holder else '-'}")
        print(f"head: {' '.join(report.head) or '-'}")
        for problem in report.problems:
            info(f"mpkg: {problem}")
    return 0 if report.ok else 1


def cmd_gc(args: argparse.Namespace) -> int:
    """`mpkg gc REPO`: delete what no kept version or history uses."""
    ref = parse_ref(args.name, allow_tag=False, allow_digest=False)
    age = parse_duration(args.older_than)
    policy = _policy(ref, [*args.trust, *_env_keys()])
    result = _run(
        args, ref, lambda b: lifecycle.gc(b, ref, older_than=age, yes=args.yes, key=args.key, policy=policy), policy
    )
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
