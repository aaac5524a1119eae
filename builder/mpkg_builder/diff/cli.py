"""`mpkg diff OLD.mpkg NEW.mpkg`: the SemVer verdict between two packages."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mpkg.errors import EXIT_FAILED, EXIT_OK

from .engine import diff_packages
from .overrides import load_rules
from .render import render_markdown, render_text
from .rules import DEFAULT_RULES, Bump

_LEVELS = ("major", "minor", "patch")


def register(subparsers: Any) -> None:
    """Add `mpkg diff` to the command line (found through the `mpkg.commands` entry points)."""
    p = subparsers.add_parser(
        "diff",
        help="classify the change between two packages as major, minor, patch or none",
        description=(
            "Compare two packages by their manifests (never their tensors) and say which "
            "SemVer bump the change requires, finding by finding (rules: spec/semver.md)."
        ),
    )
    p.add_argument("old", metavar="OLD.mpkg", help="the previous package")
    p.add_argument("new", metavar="NEW.mpkg", help="the new package")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON object")
    fmt.add_argument("--markdown", action="store_true", help="print Markdown for a pull request")
    p.add_argument(
        "--fail-on",
        choices=_LEVELS,
        metavar="LEVEL",
        help="exit 1 when the bump is LEVEL or higher (major, minor or patch)",
    )
    p.add_argument(
        "--rules",
        metavar="FILE",
        help='TOML file whose [diff.rules] table re-levels rules (input-dim-renamed = "minor")',
    )
    p.add_argument("--html", metavar="OUT.html", help="also write the diff as a self-contained HTML report")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Diff, print in the chosen form, and exit 1 when --fail-on is reached."""
    if args.html is not None:
        from mpkg.report import require

        require()
    rules = load_rules(args.rules) if args.rules else DEFAULT_RULES
    report = diff_packages(args.old, args.new, rules)
    if args.html is not None:
        from ..report.diff import write_diff_report

        write_diff_report(args.html, report, args.old, args.new)
        print(f"wrote {args.html}", file=sys.stderr)
    failed = args.fail_on is not None and report.bump >= Bump.parse(args.fail_on)
    if args.json:
        from mpkg._internal.commandline import emit_json

        emit_json({"ok": not failed, **report.to_json()})
    elif args.markdown:
        sys.stdout.write(render_markdown(report))
    else:
        sys.stdout.write(render_text(report))
    if failed:
        print(
            f"mpkg: the change is {report.bump.label}, at or above --fail-on {args.fail_on}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK


__all__ = ["register", "run"]
