"""The card section: where the model card is, the author's words and the card metadata."""

from __future__ import annotations

from .. import rules as R
from ..findings import Findings
from ..views import CardView, ManifestView
from .tree import diff_tree


def diff(d: Findings, old: ManifestView, new: ManifestView) -> None:
    """The card's path, text (by the author's digest) and metadata, leaf by leaf."""
    if new.card is None:  # a build in progress has not rendered its card yet
        return
    old_card = old.card or CardView(None, None, {})
    if old_card.path != new.card.path:
        d.add(R.CARD_CHANGED, "card.path", old_card.path, new.card.path, "model card moved")
    if author_digests(old.card, new.card) and old_card.author_digest != new.card.author_digest:
        d.add(
            R.CARD_CHANGED,
            f"files.{new.card.path}",
            old_card.author_digest,
            new.card.author_digest,
            "model card text changed",
        )
    diff_tree(d, R.CARD_CHANGED, old_card.metadata, new.card.metadata, "card.metadata", "card metadata")


def author_digests(old: CardView | None, new: CardView | None) -> bool:
    """Both cards record a digest of the author's text alone; the generated facts then follow
    from fields compared on their own, so the card file's own digest is not compared."""
    return old is not None and new is not None and old.author_digest is not None and new.author_digest is not None


__all__ = ["author_digests", "diff"]
