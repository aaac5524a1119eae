"""Checking the shape of untrusted JSON: types, patterns, closed key sets, bounds.

The manifest parser is written with these so that each rule reads like the JSON Schema
rule it mirrors (schemas/), and every refusal names the field (``card.metadata``) and
says what it must be. Nothing here raises: problems are collected, the caller raises once.

Patterns are matched with ``fullmatch`` under ``re.ASCII``: JSON Schema's patterns are
ECMA-262, where ``\\d`` is ASCII and ``$`` is the very end. Python's ``re.match`` with ``$``
would also accept a trailing newline, and ``\\d`` any Unicode digit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from mpkg.errors import Problem

# No C0/C1 control characters and no Unicode line or paragraph separators: text that is
# printed one line per field cannot forge or hide lines.
ONE_LINE = re.compile(r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]*")


def pattern(regex: str) -> re.Pattern[str]:
    """Compile a field pattern ASCII-only, as the schemas' ECMA-262 patterns are."""
    return re.compile(regex, re.ASCII)


def is_number(value: object) -> bool:
    """A JSON number (booleans are not numbers here, unlike in Python)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_int(value: object) -> bool:
    """A JSON integer: after canonical decoding an integral number is always an int."""
    return isinstance(value, int) and not isinstance(value, bool)


class Checker:
    """Collects problems for one document; ``where`` prefixes every field name."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.problems: list[Problem] = []

    def bad(self, key: str, reason: str) -> None:
        """Record a problem with this field."""
        self.problems.append(Problem(f"{self.where}: {key}" if key else self.where, reason))

    def obj(
        self,
        value: object,
        key: str,
        required: Sequence[str] = (),
        optional: Sequence[str] = (),
        closed: bool = True,
    ) -> Mapping[str, Any] | None:
        """``value`` if it is an object with every required key (and, when closed, no others)."""
        if not isinstance(value, Mapping):
            self.bad(key, "must be an object")
            return None
        ok = True
        for name in required:
            if name not in value:
                self.bad(f"{key}.{name}" if key else name, "is required")
                ok = False
        if closed:
            for name in sorted(set(value) - set(required) - set(optional)):
                self.bad(f"{key}.{name}" if key else name, "is not a known field")
                ok = False
        return value if ok else None

    def string(self, value: object, key: str, regex: re.Pattern[str] | None = None, reason: str = "") -> str | None:
        """The value if it is a string matching ``regex``; else record why not."""
        if not isinstance(value, str):
            self.bad(key, reason or "must be a string")
            return None
        if regex is not None and not regex.fullmatch(value):
            self.bad(key, reason or f"must match {regex.pattern}")
            return None
        return value

    def integer(self, value: object, key: str, minimum: int | None = None) -> int | None:
        """The value if it is an integer at least ``minimum``; else record why not."""
        if not is_int(value) or (minimum is not None and value < minimum):  # type: ignore[operator]
            self.bad(key, "must be an integer" + (f" >= {minimum}" if minimum is not None else ""))
            return None
        assert isinstance(value, int)
        return value

    def number(self, value: object, key: str, minimum: float | None = None) -> float | None:
        """The value if it is a number at least ``minimum``; else record why not."""
        if not is_number(value) or (minimum is not None and value < minimum):  # type: ignore[operator]
            self.bad(key, "must be a number" + (f" >= {minimum:g}" if minimum is not None else ""))
            return None
        assert isinstance(value, (int, float))
        return value

    def boolean(self, value: object, key: str) -> bool | None:
        """The value if it is a boolean; else record why not."""
        if not isinstance(value, bool):
            self.bad(key, "must be true or false")
            return None
        return value

    def array(
        self, value: object, key: str, min_items: int = 0, max_items: int | None = None, unique: bool = False
    ) -> list[Any] | None:
        """The value if it is a list within the bounds (and unique if asked); else record why not."""
        if not isinstance(value, list):
            self.bad(key, "must be a list")
            return None
        if len(value) < min_items or (max_items is not None and len(value) > max_items):
            bounds = f"at least {min_items}" if max_items is None else f"{min_items} to {max_items}"
            self.bad(key, f"must hold {bounds} items")
            return None
        if unique and len(set(map(_key, value))) != len(value):
            self.bad(key, "must not repeat an item")
            return None
        return value

    def enum(self, value: object, key: str, allowed: Sequence[Any]) -> Any:
        """The value if it is one of ``allowed`` (type included); else record why not."""
        if isinstance(value, bool) or not any(value == a and type(value) is type(a) for a in allowed):
            self.bad(key, f"must be one of {list(allowed)!r}")
            return None
        return value

    def each(self, value: object, key: str, check: Any) -> None:
        """``check(item, key)`` for each value of an object (``key.name``) or list (``key[i]``)."""
        if isinstance(value, Mapping):
            for name, item in value.items():
                check(item, f"{key}.{name}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                check(item, f"{key}[{i}]")


def _key(value: Any) -> Any:
    """Hashable identity for uniqueness, as JSON Schema compares (1 == 1.0, true != 1)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, list):
        return ("array", tuple(_key(v) for v in value))
    if isinstance(value, Mapping):
        return ("object", tuple(sorted((k, _key(v)) for k, v in value.items())))
    return (type(value).__name__, value)


__all__ = ["ONE_LINE", "Checker", "is_int", "is_number", "pattern"]
