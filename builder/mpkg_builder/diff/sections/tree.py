"""Comparing free-form JSON (lineage records, card metadata) leaf by leaf.

A nested object is compared by its leaves' dotted paths, so a finding names the exact
parameter or metric that moved, not the whole record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..findings import Findings


def leaves(doc: Any, prefix: str) -> dict[str, Any]:
    """Dotted path -> value for every leaf under ``doc`` (an empty object is a leaf)."""
    if isinstance(doc, Mapping) and doc:
        out: dict[str, Any] = {}
        for k, v in doc.items():
            out.update(leaves(v, f"{prefix}.{k}"))
        return out
    return {prefix: doc}


def diff_tree(d: Findings, rule: str, old: Any, new: Any, prefix: str, what: str) -> None:
    """One ``rule`` finding per leaf added, removed or changed between ``old`` and ``new``."""
    a, b = leaves(old, prefix), leaves(new, prefix)
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key) or (key in a) != (key in b):
            name = key.removeprefix(prefix + ".")
            if key not in a:
                how = f"added ({short(b[key])})"
            elif key not in b:
                how = f"removed (was {short(a[key])})"
            else:
                how = f"{short(a[key])} -> {short(b[key])}"
            d.add(rule, key, a.get(key), b.get(key), f"{what} {name}: {how}")


def short(value: Any) -> str:
    """A value cut to 40 characters for a one-line message."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


__all__ = ["diff_tree", "leaves", "short"]
