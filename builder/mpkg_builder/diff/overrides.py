"""A project's re-levelled diff rules: the ``[diff.rules]`` table of mpkg.toml or of ``--rules FILE``.

Every problem in the table is reported at once, each naming the key and, for a mistyped
rule id, the closest real one.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mpkg.errors import Problem, SourceError

from .rules import RULES, Bump, RuleSet

_LEVELS = ("major", "minor", "patch")


def parse_overrides(table: object, where: str) -> RuleSet:
    """Parse a ``[diff.rules]`` table (``rule-id = "major"|"minor"|"patch"``), all problems at once.

    ``none`` is not a level: two different packages are never the same release.
    """
    if not isinstance(table, Mapping):
        raise SourceError('must be a table of rule-id = "major" | "minor" | "patch"', where)
    problems: list[Problem] = []
    out: dict[str, Bump] = {}
    for key, value in table.items():
        if key not in RULES:
            close = difflib.get_close_matches(key, RULES, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            problems.append(
                Problem(f"{where}.{key}", f"{key!r} is not a diff rule; {hint}(rule ids: spec/semver.md §8)")
            )
        elif not isinstance(value, str) or value.lower() not in _LEVELS:
            problems.append(Problem(f"{where}.{key}", f"must be one of {', '.join(_LEVELS)}, not {value!r}"))
        else:
            out[key] = Bump.parse(value)
    if problems:
        raise SourceError(problems)
    return RuleSet(out)


def load_rules(path: str | Path) -> RuleSet:
    """Overrides from a TOML file's ``[diff.rules]`` table (e.g. mpkg.toml); the rest is ignored."""
    where = str(path)
    try:
        doc: dict[str, Any] = tomllib.loads(Path(path).read_bytes().decode("utf-8"))
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", where) from None
    except UnicodeDecodeError:
        raise SourceError("is not UTF-8 text", where) from None
    except tomllib.TOMLDecodeError as exc:
        raise SourceError(f"is not valid TOML: {exc}", where) from None
    diff = doc.get("diff", {})
    if not isinstance(diff, Mapping):
        raise SourceError("must be a table", f"{where}: [diff]")
    unknown = sorted(set(diff) - {"rules"})
    if unknown:
        raise SourceError(f"unknown keys {unknown}; only [diff.rules] is read", f"{where}: [diff]")
    return parse_overrides(diff.get("rules", {}), f"{where}: [diff.rules]")


__all__ = ["load_rules", "parse_overrides"]
