"""Reading one ``mpkg.toml`` table: typed values, each bad one recorded as a problem, never raised."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from mpkg._internal.format.manifest import MODULE_RE, NAME_RE, SEMVER_RE
from mpkg.errors import ProblemCollector

from .schema import CONFIG_NAME


class TableReader:
    """Typed access to one table that records a problem instead of raising."""

    def __init__(self, table: str, raw: Mapping[str, Any], problems: ProblemCollector) -> None:
        self.table, self.raw, self.problems = table, raw, problems

    def key(self, k: str) -> str:
        """Where a problem with key ``k`` is reported: ``mpkg.toml: [table].k``."""
        return f"{CONFIG_NAME}: [{self.table}].{k}"

    def str_(self, k: str, check: Callable[[str], str | None] | None = None) -> str | None:
        """A string value passing ``check``, or None (absent, or a problem recorded)."""
        if k not in self.raw:
            return None
        v = self.raw[k]
        if not isinstance(v, str):
            self.problems.add(self.key(k), f"must be a string, not {type_name(v)}")
            return None
        if check is not None:
            why = check(v)
            if why:
                self.problems.add(self.key(k), why)
                return None
        return v

    def str_list(self, k: str) -> tuple[str, ...] | None:
        """A list of distinct strings, or None (absent, or a problem recorded)."""
        if k not in self.raw:
            return None
        v = self.raw[k]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            self.problems.add(self.key(k), f"must be a list of strings, not {type_name(v)}")
            return None
        dupes = sorted({x for x in v if v.count(x) > 1})
        if dupes:
            self.problems.add(self.key(k), f"lists {dupes} more than once; name each file once")
            return None
        return tuple(v)

    def tolerance(self, k: str) -> float | None:
        """A finite number >= 0, or None (absent, or a problem recorded)."""
        if k not in self.raw:
            return None
        v = self.raw[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            self.problems.add(self.key(k), f"must be a finite number >= 0, not {v!r}")
            return None
        return float(v)


def type_name(v: object) -> str:
    """A TOML value's type in words, for "must be a string, not a list"."""
    return {
        str: "a string",
        int: "an integer",
        float: "a float",
        bool: "a boolean",
        list: "a list",
        dict: "a table",
    }.get(type(v), type(v).__name__)


def check_name(v: str) -> str | None:
    """Why ``v`` is not a package name, or None."""
    if NAME_RE.match(v):
        return None
    return f"{v!r} is not a package name: use 1-64 lowercase letters, digits and '-', starting with a letter"


def check_description(v: str) -> str | None:
    """Why ``v`` is not a one-line description, or None."""
    return None if v.isprintable() else "must be one line of printable text (no newlines or control characters)"


def check_version(v: str) -> str | None:
    """Why ``v`` is not a SemVer version, or None."""
    if SEMVER_RE.match(v):
        return None
    return f"{v!r} is not a SemVer 2.0.0 version (MAJOR.MINOR.PATCH[-pre][+build], no leading zeros)"


def check_extra(v: str) -> str | None:
    """Why ``v`` is not a ``[contract].extra`` policy, or None."""
    if v in ("refuse", "ignore"):
        return None
    return f"{v!r} is not 'refuse' (the default: inputs the contract does not name are refused) or 'ignore' (dropped)"


def check_module(v: str) -> str | None:
    """Why ``v`` is not a dotted module name, or None."""
    if MODULE_RE.match(v):
        return None
    return f"{v!r} is not a dotted Python module name (e.g. 'pipeline' or 'pkg.predict')"


__all__ = [
    "TableReader",
    "check_description",
    "check_extra",
    "check_module",
    "check_name",
    "check_version",
    "type_name",
]
