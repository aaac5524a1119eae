"""High-water marks: the newest history head this client accepted, per registry and repository.

TUF clients keep the newest metadata version they have seen so that a repository can never
show them an older state again (rollback, freeze). The history here is a hash-linked DAG, so
the mark is the set of tips of the last history this client accepted: every later view must
still hold them (their ancestors are checked by the links). A view that lacks them is shorter
than what was seen (events deleted: truncation, or an old copy: freeze) or forks from it (a
rewritten history). Marks only move forward, also with several clients at once: a client that
read an older view than the one recorded meanwhile leaves the newer mark alone.

Layout (``MPKG_HOME``, default ``~/.cache/mpkg``)::

    history/<origin>/<repository>/_head.json   the mark (origin: registry host[:port], or _local)
    history/<origin>/<repository>/_lock        flock(2) around read-compare-write

Repository components never start with ``_``, so these names cannot clash with a repository.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpkg._internal.format.canonical import dumps as canonical_json
from mpkg._internal.io.atomic import atomic_output
from mpkg.errors import MpkgError, RegistryError

from .history import RecordedEvent, now_text, tips
from .refs import is_digest

HEAD_SCHEMA = "dev.mpkg.history-head.v1"
HEAD_FILE = "_head.json"
_MAX_HEAD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Head:
    """What a client saw last: the tips of the history, its newest sequence and size, and when."""

    origin: str
    repository: str
    tips: tuple[str, ...]
    sequence: int
    events: int
    seen: str

    def to_json(self) -> dict[str, Any]:
        """The high-water mark as stored."""
        return {
            "schema": HEAD_SCHEMA,
            "registry": self.origin,
            "repository": self.repository,
            "tips": list(self.tips),
            "sequence": self.sequence,
            "events": self.events,
            "seen": self.seen,
        }

    @classmethod
    def of(cls, origin: str, repository: str, events: Sequence[RecordedEvent]) -> Head:
        """The mark for a history as just read."""
        return cls(
            origin,
            repository,
            tips(events),
            max((r.event.sequence for r in events), default=-1),
            len(events),
            now_text(),
        )


class SeenHeads:
    """The marks of one client (one ``MPKG_HOME``)."""

    def __init__(self, home: Path) -> None:
        self.root = home / "history"

    def _dir(self, origin: str, repository: str) -> Path:
        return self.root / origin / repository

    def path(self, origin: str, repository: str) -> Path:
        """Where the mark for one registry and repository is kept."""
        return self._dir(origin, repository) / HEAD_FILE

    def load(self, origin: str, repository: str) -> Head | None:
        """The mark seen last for a registry and repository, or None."""
        path = self.path(origin, repository)
        try:
            with path.open("rb") as fh:
                data = fh.read(_MAX_HEAD_BYTES + 1)
        except FileNotFoundError:
            return None
        fix = f"remove it (or run `mpkg history {_name(origin, repository)} --forget-seen`)"
        try:
            doc = json.loads(data)
            head = Head(
                str(doc["registry"]),
                str(doc["repository"]),
                tuple(doc["tips"]),
                int(doc["sequence"]),
                int(doc["events"]),
                str(doc["seen"]),
            )
        except (ValueError, KeyError, TypeError):
            raise RegistryError(f"is not a history head this mpkg wrote; {fix}", str(path)) from None
        if doc.get("schema") != HEAD_SCHEMA or not all(isinstance(t, str) and is_digest(t) for t in head.tips):
            raise RegistryError(f"is not a history head this mpkg wrote; {fix}", str(path))
        return head

    def check(self, origin: str, repository: str, events: Sequence[RecordedEvent]) -> list[str]:
        """Why this view of the history is older than, or forked from, the one seen before."""
        head = self.load(origin, repository)
        if head is None:
            return []
        present = {r.digest for r in events}
        missing = [t for t in head.tips if t not in present]
        if not missing:
            return []
        newest = max((r.event.sequence for r in events), default=-1)
        shorter = newest < head.sequence or len(events) < head.events
        kind = "is shorter than" if shorter else "forks from"
        return [
            f"the history of {_name(origin, repository)} {kind} the one this client saw on {head.seen} "
            f"({head.events} events up to sequence {head.sequence}; event {missing[0][:19]} is gone): a "
            "rollback or freeze attack, or a deliberate reset; if the repository was reset on purpose, run "
            f"`mpkg history {_name(origin, repository)} --forget-seen`"
        ]

    def advance(self, origin: str, repository: str, events: Sequence[RecordedEvent]) -> None:
        """Record this accepted view, unless the mark already holds a view this one does not contain
        (another client recorded a newer one meanwhile): marks never move back. A client that
        cannot write MPKG_HOME (a read-only container) remembers nothing, like a first-time client."""
        if not events:
            return
        with contextlib.suppress(OSError, MpkgError):
            self._advance(origin, repository, events)

    def _advance(self, origin: str, repository: str, events: Sequence[RecordedEvent]) -> None:
        with self._locked(origin, repository):
            current = self.load(origin, repository)
            present = {r.digest for r in events}
            new = Head.of(origin, repository, events)
            if current is not None and (not set(current.tips) <= present or current.tips == new.tips):
                return
            with atomic_output(self.path(origin, repository)) as out:
                out.write(canonical_json(new.to_json()) + b"\n")

    def forget(self, origin: str, repository: str) -> bool:
        """Drop the mark (a deliberate reset); True if there was one."""
        with self._locked(origin, repository):
            existed = self.path(origin, repository).exists()
            self.path(origin, repository).unlink(missing_ok=True)
        return existed

    @contextmanager
    def _locked(self, origin: str, repository: str) -> Iterator[None]:
        directory = self._dir(origin, repository)
        directory.mkdir(parents=True, exist_ok=True)
        with (directory / "_lock").open("a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _name(origin: str, repository: str) -> str:
    """The NAME a user types for this repository."""
    return repository if origin.startswith("_") else f"{origin}/{repository}"
