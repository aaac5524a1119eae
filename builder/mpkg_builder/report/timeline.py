"""The stage timeline: one lane per version, time across, who held which stage when.

Pushes are dots, stage moves are diamonds in the stage's colour, deletions crosses; a bar
shows each span a version held staging (upper half of its lane) or production (lower half).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup
from mpkg.report.svg import CHAR_WIDTH, Svg

_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
_DAY = 86400
_DAY_STEPS = (1, 2, 7, 14, 30, 91, 182, 365)


@dataclass(frozen=True)
class Mark:
    """A point event on a version's lane (a push or a stage move)."""

    lane: int
    when: dt.datetime
    kind: str  # "push", "staging", "production" (a move to that stage) or "other"
    tip: str


@dataclass(frozen=True)
class Span:
    """How long a version held a stage, drawn as a bar on its lane."""

    lane: int
    stage: str
    start: dt.datetime
    end: dt.datetime
    tip: str


def time_ticks(t0: float, t1: float, count: int = 5) -> tuple[list[float], str]:
    """Round instants (epoch seconds) across [t0, t1] and the strftime format to label them."""
    span = max(t1 - t0, 1.0)
    raw = span / count
    step = next((float(s) for s in _STEPS if s >= raw), None)
    if step is None:
        step = float(next((d for d in _DAY_STEPS if d * _DAY >= raw), _DAY_STEPS[-1]) * _DAY)
    first = (t0 // step) * step
    ticks = [first + i * step for i in range(int(span // step) + 3) if first + i * step <= t1 + step]
    fmt = "%H:%M:%S" if step < 60 else "%H:%M" if step < _DAY else "%Y-%m-%d"
    return ticks[:12], fmt


def timeline(
    lanes: Sequence[str], marks: Sequence[Mark], spans: Sequence[Span], holders: Sequence[str], title: str
) -> Markup:
    """``lanes`` are version labels top to bottom; ``holders[i]`` says what lane i holds now."""
    label_w, plot_w, right_w, lane_h, top = 120.0, 470.0, 130.0, 30.0, 10.0
    height = top + lane_h * len(lanes) + 54
    svg = Svg(label_w + plot_w + right_w, height, title)
    instants = [m.when.timestamp() for m in marks] + [s.end.timestamp() for s in spans]
    t0, t1 = min(instants, default=0.0), max(instants, default=1.0)
    if t1 - t0 < 1:
        t0, t1 = t0 - 1, t1 + 1
    ticks, fmt = time_ticks(t0, t1)
    t0, t1 = min(t0, ticks[0]), max(t1, ticks[-1])

    def x(when: dt.datetime | float) -> float:
        t = when.timestamp() if isinstance(when, dt.datetime) else when
        return label_w + (t - t0) / (t1 - t0) * plot_w

    bottom = top + lane_h * len(lanes)
    for i, label in enumerate(lanes):
        y = top + i * lane_h
        if i % 2 == 0:
            svg.rect(label_w, y, plot_w, lane_h, "lane")
        svg.text(label_w - 8, y + lane_h / 2 + 4, label, anchor="end", max_chars=int((label_w - 30) / CHAR_WIDTH))
        if i < len(holders) and holders[i]:
            svg.text(label_w + plot_w + 8, y + lane_h / 2 + 4, holders[i], "axis-label", max_chars=18)
    for t in ticks:
        svg.line(x(t), top, x(t), bottom, "grid")
        label = dt.datetime.fromtimestamp(t, dt.UTC).strftime(fmt)
        svg.text(x(t), bottom + 16, label, "tick", anchor="middle")
    svg.line(label_w, bottom, label_w + plot_w, bottom, "axis")
    svg.line(label_w, top, label_w, bottom, "axis")
    for s in spans:
        y = top + s.lane * lane_h + (4 if s.stage == "staging" else lane_h / 2 + 1)
        svg.rect(x(s.start), y, max(x(s.end) - x(s.start), 2.0), lane_h / 2 - 5, f"span-{s.stage}", tip=s.tip)
    for m in marks:
        cx, cy = x(m.when), top + m.lane * lane_h + lane_h / 2
        if m.kind == "push":
            svg.circle(cx, cy, 4.5, "mark-push", m.tip)
        elif m.kind in ("staging", "production"):
            svg.polygon([(cx, cy - 7), (cx + 6, cy), (cx, cy + 7), (cx - 6, cy)], f"mark-{m.kind}", m.tip)
        else:
            svg.polygon(
                [
                    (cx - 5, cy - 5),
                    (cx, cy - 1),
                    (cx + 5, cy - 5),
                    (cx + 1, cy),
                    (cx + 5, cy + 5),
                    (cx, cy + 1),
                    (cx - 5, cy + 5),
                    (cx - 1, cy),
                ],
                "mark-other",
                m.tip,
            )
    svg.text(label_w + plot_w / 2, height - 8, "time (UTC)", "axis-label", anchor="middle")
    svg.text(14, top + lane_h * len(lanes) / 2, "version", "axis-label", anchor="middle", rotate=-90)
    return svg.markup()


__all__ = ["Mark", "Span", "time_ticks", "timeline"]
