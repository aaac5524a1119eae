"""`mpkg history NAME --html OUT.html`: every version on a timeline with its stage moves and
signers, each metric's trend across versions, and the current holder of each stage.

The page is built from two parts so `mpkg ls --html` can reuse the first alone: the versions
(:func:`collect_versions`: what each version is, its metrics from the package artifact's
annotations, which stage it holds) and the events of the history log. Registry answers are
hostile: every string is escaped by the page, metric annotations keep finite numbers only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup
from mpkg._internal.registry.artifact import ANNOTATION_METRICS
from mpkg._internal.registry.history import MOVES, RecordedEvent, voided
from mpkg.errors import Problem, RegistryError
from mpkg.report import page
from mpkg.report.charts import Point, trend
from mpkg.report.views import numeric

from ..registry.backend import Backend
from ..registry.report import HistoryReport
from . import TEMPLATE_PACKAGES
from .timeline import Mark, Span, timeline

MAX_METRICS = 40  # charts per page; metric names beyond are listed in the table only
SIGNATURE_WORDS = {"none": "unsigned", "verified": "verified", "invalid": "invalid"}


@dataclass(frozen=True)
class Signed:
    """Who recorded an event, and what its signature proves against the keys given."""

    user: str  # $USER of the writer: informative, never authenticated
    key: str | None  # the key id in the signature envelope (an unsigned event's claim is not shown)
    status: str  # verified, untrusted (with keys), not checked (without keys), unsigned, invalid
    reason: str = ""  # why it is not verified, as the history reader says

    @classmethod
    def of(cls, r: RecordedEvent, authenticated: bool) -> Signed:
        """The reader's verdict in the page's words: a signature by a key that is not trusted is
        "untrusted" when keys were given, and "not checked" when none were."""
        if r.signature == "untrusted":
            status = "untrusted" if authenticated else "not checked"
        else:
            status = SIGNATURE_WORDS.get(r.signature, r.signature)
        return cls(r.event.user, r.signer, status, "" if r.signature == "verified" else r.reason)


@dataclass(frozen=True)
class EventView:
    """One history event as the page shows it, with its trust status."""

    sequence: int
    time: str
    when: dt.datetime
    action: str
    stage: str | None
    source: str | None  # version moved away from
    target: str | None  # version the event is about
    by: Signed
    digest: str
    notes: tuple[str, ...]
    overrides: tuple[str, ...]  # promotion checks the actor skipped (--allow-major, ...)
    voided: bool
    concurrent: bool


@dataclass
class VersionView:
    """One version's lane on the page: push, moves, metrics, stages held."""

    version: str
    manifest: str  # the OCI manifest digest: what identifies the version in the store
    package: str  # the package digest
    pushed: EventView | None = None
    moves: list[EventView] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    holds: list[str] = field(default_factory=list)  # stages it holds now
    deleted: bool = False
    note: str = ""


def metrics_annotation(backend: Backend, repo: str, manifest: str) -> tuple[dict[str, float], str]:
    """Finite numbers from a package artifact's metrics annotation (and why there are none)."""
    try:
        found = backend.get_manifest(repo, manifest)
        annotations = found.json().get("annotations") if found else None
    except RegistryError as exc:  # a registry answer we cannot read: say so on the page, go on
        return {}, f"its artifact could not be read: {exc.reasons()[0]}"
    if found is None:
        return {}, "no longer in the store"
    raw = annotations.get(ANNOTATION_METRICS) if isinstance(annotations, Mapping) else None
    try:
        doc = json.loads(raw) if isinstance(raw, str) else {}
    except ValueError:
        return {}, "its metrics annotation is not JSON"
    return numeric(doc if isinstance(doc, Mapping) else {}), ""


def event_views(report: HistoryReport) -> list[EventView]:
    """Every event in order, marking those a later rollback voided."""
    dead = voided(report.events)
    return [
        EventView(
            r.event.sequence,
            r.event.time,
            r.event.when,
            r.event.action,
            r.event.stage,
            r.event.source.version if r.event.source else None,
            r.event.target.version if r.event.target else None,
            Signed.of(r, report.authenticated),
            r.digest,
            r.event.notes,
            r.event.overrides,
            r.digest in dead,
            r.digest in report.concurrent,
        )
        for r in report.events
    ]


def collect_versions(backend: Backend, report: HistoryReport) -> list[VersionView]:
    """Every version the history names, in the order it first appears, with its metrics."""
    by_manifest: dict[str, VersionView] = {}
    for r, view in zip(report.events, event_views(report), strict=True):
        target = r.event.target
        if target is None:
            continue
        v = by_manifest.setdefault(target.manifest, VersionView(target.version, target.manifest, target.package))
        if r.event.action == "push" and v.pushed is None:
            v.pushed = view
        elif r.event.action in MOVES:
            v.moves.append(view)
        elif r.event.action == "delete":
            v.deleted = True
    for v in by_manifest.values():
        v.metrics, v.note = metrics_annotation(backend, report.repository, v.manifest)
    for stage, holder in report.holders.items():
        if holder is not None and holder.manifest in by_manifest:
            by_manifest[holder.manifest].holds.append(stage)
    return list(by_manifest.values())


