"""Untrusted text made visible before it reaches a page.

HTML escaping (Jinja2's autoescape) stops markup; it does not stop text that hides or
reorders itself: control characters, and the bidirectional overrides of "Trojan Source"
(CVE-2021-42574) that make a field name read differently from what it is. Every string
from a package or a registry goes through :func:`visible` on its way into a page.
"""

from __future__ import annotations

import unicodedata

# Kept: layout whitespace, and the joiners emoji and many scripts need.
_KEEP = frozenset("\t\n\u200c\u200d")


def _escape(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def visible(text: str) -> str:
    """``text`` with control and format characters (Cc, Cf; bidi overrides, zero-width
    spaces) written as ``\\xNN``/``\\uNNNN``; tabs, newlines and joiners kept."""
    if text.isprintable():
        return text
    return "".join(
        _escape(c) if c not in _KEEP and unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs") else c for c in text
    )


def shorten(text: str, limit: int) -> str:
    """At most ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


__all__ = ["shorten", "visible"]
