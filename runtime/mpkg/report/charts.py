"""The three charts reports draw: signed bars (deltas), a trend line (a metric across
versions) and a layered graph (lineage). Every chart labels its axes; a table with the same
numbers always sits beside it in the page, for print and screen readers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

from .svg import CHAR_WIDTH, Svg, fmt, nice_ticks


@dataclass(frozen=True)
class Bar:
    """One bar of a signed bar chart."""

    label: str
    value: float  # the bar's length on the axis
    note: str  # drawn at the bar's end (e.g. "+0.012 (+1.3 %)")


def signed_bars(bars: Sequence[Bar], axis_label: str, title: str) -> Markup:
    """Horizontal bars from a zero line, positive right, negative left, each with its note."""
    label_w, plot_w, note_w, row_h, top = 190.0, 330.0, 150.0, 26.0, 12.0
    width = label_w + plot_w + note_w
    height = top + row_h * len(bars) + 52
    svg = Svg(width, height, title)
    extent = max((abs(b.value) for b in bars), default=0.0) or 1.0
    ticks = nice_ticks(-extent, extent, 4)
    lo, hi = min(ticks), max(ticks)

    def x(v: float) -> float:
        return label_w + (v - lo) / (hi - lo) * plot_w

    bottom = top + row_h * len(bars)
    for t in ticks:
        svg.line(x(t), top, x(t), bottom, "grid")
        svg.text(x(t), bottom + 16, fmt(t, signed=t != 0), "tick", anchor="middle")
    svg.line(label_w, bottom, label_w + plot_w, bottom, "axis")
    svg.line(x(0), top - 4, x(0), bottom, "zero")
    for i, b in enumerate(bars):
        y = top + i * row_h
        svg.text(label_w - 8, y + row_h / 2 + 4, b.label, anchor="end", max_chars=int((label_w - 12) / CHAR_WIDTH))
        start, end = sorted((x(0), x(b.value)))
        cls = "bar-pos" if b.value > 0 else "bar-neg" if b.value < 0 else "bar-zero"
        svg.rect(start, y + 5, max(end - start, 1.5), row_h - 10, cls, tip=f"{b.label}: {b.note}")
        svg.text(label_w + plot_w + 6, y + row_h / 2 + 4, b.note, "small", max_chars=int(note_w / 6))
    svg.text(label_w + plot_w / 2, bottom + 40, axis_label, "axis-label", anchor="middle")
    return svg.markup()


@dataclass(frozen=True)
class Point:
    """One point of a trend line; a missing value leaves a gap."""

    label: str  # the x category (a version)
    value: float | None  # None: the metric was not recorded for this version
    marks: tuple[str, ...] = ()  # e.g. ("production",): drawn as a ring and a label


def trend(points: Sequence[Point], x_label: str, y_label: str, title: str) -> Markup:
    """A metric across categories in order: a line through recorded values, marked points."""
    left, right, top, plot_h = 70.0, 40.0, 40.0, 180.0
    plot_w = max(16.0 * len(points), 420.0)
    rotate = len(points) > 6
    bottom = top + plot_h
    height = bottom + (78 if rotate else 52)
    svg = Svg(left + plot_w + right, height, title)
    values = [p.value for p in points if p.value is not None]
    lo, hi = min(values, default=0.0), max(values, default=1.0)
    ticks = nice_ticks(lo, hi + (hi - lo) * 0.15, 4)  # head room for the stage labels
    lo, hi = min(ticks), max(ticks)

    def y(v: float) -> float:
        return bottom - (v - lo) / (hi - lo) * plot_h

    def x(i: int) -> float:
        return left + (plot_w * i / (len(points) - 1) if len(points) > 1 else plot_w / 2)

    for t in ticks:
        svg.line(left, y(t), left + plot_w, y(t), "grid")
        svg.text(left - 6, y(t) + 4, fmt(t), "tick", anchor="end")
    svg.line(left, top - 6, left, bottom, "axis")
    svg.line(left, bottom, left + plot_w, bottom, "axis")
    segment: list[str] = []
    for i, p in enumerate(points):
        if p.value is None:
            if len(segment) > 1:
                svg.path("M" + " L".join(segment), "series")
            segment = []
            continue
        segment.append(f"{x(i):.1f},{y(p.value):.1f}")
    if len(segment) > 1:
        svg.path("M" + " L".join(segment), "series")
    for i, p in enumerate(points):
        label_y = bottom + 16
        if rotate:
            svg.text(x(i), label_y, p.label, "tick", anchor="end", max_chars=14, rotate=-40)
        else:
            svg.text(x(i), label_y, p.label, "tick", anchor="middle", max_chars=11)
        if p.value is None:
            continue
        tip = f"{p.label}: {fmt(p.value)}" + (f" ({', '.join(p.marks)})" if p.marks else "")
        svg.circle(x(i), y(p.value), 4, "point", tip)
        for j, mark in enumerate(p.marks):
            cls = "holder-staging" if mark == "staging" else "holder"
            svg.circle(x(i), y(p.value), 8 + 4 * j, cls)
            svg.text(x(i), y(p.value) - 13 - 12 * j, mark, "small", anchor="middle")
    svg.text(left + plot_w / 2, height - 8, x_label, "axis-label", anchor="middle")
    svg.text(16, top + plot_h / 2, y_label, "axis-label", anchor="middle", max_chars=28, rotate=-90)
    return svg.markup()


@dataclass(frozen=True)
class Node:
    """One box of the lineage graph."""

    id: str
    heading: str
    lines: tuple[str, ...] = ()
    kind: str = "node"  # node, node-self (the subject) or node-missing (known only by reference)
    tip: str = ""


def layered_graph(layers: Sequence[Sequence[Node]], edges: Sequence[tuple[str, str]], title: str) -> Markup:
    """Layers top to bottom (at most three nodes side by side), arrows from ``a`` to ``b``."""
    per_row, node_w, gap_x, gap_y, line_h = 3, 208.0, 24.0, 34.0, 15.0
    width = per_row * node_w + (per_row + 1) * gap_x
    boxes: dict[str, tuple[float, float, float, float]] = {}
    placed: list[tuple[Node, float, float, float]] = []
    y = gap_y / 2
    for layer in layers:
        for row_start in range(0, len(layer), per_row):
            row = layer[row_start : row_start + per_row]
            h = 22 + line_h * max((len(n.lines) for n in row), default=0)
            row_w = len(row) * node_w + (len(row) - 1) * gap_x
            x0 = (width - row_w) / 2
            for k, node in enumerate(row):
                bx = x0 + k * (node_w + gap_x)
                boxes[node.id] = (bx, y, node_w, h)
                placed.append((node, bx, y, h))
            y += h + gap_y
    svg = Svg(width, y - gap_y / 2, title)
    for a, b in edges:
        if a not in boxes or b not in boxes:
            continue
        ax, ay, aw, ah = boxes[a]
        bx, by, bw, _ = boxes[b]
        x1, y1, x2, y2 = ax + aw / 2, ay + ah, bx + bw / 2, by - 6
        mid = (y1 + y2) / 2
        svg.path(f"M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2:.1f}", "edge")
        svg.polygon([(x2 - 5, y2), (x2 + 5, y2), (x2, y2 + 6)], "arrow")
    chars = int((node_w - 16) / CHAR_WIDTH)
    for node, bx, by, h in placed:
        svg.rect(bx, by, node_w, h, node.kind, tip=node.tip or None, rx=6)
        svg.text(bx + 8, by + 16, node.heading, "axis-label", max_chars=chars)
        for i, line in enumerate(node.lines):
            svg.text(bx + 8, by + 16 + line_h * (i + 1), line, "small", max_chars=chars)
    return svg.markup()


__all__ = ["Bar", "Node", "Point", "layered_graph", "signed_bars", "trend"]
