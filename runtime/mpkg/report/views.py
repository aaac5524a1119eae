"""View models the report templates share: contract rows, facts, flattened trees.

Everything here is plain data from a package or a registry, kept as text; the templates
escape it. Nothing trusts the shape of what it is given: a value of the wrong type becomes
its JSON text rather than an error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_TREE_ROWS = 2000  # rows a flattened tree shows; the rest is counted, not rendered


@dataclass(frozen=True)
class ContractRow:
    """One contract field as a table row; ``state`` and ``changed`` are set by the diff."""

    side: str  # "input" or "output"
    key: str  # "inputs.<name>"
    name: str
    dtype: str
    shape: tuple[str, ...]
    optional: bool
    nullable: bool
    enum: tuple[str, ...] | None
    description: str
    state: str = ""  # "", "added" or "removed"
    changed: frozenset[str] = field(default_factory=frozenset)  # attributes that differ


def value_text(value: Any) -> str:
    """A JSON value as one line of text: strings as they are, everything else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)


def contract_rows(contract: object) -> list[ContractRow]:
    """Rows for a contract's JSON form (``Contract.to_json()`` or a manifest's ``contract``)."""
    rows: list[ContractRow] = []
    if not isinstance(contract, Mapping):
        return rows
    for side in ("inputs", "outputs"):
        fields = contract.get(side)
        for f in fields if isinstance(fields, list) else ():
            if not isinstance(f, Mapping):
                continue
            name = value_text(f.get("name", ""))
            shape = f.get("shape")
            enum = f.get("enum")
            rows.append(
                ContractRow(
                    side=side[:-1],
                    key=f"{side}.{name}",
                    name=name,
                    dtype=value_text(f.get("dtype", "")),
                    shape=tuple(value_text(d) for d in shape) if isinstance(shape, list) else (value_text(shape),),
                    optional=f.get("optional") is True,
                    nullable=f.get("nullable") is True,
                    enum=tuple(json.dumps(v, ensure_ascii=False) for v in enum) if isinstance(enum, list) else None,
                    description=value_text(f.get("description", "")),
                )
            )
    return rows


def flatten(tree: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested mappings as (dotted key, value text) rows, sorted; lists stay one value."""
    out: list[tuple[str, str]] = []

    def walk(node: Any, at: str) -> None:
        if len(out) > MAX_TREE_ROWS:
            return
        if isinstance(node, Mapping) and node:
            for k in sorted(node, key=str):
                walk(node[k], f"{at}.{k}" if at else str(k))
        else:
            out.append((at, value_text(node)))

    if isinstance(tree, Mapping) and not tree:
        return out
    walk(tree, prefix)
    return out


def numeric(tree: Any) -> dict[str, float]:
    """The finite numbers of a (nested) metrics tree, by dotted name."""
    out: dict[str, float] = {}

    def walk(node: Any, at: str) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                walk(v, f"{at}.{k}" if at else str(k))
        elif isinstance(node, int | float) and not isinstance(node, bool) and math.isfinite(node):
            out[at] = float(node)

    walk(tree, "")
    return dict(sorted(out.items()))


def facts(mapping: Any) -> list[tuple[str, str]]:
    """Top-level facts (front matter): key, and its value as text (lists joined by commas)."""
    if not isinstance(mapping, Mapping):
        return []
    rows = []
    for key in sorted(mapping, key=str):
        value = mapping[key]
        if isinstance(value, list) and all(isinstance(v, str | int | float | bool) for v in value):
            rows.append((str(key), ", ".join(value_text(v) for v in value)))
        else:
            rows.append((str(key), value_text(value)))
    return rows


__all__ = ["ContractRow", "contract_rows", "facts", "flatten", "numeric", "value_text"]
