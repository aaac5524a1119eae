"""Inline SVG, built as an element tree so every text and attribute is escaped by construction.

Colours are never written here: elements carry classes the page's stylesheet colours, so a
chart follows the light/dark setting and prints in black and white. Each chart is scaled by
its ``viewBox`` to the width it is given (a phone or a printed page).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Mapping

from markupsafe import Markup

from .text import shorten, visible

SVG_NS = "http://www.w3.org/2000/svg"
CHAR_WIDTH = 6.6  # average advance of the 12 px sans-serif the stylesheet sets, for fitting labels


def _num(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".") if math.isfinite(v) else "0"


class Svg:
    """One chart: ``viewBox`` 0 0 width height, a ``<title>`` for screen readers and tooltips."""

    def __init__(self, width: float, height: float, title: str) -> None:
        self.width, self.height = width, height
        self.root = ET.Element(
            "svg",
            {
                "xmlns": SVG_NS,
                "viewBox": f"0 0 {_num(width)} {_num(height)}",
                "class": "chart",
                "role": "img",
                "aria-label": visible(title),
            },
        )
        ET.SubElement(self.root, "title").text = visible(title)

    def el(self, tag: str, attrs: Mapping[str, str | float], tip: str | None = None) -> ET.Element:
        """Add an element; ``tip`` becomes its tooltip, escaped as text."""
        values = {k: _num(v) if isinstance(v, float | int) else v for k, v in attrs.items()}
        node = ET.SubElement(self.root, tag, values)
        if tip:
            ET.SubElement(node, "title").text = visible(tip)
        return node

    def line(self, x1: float, y1: float, x2: float, y2: float, cls: str) -> None:
        """Add a line."""
        self.el("line", {"x1": x1, "y1": y1, "x2": x2, "y2": y2, "class": cls})

    def rect(self, x: float, y: float, w: float, h: float, cls: str, tip: str | None = None, rx: float = 0) -> None:
        """Add a rectangle (negative sizes drawn as empty)."""
        self.el("rect", {"x": x, "y": y, "width": max(w, 0.0), "height": max(h, 0.0), "rx": rx, "class": cls}, tip)

    def circle(self, x: float, y: float, r: float, cls: str, tip: str | None = None) -> None:
        """Add a circle."""
        self.el("circle", {"cx": x, "cy": y, "r": r, "class": cls}, tip)

    def polygon(self, points: list[tuple[float, float]], cls: str, tip: str | None = None) -> None:
        """Add a polygon."""
        self.el("polygon", {"points": " ".join(f"{_num(x)},{_num(y)}" for x, y in points), "class": cls}, tip)

    def path(self, d: str, cls: str) -> None:
        """Add a path."""
        self.el("path", {"d": d, "class": cls})

    def text(
        self,
        x: float,
        y: float,
        text: str,
        cls: str = "",
        anchor: str = "start",
        max_chars: int | None = None,
        rotate: float | None = None,
    ) -> None:
        """A label; cut to ``max_chars`` with the whole text kept as its tooltip."""
        shown = visible(text)
        cut = shorten(shown, max_chars) if max_chars else shown
        attrs: dict[str, str | float] = {"x": x, "y": y, "text-anchor": anchor}
        if cls:
            attrs["class"] = cls
        if rotate is not None:
            attrs["transform"] = f"rotate({_num(rotate)} {_num(x)} {_num(y)})"
        node = self.el("text", attrs, shown if cut != shown else None)
        if len(node):  # a tooltip child: the visible text goes after it
            node[0].tail = cut
        else:
            node.text = cut

    def markup(self) -> Markup:
        """The SVG as markup; ElementTree has escaped every text and attribute."""
        return Markup(ET.tostring(self.root, encoding="unicode"))  # ElementTree escapes


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 2.5 or 5 times a power of ten apart)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        pad = abs(hi) * 0.05 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks: list[float] = []
    value = first
    while value < hi + step * 0.5 and len(ticks) < 50:
        ticks.append(round(value, 12))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(value, 12))
    return ticks


def fmt(value: float, signed: bool = False) -> str:
    """A number for a label: 4 significant digits, a sign when asked (U+2212 for minus)."""
    if not math.isfinite(value):
        return str(value)
    text = f"{value:+.4g}" if signed else f"{value:.4g}"
    return text.replace("-", "\u2212")


__all__ = ["CHAR_WIDTH", "Svg", "fmt", "nice_ticks"]
