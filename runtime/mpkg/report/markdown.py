"""Model cards as Markdown rendered to text-only HTML (markdown-it-py, CommonMark + tables).

A card is written by whoever built the package, so it is hostile: raw HTML is off (a
``<script>`` or ``<img onerror>`` in a card is shown as the text it is), a link is a link
only for http, https, mailto or a fragment (``javascript:``, ``data:`` and relative paths
stay text), an image is shown as its alt text and address (never fetched), and nothing
renders a ``style`` attribute (the page's CSP refuses inline styles). Headings move down
two levels to sit under the report's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from markupsafe import Markup, escape

from .text import visible

SAFE_SCHEMES = ("http:", "https:", "mailto:")
MAX_CARD_CHARS = 96 * 1024  # longer cards are cut (and say so): worst-case rendering stays about a second
HEADING_SHIFT = 2
_ALIGN = {"text-align:left": "al-left", "text-align:center": "al-center", "text-align:right": "al-right"}


def safe_link(url: str) -> bool:
    """A link the report may make clickable: http(s), mailto, or a fragment of this page."""
    u = url.strip().lower()
    return u.startswith("#") or u.startswith(SAFE_SCHEMES)


def _image_as_text(renderer: Any, tokens: Sequence[Token], idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    alt = "".join(t.content for t in token.children or ())
    src = str(token.attrs.get("src", ""))
    return f'<span class="img-ref">[image: {escape(alt)} — {escape(src)}]</span>'


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False, "maxNesting": 20})
    md.enable(["table", "strikethrough"])
    md.validateLink = safe_link  # type: ignore[method-assign]
    md.add_render_rule("image", _image_as_text)
    return md


def _rewrite(tokens: list[Token]) -> None:
    for token in tokens:
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + HEADING_SHIFT)}"
        elif token.type in ("th_open", "td_open") and "style" in token.attrs:
            style = str(token.attrs.pop("style"))
            token.attrs["class"] = _ALIGN.get(style, "")
        elif token.type == "link_open":
            token.attrs["rel"] = "nofollow noopener noreferrer"
        if token.children:
            _rewrite(token.children)


def render_markdown(text: str) -> tuple[Markup, bool]:
    """(HTML, whether the text was cut at :data:`MAX_CARD_CHARS`)."""
    cut = len(text) > MAX_CARD_CHARS
    source = visible(text[:MAX_CARD_CHARS] if cut else text)
    md = _parser()
    env: dict[str, Any] = {}
    tokens = md.parse(source, env)
    _rewrite(tokens)
    return Markup(md.renderer.render(tokens, md.options, env)), cut  # markdown-it escapes (html off)


__all__ = ["MAX_CARD_CHARS", "SAFE_SCHEMES", "render_markdown", "safe_link"]
