"""A packaged model card's parts: front matter, the author's text, mpkg's generated facts.

The builder writes the card as the author's Markdown (front matter included) followed by a
delimited generated section (spec/source.md); the parsed front matter is also in the
manifest (``card.metadata``), so no YAML parser is needed here. Splitting is by lines and
markers only: a card that does not follow the layout is shown whole, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

GENERATED_BEGIN = "<!-- mpkg:generated:begin -->"
GENERATED_END = "<!-- mpkg:generated:end -->"


@dataclass(frozen=True)
class CardParts:
    """A model card split into front matter, the author's text and mpkg's facts."""

    front_matter: str | None  # the raw YAML lines, for reference (the facts come from the manifest)
    body: str  # the author's Markdown
    generated: str | None  # mpkg's facts section, without its markers


def split_card(text: str) -> CardParts:
    """Split a card so the page renders the author's text apart from mpkg's facts."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    front = None
    lines = text.split("\n")
    if lines and lines[0] == "---":
        end = next((i for i in range(1, len(lines)) if lines[i] in ("---", "...")), None)
        if end is not None:
            front = "\n".join(lines[1:end])
            text = "\n".join(lines[end + 1 :])
    generated = None
    idx = text.rfind("\n" + GENERATED_BEGIN)
    if idx >= 0 and text.rstrip().endswith(GENERATED_END):
        block = text[idx + 1 + len(GENERATED_BEGIN) :].rstrip()
        generated = block[: -len(GENERATED_END)].strip("\n")
        text = text[:idx]
    return CardParts(front, text, generated)


__all__ = ["GENERATED_BEGIN", "GENERATED_END", "CardParts", "split_card"]
