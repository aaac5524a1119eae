"""Aliases: the movable names a repository's versions are promoted to (spec/registry.md §3).

``staging`` and ``production`` are two aliases every repository has; any other name that fits
the grammar below (``champion``, ``challenger``, ``canary``, ``eu-production``) becomes one the
first time a version is promoted to it, with the same history, gates, rollback and archiving.

    ALIAS := [a-z][a-z0-9]* ("-" [a-z][a-z0-9]*)*      at most 63 characters

Every hyphen-separated part starts with a letter, so a gate such as ``f1>=canary-0.005``
reads one way only, and no alias looks like a version (``1.0.0``, ``v2``). Reserved: the
``archived-`` prefix (archive tags), ``inf``/``nan``/``infinity`` (numbers in the gate
grammar). Event tags (``_mpkg-event-…``) cannot fit the grammar. A tag pushed with ``mpkg
push`` is immutable, so a name the history records as a pushed tag is no alias (and the
reverse): one name, one meaning.

This module depends only on the reference grammar, so the read side (pull of an alias) can use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mpkg.errors import UsageError

from .refs import STAGES

ALIAS_PATTERN = r"[a-z][a-z0-9]*(?:-[a-z][a-z0-9]*)*"
_ALIAS = re.compile(rf"^{ALIAS_PATTERN}\Z", re.ASCII)
_VERSION_LIKE = re.compile(r"^v[0-9]", re.ASCII)
MAX_ALIAS = 63
ARCHIVE_PREFIX = "archived-"
RESERVED = frozenset({"inf", "nan", "infinity"})
UNARCHIVED = frozenset({"staging"})  # a replaced staging holder is not kept as archived-…


def alias_problem(name: str) -> str | None:
    """Why ``name`` cannot be an alias, or None if it can."""
    if not _ALIAS.match(name) or len(name) > MAX_ALIAS:
        return (
            f"{name!r} is not an alias: lowercase letters and digits, parts joined by single '-', each part "
            f"starting with a letter, at most {MAX_ALIAS} characters (e.g. champion, eu-production)"
        )
    if _VERSION_LIKE.match(name):
        return f"{name!r} looks like a version; aliases name roles (champion, canary), versions are tags already"
    if name.startswith(ARCHIVE_PREFIX) or name in RESERVED:
        return f"{name!r} is reserved (archive tags start with {ARCHIVE_PREFIX!r}; inf and nan are gate numbers)"
    return None


def is_alias(name: object) -> bool:
    """Whether ``name`` fits the alias grammar (what a history event's ``stage`` may be)."""
    return isinstance(name, str) and alias_problem(name) is None


def check_alias(name: str, where: str = "--to") -> str:
    """``name`` if it can be an alias, else a UsageError saying why."""
    problem = alias_problem(name)
    if problem is not None:
        raise UsageError(problem, where)
    return name


def archives(alias: str) -> bool:
    """Whether a move of ``alias`` keeps the replaced holder reachable as ``archived-…`` (all but staging)."""
    return alias not in UNARCHIVED


def known_aliases(stages: Iterable[str | None]) -> tuple[str, ...]:
    """The fixed stages, then every other alias among ``stages`` (the ``stage`` of each move), sorted."""
    found = {s for s in stages if s is not None and is_alias(s)}
    return STAGES + tuple(sorted(found - set(STAGES)))
