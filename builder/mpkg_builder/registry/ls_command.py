"""`mpkg ls NAME [--where EXPR …] [--sort KEY] [--json]`: the thin handler over :mod:`.listing` and :mod:`.query`."""

from __future__ import annotations

import argparse
import re
from typing import Any

from mpkg._internal.registry.refs import parse_ref
from mpkg.cli import emit_json, info, trusted_keys

from .backend import Backend
from .cli import _policy, _registry_options, _run, _warn_unauthenticated, history_key_option
from .listing import VersionList, VersionRow, list_versions
from .query import parse_where, sort_rows

_DASH_KEY = re.compile(r"^-[A-Za-z_][A-Za-z0-9_./-]*\Z", re.ASCII)


def _dash_values(parser: argparse.ArgumentParser) -> None:
    """Let ``--sort -f1`` mean descending f1: argparse reads any ``-word`` as an option, so a
    ``-word`` that names no option of this command is taken as a value instead."""
    base = type(parser)

    class Parser(base):  # type: ignore[valid-type,misc]
        def _parse_optional(self, arg_string: str) -> Any:
            options = self._option_string_actions
            if _DASH_KEY.match(arg_string) and arg_string not in options and arg_string[:2] not in options:
                return None
            return super()._parse_optional(arg_string)

    parser.__class__ = Parser


def register(sub: Any) -> None:
    """Add `mpkg ls` to the command line."""
    p = sub.add_parser("ls", help="list every version with its metrics, params, datasets and aliases; pulls nothing")
    p.add_argument("name", metavar="NAME", help="[HOST[:PORT]/]REPO")
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="EXPR",
        help="keep versions matching all of these, e.g. 'accuracy>=0.9', 'data=sha256:…', 'stage=production', "
        "'param.lr<0.01'",
    )
    p.add_argument("--sort", metavar="KEY", help="a metric, param.NAME, version or pushed; -KEY descends (e.g. -f1)")
    p.add_argument("--html", metavar="OUT.html", help="also write the listed versions as a self-contained HTML page")
    history_key_option(p)
    _registry_options(p)
    _dash_values(p)
    p.set_defaults(handler=cmd_ls)


def _cell(row: VersionRow) -> list[str]:
    listing = row.listing
    metrics = " ".join(f"{k}={v:g}" for k, v in sorted(listing.metrics.items()))
    params = " ".join(f"{k}={v}" for k, v in sorted(listing.params.items()))
    return [
        row.version,
        (row.pushed or "-")[:19].replace("T", " "),
        ",".join(row.aliases) or "-",
        ",".join(s[:12] for s in listing.signers) or "-",
        row.package[:19],
        metrics or ("(no annotations)" if not listing.annotated else "-"),
        params or "-",
        ",".join(d[:19] for d in listing.data) or "-",
    ]


def _print_table(rows: list[VersionRow]) -> None:
    head = ["VERSION", "PUSHED", "ALIASES", "SIGNERS", "DIGEST", "METRICS", "PARAMS", "DATA"]
    cells = [head, *(_cell(r) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head) - 1)]
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=False)) + "  " + c[-1])


def cmd_ls(args: argparse.Namespace) -> int:
    """List, filter and sort a repository's versions from their annotations."""
    ref = parse_ref(args.name, allow_tag=False, allow_digest=False)
    wheres = [parse_where(text) for text in args.where]
    sort_rows([], args.sort)  # a bad key is a usage error before any request
    if args.html is not None:
        from mpkg.report import require

        require()
    policy = _policy(ref, trusted_keys(args))

    def listing(b: Backend) -> VersionList:
        found = list_versions(b, ref, policy=policy)
        kept = [r for r in found.rows if all(w.matches(r, found.rows) for w in wheres)]
        rows = sort_rows(kept, args.sort)
        if args.html is not None:
            from ..report.history import write_versions_report
            from .report import history

            report = history(b, ref, policy=policy)
            write_versions_report(args.html, b, ref.name, report, [r.manifest for r in rows])
            info(f"wrote {args.html}")
        return VersionList(found.repository, tuple(rows), found.warnings, found.authenticated)

    shown: VersionList = _run(args, ref, listing)
    rows = list(shown.rows)
    if args.json:
        emit_json(shown.to_json())
    else:
        _print_table(rows)
        for warning in shown.to_json()["warnings"]:
            info(f"mpkg: warning: {warning}")
    _warn_unauthenticated(ref, policy)
    return 0
