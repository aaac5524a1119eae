"""The package section: its name and description."""

from __future__ import annotations

from .. import rules as R
from ..findings import Findings
from ..views import ManifestView


def diff(d: Findings, old: ManifestView, new: ManifestView) -> None:
    """A renamed package is another package; a new description is documentation."""
    if old.name != new.name:
        d.add(R.NAME_CHANGED, "name", old.name, new.name, f"package name changed from {old.name!r} to {new.name!r}")
    if old.description != new.description:
        d.add(R.DESCRIPTION_CHANGED, "description", old.description, new.description, "description changed")


__all__ = ["diff"]
