"""`mpkg diff OLD NEW --html OUT.html`: the verdict, the findings, the contracts side by side,
metric deltas as a chart and the text diffs of card, code and lockfile, in one page."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mpkg._internal.format.package import read_manifest
from mpkg.report import page
from mpkg.report.charts import Bar, signed_bars
from mpkg.report.svg import fmt
from mpkg.report.views import ContractRow, contract_rows, value_text

from ..diff.render import verdict
from ..diff.report import DiffReport
from ..diff.rules import Bump
from . import TEMPLATE_PACKAGES
from .texts import TEXT_ROLES, TextDiff, file_diffs, from_findings


@dataclass(frozen=True)
class Finding:
    """One diff finding as the page shows it, values already rendered as text."""

    subject: str
    message: str
    rule: str
    old: str
    new: str


@dataclass(frozen=True)
class MetricRow:
    """One metric of both versions, with the change the chart draws."""

    name: str
    old: float
    new: float
    delta: float
    relative: float | None  # percent of the old value; None when the old value is 0


@dataclass(frozen=True)
class ContractPair:
    """One field in both versions: ``old``/``new`` is None where the field does not exist."""

    side: str
    name: str
    old: ContractRow | None
    new: ContractRow | None
    changed: frozenset[str]  # among "type", "flags", "description"

    @property
    def state(self) -> str:
        """What happened to this field: added, removed, changed, or nothing."""
        return "added" if self.old is None else "removed" if self.new is None else "changed" if self.changed else ""


_GROUPS = {"type": ("dtype", "shape"), "flags": ("optional", "nullable", "enum"), "description": ("description",)}


def side_by_side(old: object, new: object) -> list[ContractPair]:
    """Both contracts aligned by field: old fields in their order, then fields only in new."""
    a, b = contract_rows(old), contract_rows(new)
    by_b = {r.key: r for r in b}
    keys = [r.key for r in a] + [r.key for r in b if r.key not in {x.key for x in a}]
    by_a = {r.key: r for r in a}
    pairs = []
    for key in keys:
        o, n = by_a.get(key), by_b.get(key)
        any_row = o or n
        assert any_row is not None
        changed = (
            frozenset(g for g, attrs in _GROUPS.items() if any(getattr(o, k) != getattr(n, k) for k in attrs))
            if o and n
            else frozenset()
        )
        pairs.append(ContractPair(any_row.side, any_row.name, o, n, changed))
    return pairs


def metric_rows(report: DiffReport) -> list[MetricRow]:
    """The metrics both versions record, with relative change where it is defined."""
    return [
        MetricRow(m.name, m.old, m.new, m.delta, (m.delta / abs(m.old) * 100) if m.old else None)
        for m in report.metrics
    ]


def metric_chart(rows: Sequence[MetricRow]) -> Any:
    """The signed bar chart of metric changes, relative to the old values."""
    bars = []
    for r in rows:
        rel = f" ({fmt(r.relative, signed=True)} %)" if r.relative is not None else " (old value 0)"
        bars.append(Bar(r.name, r.relative if r.relative is not None else 0.0, fmt(r.delta, signed=True) + rel))
    return signed_bars(bars, "change relative to the old value (%)", "Metric deltas, new minus old")


def findings(report: DiffReport) -> list[tuple[str, list[Finding]]]:
    """Findings grouped by the bump they cause, most severe first."""
    groups = []
    for bump in (Bump.MAJOR, Bump.MINOR, Bump.PATCH):
        changes = [c for c in report.changes if c.bump is bump]
        items = [Finding(c.subject, c.message, c.rule, _value(c.old), _value(c.new)) for c in changes]
        if items:
            groups.append((bump.label, items))
    return groups


def _value(v: Any) -> str:
    return "—" if v is None else value_text(v)


def diff_page(report: DiffReport, old: Mapping[str, Any], new: Mapping[str, Any], texts: Sequence[TextDiff]) -> str:
    """The page for ``report`` between two manifest documents (their JSON; nothing trusted)."""
    pairs = side_by_side(old.get("contract"), new.get("contract"))
    rows = metric_rows(report)
    return page.render(
        "diff.html.j2",
        template_packages=TEMPLATE_PACKAGES,
        title=f"{report.name} {report.from_version} → {report.to_version or '(new)'}",
        r=report,
        verdict=verdict(report),
        bump=report.bump.label,
        groups=findings(report),
        old_version=value_text(old.get("version", "old")),
        new_version=value_text(new.get("version", "new")),
        pairs=pairs,
        contract_changed=any(p.state for p in pairs),
        metrics=rows,
        chart=metric_chart(rows) if rows else None,
        texts=texts,
    )


def write_diff_report(
    out: str | os.PathLike[str], report: DiffReport, old: str | os.PathLike[str], new: str | os.PathLike[str]
) -> None:
    """Read both manifests again (small), diff their text files, write the page atomically."""
    attached = from_findings([c.to_json() for c in report.changes])
    texts = attached + file_diffs(old, new, skip={t.path for t in attached})
    texts.sort(key=lambda t: (TEXT_ROLES.index(t.role) if t.role in TEXT_ROLES else len(TEXT_ROLES), t.path))
    page.write(out, diff_page(report, read_manifest(old).raw, read_manifest(new).raw, texts))


__all__ = ["diff_page", "side_by_side", "write_diff_report"]
