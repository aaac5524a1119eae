"""Model cards as text-only Markdown: every hostile construct comes out as text."""

from __future__ import annotations

import time

import pytest
from mpkg.report.card import split_card
from mpkg.report.markdown import MAX_CARD_CHARS, render_markdown, safe_link
from mpkg.report.text import visible

from tests.harness.payloads import BIDI, PAYLOADS


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_card_payload_is_escaped_text(name: str) -> None:
    payload = PAYLOADS[name]
    html, _ = render_markdown(f"# Title {payload}\n\n{payload}\n\n| a | b |\n|---|---|\n| {payload} | x |\n")
    lowered = html.lower()
    for tag in ("<script", "<img", "<svg", "<iframe", "<style", "<link", "<div", "<image", "<td><script"):
        assert tag not in lowered, tag
    assert 'href="javascript' not in lowered and 'href="data' not in lowered
    assert "&lt;" in html


def test_raw_html_block_is_shown_as_text() -> None:
    html, _ = render_markdown('<div onclick="x()">\n<b>bold</b>\n</div>\n')
    assert "&lt;div onclick=&quot;x()&quot;&gt;" in html and "<b>" not in html


def test_links_only_for_safe_schemes() -> None:
    html, _ = render_markdown(
        "[ok](https://example.org/a) [mail](mailto:a@b.c) [frag](#x) [js](javascript:alert(1)) "
        "[JS](JaVaScRiPt:alert(1)) [ent](&#x6A;avascript:alert(1)) [data](data:text/html,x) [rel](docs/a.md) "
        "<javascript:alert(2)> <https://example.org/auto>"
    )
    hrefs = [part.split('"')[0] for part in html.split('href="')[1:]]
    assert hrefs == ["https://example.org/a", "mailto:a@b.c", "#x", "https://example.org/auto"]
    assert 'rel="nofollow noopener noreferrer"' in html
    assert "[js](javascript:alert(1))" in html and "[rel](docs/a.md)" in html


@pytest.mark.parametrize("url", ["javascript:x", " javascript:x", "vbscript:x", "data:x", "file:///etc/passwd", "x.md"])
def test_safe_link_refuses(url: str) -> None:
    assert not safe_link(url)


def test_images_are_named_never_loaded() -> None:
    html, _ = render_markdown("![chart](https://example.org/c.png) ![x](data:image/svg+xml;base64,PHN2Zz4=)")
    assert "<img" not in html
    assert '<span class="img-ref">[image: chart — https://example.org/c.png]</span>' in html


def test_tables_headings_and_code_render() -> None:
    html, _ = render_markdown("# H1\n\n## H2\n\n| a | b |\n|--:|:-:|\n| 1 | 2 |\n\n```py\nx = '<b>'\n```\n")
    assert "<h3>H1</h3>" in html and "<h4>H2</h4>" in html  # under the report's own headings
    assert '<th class="al-right">a</th>' in html and '<td class="al-center">2</td>' in html
    assert "style=" not in html  # the page's CSP refuses inline styles
    assert "<code class=\"language-py\">x = '&lt;b&gt;'" in html


def test_bidi_and_control_characters_are_shown() -> None:
    html, _ = render_markdown(f"name: {BIDI} bell\x07")
    assert "\\u202e" in html and "\u202e" not in html and "\\x07" in html
    assert visible("tab\tnew\nline\u200d") == "tab\tnew\nline\u200d"
    assert visible("tag\U000e0041") == "tag\\U000e0041"


def test_long_card_is_cut_and_says_so() -> None:
    html, cut = render_markdown("word " * (MAX_CARD_CHARS // 4))
    assert cut and len(html) < MAX_CARD_CHARS * 2


def test_pathological_markdown_renders_in_bounded_time() -> None:
    """Unclosed brackets, emphasis runs, deep nesting, at the size limit: markdown-it's nesting
    limit and the cut keep the worst case near a second (minutes if it were quadratic)."""
    for unit in ("[", "[a](", "*a "):
        start = time.monotonic()
        render_markdown(unit * (MAX_CARD_CHARS // len(unit)))
        assert time.monotonic() - start < 20, unit  # generous: a busy machine


def test_split_card_separates_front_matter_and_generated_facts() -> None:
    text = (
        "---\r\nlicense: mit\r\n---\r\n# Card\r\n\r\nbody\r\n"
        "<!-- mpkg:generated:begin -->\n\n## Package facts\n\n<!-- mpkg:generated:end -->\n"
    )
    parts = split_card(text)
    assert parts.front_matter == "license: mit"
    assert parts.body == "# Card\n\nbody"
    assert parts.generated == "## Package facts"


def test_split_card_keeps_a_card_that_does_not_follow_the_layout() -> None:
    text = "---\nunclosed: front matter\n# Card\n<!-- mpkg:generated:begin -->\nno end marker"
    parts = split_card(text)
    assert parts.body == text and parts.front_matter is None and parts.generated is None
