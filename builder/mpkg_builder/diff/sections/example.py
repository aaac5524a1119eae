"""The example section: the packaged self-test and its tolerances."""

from __future__ import annotations

from .. import rules as R
from ..findings import Findings
from ..views import ManifestView


def diff(d: Findings, old: ManifestView, new: ManifestView) -> None:
    """The example added, removed, moved or re-toleranced: a self-test, not the interface."""
    a, b = old.example, new.example
    if a == b:
        return
    if a is None or b is None:
        d.add(
            R.EXAMPLE_CHANGED,
            "example",
            None if a is None else a.to_json(),
            None if b is None else b.to_json(),
            "example was " + ("added" if a is None else "removed"),
        )
        return
    for key, va, vb in (("path", a.path, b.path), ("rtol", a.rtol, b.rtol), ("atol", a.atol, b.atol)):
        if va != vb:
            d.add(R.EXAMPLE_CHANGED, f"example.{key}", va, vb, f"example {key} changed")


__all__ = ["diff"]