def stage_spans(versions: Sequence[VersionView], now: dt.datetime) -> list[Span]:
    """Who held each stage when, from the recorded moves that were not voided."""
    lane = {v.manifest: i for i, v in enumerate(versions)}
    moves = sorted(
        ((e, v.manifest) for v in versions for e in v.moves if not e.voided and e.stage),
        key=lambda item: (item[0].sequence, item[0].time),
    )
    spans: list[Span] = []
    current: dict[str, tuple[str, dt.datetime]] = {}
    for e, manifest in moves:
        assert e.stage is not None
        if e.stage in current:
            held, since = current[e.stage]
            tip = f"{e.stage} from {since:%Y-%m-%d %H:%M:%S} to {e.time}"
            spans.append(Span(lane[held], e.stage, since, e.when, tip))
        current[e.stage] = (manifest, e.when)
    for stage, (held, since) in current.items():
        spans.append(Span(lane[held], stage, since, max(now, since), f"{stage} since {since:%Y-%m-%d %H:%M:%S}"))
    return spans


def timeline_chart(versions: Sequence[VersionView], now: dt.datetime) -> Markup:
    """The timeline: one lane per version, pushes and stage moves on a time axis."""
    marks = []
    for i, v in enumerate(versions):
        if v.pushed:
            marks.append(Mark(i, v.pushed.when, "push", f"pushed {v.version} at {v.pushed.time} by {v.pushed.by.user}"))
        for e in v.moves:
            kind = e.stage if e.stage in ("staging", "production") and not e.voided else "other"
            marks.append(Mark(i, e.when, kind, f"{e.action} to {e.stage} at {e.time} by {e.by.user}"))
    holders = [", ".join(f"holds {s}" for s in v.holds) for v in versions]
    return timeline([v.version for v in versions], marks, stage_spans(versions, now), holders, "Versions over time")


def trends(versions: Sequence[VersionView]) -> list[tuple[str, Markup]]:
    """One trend chart per metric across versions (the first MAX_METRICS names)."""
    names = sorted({name for v in versions for name in v.metrics})[:MAX_METRICS]
    charts = []
    for name in names:
        points = [Point(v.version, v.metrics.get(name), tuple(v.holds)) for v in versions]
        charts.append((name, trend(points, "version, in push order", name, f"{name} across versions")))
    return charts


def history_page(
    repository: str,
    versions: Sequence[VersionView],
    events: Sequence[EventView] = (),
    problems: Sequence[str] = (),
    holders: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
    authenticated: bool = False,
) -> str:
    """The page; without ``events`` it shows the versions part only (for `mpkg ls --html`).
    ``authenticated``: every event was checked against trusted keys (the page says when not)."""
    now = now or dt.datetime.now(dt.UTC)
    return page.render(
        "history.html.j2",
        template_packages=TEMPLATE_PACKAGES,
        title=f"{repository}: history",
        repository=repository,
        versions=versions,
        events=events,
        problems=problems,
        authenticated=authenticated,
        holders=holders or {},
        as_of=now.strftime("%Y-%m-%d %H:%M:%S UTC"),
        chart=timeline_chart(versions, now) if versions else None,
        trends=trends(versions),
        metric_names=sorted({name for v in versions for name in v.metrics}),
    )


def _refuse(out: str | os.PathLike[str], name: str, report: HistoryReport) -> None:
    """No page from a history the policy refused: it would present forged events as the record."""
    if report.refusals:
        raise RegistryError(
            [Problem(name, p) for p in report.refusals]
            + [Problem(str(out), "no report written: the history was refused; `mpkg history` without --html lists it")]
        )


def write_versions_report(
    out: str | os.PathLike[str], backend: Backend, name: str, report: HistoryReport, manifests: Sequence[str]
) -> None:
    """`mpkg ls --html`: the versions part of the history page, for the listed versions in their order."""
    _refuse(out, name, report)
    by_manifest = {v.manifest: v for v in collect_versions(backend, report)}
    versions = [by_manifest[m] for m in manifests if m in by_manifest]
    page.write(out, history_page(name, versions, holders=report.holders, authenticated=report.authenticated))


def write_history_report(out: str | os.PathLike[str], backend: Backend, name: str, report: HistoryReport) -> None:
    """Write the page, unless the policy refused the history: a page drawn from events the
    policy refuses (forged, altered, untrusted, rolled back) would present them as the record,
    so nothing is written and the refusal is raised, one line per problem. Stage and version
    tags that disagree with an accepted history are listed first on the page instead."""
    _refuse(out, name, report)
    versions = collect_versions(backend, report)
    html = history_page(
        name, versions, event_views(report), report.problems, report.holders, authenticated=report.authenticated
    )
    page.write(out, html)


__all__ = [
    "EventView",
    "Signed",
    "VersionView",
    "collect_versions",
    "history_page",
    "write_history_report",
    "write_versions_report",
]
