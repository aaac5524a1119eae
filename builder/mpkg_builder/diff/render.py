"""Rendering a DiffReport: a terminal report, Markdown for pull requests, JSON.

Both text forms put the verdict first, then the findings grouped by the bump they
require (largest first), then metrics present in both packages.
"""

from __future__ import annotations

import html
import re
from typing import Any

from .report import Change, DiffReport, MetricDelta
from .rules import Bump
from .textdiff import escape_text

_ORDER = (Bump.MAJOR, Bump.MINOR, Bump.PATCH)


def _count(n: int) -> str:
    return f"{n} finding" + ("" if n == 1 else "s")


def _num(x: float) -> str:
    return f"{x:.6g}"


def _delta(m: MetricDelta) -> str:
    return f"{m.delta:+.6g}"


def verdict(report: DiffReport) -> str:
    """The one-line verdict: ``MINOR: iris-mlp 1.0.0 -> 1.1.0, suggested 1.1.0 (2 findings)``."""
    to = report.to_version if report.to_version is not None else "(new)"
    if report.bump is Bump.NONE:
        return f"NONE: {report.name} {report.from_version} and {to} are the same package"
    line = (
        f"{report.bump.label.upper()}: {report.name} {report.from_version} -> {to}, "
        f"suggested {report.suggested_version} ({_count(len(report.changes))})"
    )
    if not report.version_ok:
        line += f"; {report.to_version} is too low"
    return line


def _groups(report: DiffReport) -> list[tuple[Bump, list[Change]]]:
    groups = [(b, [c for c in report.changes if c.bump is b]) for b in _ORDER]
    return [(b, cs) for b, cs in groups if cs]


def render_text(report: DiffReport) -> str:
    """For a terminal: every line escaped (manifests and diffs are untrusted text)."""
    lines = [verdict(report)]
    for bump, changes in _groups(report):
        lines += ["", f"{bump.label} ({len(changes)}):"]
        for c in changes:
            lines.append(f"  {c.subject}: {c.message} [{c.rule}]")
            lines += [f"    {line}" for line in (c.diff or "").splitlines()]
    if report.metrics:
        lines += ["", "metrics (old -> new, delta):"]
        width = max(len(m.name) for m in report.metrics)
        lines += [f"  {m.name:<{width}}  {_num(m.old)} -> {_num(m.new)} ({_delta(m)})" for m in report.metrics]
    return escape_text("\n".join(lines)) + "\n"


def _cell(text: object) -> str:
    return escape_text(str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " "))


def _code(text: object) -> str:
    s = _cell(text)
    fence = "``" if "`" in s else "`"
    pad = " " if "`" in s else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def render_markdown(report: DiffReport) -> str:
    """GitHub-flavoured Markdown, ready to paste into a pull request."""
    to = report.to_version if report.to_version is not None else "(new)"
    verdict_word = report.bump.label.upper()
    lines = [f"### `{report.name}` {report.from_version} → {to}: **{verdict_word}**", ""]
    if report.bump is Bump.NONE:
        lines.append("The packages are identical (same digest).")
    else:
        lines.append(f"Suggested version: **{report.suggested_version}** · {_count(len(report.changes))}")
        if not report.version_ok:
            lines += [
                "",
                f"> [!WARNING]\n> The new package is versioned {report.to_version}, "
                f"below the required {report.suggested_version}.",
            ]
    for bump, changes in _groups(report):
        lines += ["", f"#### {bump.label.capitalize()} ({len(changes)})", ""]
        lines += ["| Subject | Change | Rule |", "|---|---|---|"]
        lines += [f"| {_code(c.subject)} | {_cell(c.message)} | {_code(c.rule)} |" for c in changes]
    diffs = [c for c in report.changes if c.diff]
    if diffs:
        lines += ["", "#### What changed in the text"]
        for c in diffs:
            text = escape_text(c.diff or "")
            fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
            summary = html.escape(f"{c.subject} [{c.rule}]")
            lines += ["", f"<details><summary><code>{summary}</code></summary>", "", f"{fence}diff", text, fence]
            lines += ["", "</details>"]
    if report.metrics:
        lines += ["", "#### Metrics", "", "| Metric | Old | New | Δ |", "|---|---:|---:|---:|"]
        lines += [f"| {_cell(m.name)} | {_num(m.old)} | {_num(m.new)} | {_delta(m)} |" for m in report.metrics]
    return "\n".join(lines) + "\n"


def render_json(report: DiffReport) -> dict[str, Any]:
    """The JSON object `mpkg diff --json` prints (before its ``ok`` key)."""
    return report.to_json()


__all__ = ["render_json", "render_markdown", "render_text", "verdict"]
