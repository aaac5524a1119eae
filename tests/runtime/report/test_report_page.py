"""The page: autoescaped templates, one stylesheet pinned by the CSP, SVG escaped by construction."""

from __future__ import annotations

import base64
import hashlib
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from mpkg.errors import MpkgError
from mpkg.report import page
from mpkg.report.charts import Bar, Node, Point, layered_graph, signed_bars, trend
from mpkg.report.svg import fmt, nice_ticks
from mpkg.report.views import contract_rows, flatten, numeric

from tests.harness.payloads import BIDI, PAYLOADS

SCRIPT = PAYLOADS["script"]


def test_csp_allows_only_the_inline_stylesheet() -> None:
    csp = page.content_security_policy()
    digest = base64.b64encode(hashlib.sha256(page.stylesheet().encode()).digest()).decode()
    assert csp.startswith("default-src 'none'; ")
    assert f"style-src 'sha256-{digest}'" in csp
    assert "script-src" not in csp and "unsafe" not in csp and "http" not in csp
    assert "base-uri 'none'" in csp and "form-action 'none'" in csp


def test_template_output_is_escaped_and_made_visible(tmp_path: Path) -> None:
    env = page.environment()
    template = env.from_string("<p>{{ x }}</p><p title='{{ x }}'>{{ y }}</p>")
    html = template.render(x=SCRIPT + "'\"", y=BIDI)
    assert "<script" not in html and "&lt;script&gt;" in html and "&#39;&#34;" in html
    assert "\\u202e" in html and "\u202e" not in html


def test_a_page_has_the_csp_first_and_the_stylesheet_it_pins(tmp_path: Path) -> None:
    html = page.render("base.html.j2", title=SCRIPT)
    head = html.split("<head>", 1)[1]
    assert head.lstrip().startswith('<meta charset="utf-8">\n<meta http-equiv="Content-Security-Policy"')
    style = re.search(r"<style>(.*?)</style>", html, re.S)
    assert style is not None and style.group(1) == page.stylesheet()
    assert f"<title>{SCRIPT}</title>" not in html and "&lt;script&gt;" in html
    assert "<script" not in html.lower() and "http://" not in html and "https://" not in html


def test_write_is_atomic(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    page.write(out, "<p>x</p>")
    assert out.read_text() == "<p>x</p>"
    with pytest.raises(MpkgError, match=r"its folder .* does not exist"):
        page.write(tmp_path / "missing" / "r.html", "x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def _svg(markup: str) -> ET.Element:
    return ET.fromstring(markup)  # well-formed XML: every label was escaped


def test_charts_escape_labels_and_label_their_axes() -> None:
    bars = signed_bars([Bar(SCRIPT, -2.5, "-2.5"), Bar("ok", 1.0, "+1")], "change (%)", "deltas")
    root = _svg(bars)
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "change (%)" in texts and any("<script>" in t for t in texts)
    assert root.get("viewBox") and root.get("role") == "img"
    line_markup = trend(
        [Point("1.0.0", 0.9), Point(SCRIPT, None), Point("2.0.0", 0.95, ("production",))], "version", "acc", "t"
    )
    labels = "".join(_svg(line_markup).itertext())
    assert "version" in labels and "acc" in labels and "production" in labels
    graph = _svg(layered_graph([[Node("a", SCRIPT, (BIDI,))], [Node("b", "pkg", kind="node-self")]], [("a", "b")], "g"))
    assert "\\u202e" in "".join(graph.itertext())
    assert "style" not in bars + line_markup  # colours come from the stylesheet's classes


def test_nice_ticks_and_numbers() -> None:
    assert nice_ticks(0.93, 0.97, 4) == [0.93, 0.94, 0.95, 0.96, 0.97]
    assert nice_ticks(-3.4, 3.4, 4) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert nice_ticks(5, 5)[0] < 5 < nice_ticks(5, 5)[-1]
    assert fmt(-0.0334, signed=True) == "\u22120.0334" and fmt(0.0, signed=True) == "+0"
    assert nice_ticks(float("nan"), 1) == [0.0]


def test_views_take_any_json() -> None:
    rows = contract_rows({"inputs": [{"name": SCRIPT, "dtype": 3, "shape": "x", "enum": ["a", 1]}, "junk"]})
    assert rows[0].name == SCRIPT and rows[0].dtype == "3" and rows[0].shape == ("x",) and rows[0].enum == ('"a"', "1")
    assert contract_rows(None) == [] and flatten({}) == []
    assert flatten({"b": {"c": 1}, "a": [1, 2]}) == [("a", "[1, 2]"), ("b.c", "1")]
    assert numeric({"a": {"b": 1}, "n": float("nan"), "i": float("inf"), "t": True, "s": "1"}) == {"a.b": 1.0}
