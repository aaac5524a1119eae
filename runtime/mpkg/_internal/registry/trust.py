"""What a command may believe of a repository's history: one reader, one policy, for every command.

Every command that reads the history (push, promote, rollback, gc, history, pull of a stage)
reads it through :func:`load_history` under a :class:`HistoryPolicy`, and acts only on a
history without problems (:meth:`History.require_ok`):

- **With trusted keys** (``--key``/``--trust`` PUB or ``MPKG_KEYS``) every event must carry a
  valid signature by one of them. An unsigned, untrusted or altered event is a problem that
  names it; nothing is skipped silently (fail closed).
- **Without keys** the history is *unauthenticated* (:data:`UNAUTHENTICATED` for library
  callers; the CLI says so on every such command): anyone who can write to the registry can
  add events. The links, the high-water mark and a pinned head are still checked.
- In both cases a history shorter than, or forked from, the head this client accepted before
  (:mod:`.seen`), or lacking a head pinned with ``--since-head``, is a problem. An accepted
  history moves the mark forward.

Stage tags are only a cache of the history: :func:`stage_state` compares what the tag names
with what the newest move recorded, so a re-pointed tag is seen for what it is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mpkg._internal.trust.signatures import TrustedKey, load_public_keys
from mpkg.errors import Problem, RegistryError, UsageError

from .aliases import is_alias
from .artifact import check_identity, package_ref, resolve
from .cache import DiskCache
from .history import MOVES, ContentCache, PackageRef, RecordedEvent, ancestors, next_sequence, read_events, tips, voided
from .local import LOCAL_ORIGIN
from .refs import STAGES, Reference
from .seen import SeenHeads
from .store import Manifest, Store


class KeyHolder(Protocol):
    """Whatever signs events for a command: only its key id matters to the policy."""

    @property
    def keyid(self) -> str:
        """The signing key's id."""
        ...


@dataclass(frozen=True)
class HistoryPolicy:
    """Which keys sign the history, what this client remembers, and an optional pinned head."""

    keys: tuple[TrustedKey, ...] = ()
    seen: SeenHeads | None = None  # high-water marks; None: remember nothing (library default)
    cache: ContentCache | None = None  # event bytes by digest; None: fetch every event
    since_head: str | None = None  # an event digest the history must still contain (pinned by CI)

    @property
    def authenticated(self) -> bool:
        """Whether events must be signed by a trusted key."""
        return bool(self.keys)

    def check_signer(self, signer: KeyHolder | None) -> None:
        """With trusted keys, every event must verify, so the events this client writes too:
        refuse up front to write one that every keyed client would then refuse."""
        if self.authenticated and (signer is None or signer.keyid not in {k.keyid for k in self.keys}):
            raise UsageError(
                "the history is checked against trusted keys, so the events written must be signed by one "
                "of them: pass --key NAME.key whose NAME.pub is trusted",
                "--key",
            )

    @classmethod
    def for_client(
        cls, key_paths: Sequence[str | os.PathLike[str]], *, home: Path, since_head: str | None = None
    ) -> HistoryPolicy:
        """What the CLI uses: trusted keys from paths, marks and cache in ``home`` (MPKG_HOME)."""
        return cls(load_public_keys(key_paths), SeenHeads(home), DiskCache(home), since_head)


STAGE_RETRY_SECONDS = 0.5  # a stage move in flight (event written, tag not yet moved) settles in this
UNAUTHENTICATED = HistoryPolicy()  # no keys, no memory: the history is taken as the registry shows it

UNAUTHENTICATED_WARNING = (
    "warning: the history of {name} is unauthenticated (no trusted keys: pass --key/--trust PUB or "
    "set MPKG_KEYS); anyone who can write to the registry can rewrite it"
)


@dataclass(frozen=True)
class History:
    """A repository's history as read under a policy, with everything wrong with it."""

    repository: str
    origin: str
    events: tuple[RecordedEvent, ...]
    problems: tuple[str, ...]
    authenticated: bool

    @property
    def ok(self) -> bool:
        """Whether the history was read without problems."""
        return not self.problems

    @property
    def head(self) -> tuple[str, ...]:
        """The tips: what a next event names as its parents, and what ``--since-head`` pins."""
        return tips(self.events)

    @property
    def next_sequence(self) -> int:
        """The sequence number the next event carries."""
        return next_sequence(self.events, self.head)

    def require_ok(self, where: str) -> None:
        """Refuse to act on a history with problems: each one line, naming the event."""
        if self.problems:
            raise RegistryError([Problem(where, p) for p in self.problems])

    def latest_moves(self, stage: str) -> tuple[RecordedEvent, ...]:
        """The unvoided moves of ``stage`` no later move of it knew of: one, or several that raced."""
        dead = voided(self.events)
        moves = [
            r
            for r in self.events
            if r.event.action in MOVES and r.event.stage == stage and r.digest not in dead and r.event.target
        ]
        index = {r.digest: r for r in self.events}
        latest: list[RecordedEvent] = []
        covered: set[str] = set()  # ancestors of the latest moves found so far (newest first)
        for r in sorted(moves, key=lambda r: r.event.sequence, reverse=True):
            if r.digest not in covered:
                latest.append(r)
                covered |= ancestors(self.events, r.digest, index)
        return tuple(sorted(latest, key=lambda r: (r.event.sequence, r.event.time, r.digest)))


def load_history(backend: Store, repo: str, policy: HistoryPolicy = UNAUTHENTICATED) -> History:
    """Read and check the history of ``repo``; an accepted one advances the high-water mark."""
    cache = None if backend.origin == LOCAL_ORIGIN else policy.cache  # the local store is no farther than a cache
    events, problems = read_events(backend, repo, policy.keys, cache)
    for r in events:
        if r.signature == "invalid" or (policy.authenticated and r.signature != "verified"):
            suffix = "; with trusted keys every event must carry a valid signature by one of them"
            problems.append(f"{r.label}: {r.reason}" + (suffix if r.signature != "invalid" else ""))
    if policy.seen is not None:
        problems.extend(policy.seen.check(backend.origin, repo, events))
    if policy.since_head is not None and policy.since_head not in {r.digest for r in events}:
        problems.append(
            f"the pinned head {policy.since_head} is not in the history: it was truncated or rewritten "
            "(rollback or freeze), or the pin names another repository"
        )
    history = History(repo, backend.origin, tuple(events), tuple(problems), policy.authenticated)
    if history.ok and policy.seen is not None:
        policy.seen.advance(backend.origin, repo, events)
    return history


@dataclass(frozen=True)
class StageState:
    """A stage as its tag shows it and as the history recorded it."""

    stage: str
    tag: PackageRef | None
    tag_manifest: Manifest | None
    recorded: tuple[RecordedEvent, ...]  # the latest moves (several only when moves raced)

    @property
    def holder(self) -> PackageRef | None:
        """The holder to reason about: the recorded one (the one the tag names if moves raced);
        the tag's only when the history never moved this stage."""
        if not self.recorded:
            return self.tag
        targets = [r.event.target for r in self.recorded if r.event.target]
        named = [t for t in targets if self.tag is not None and t.manifest == self.tag.manifest]
        return (named or targets)[-1]

    def mismatch(self, name: str) -> str | None:
        """Why the tag disagrees with the history (re-pointed, set or deleted outside mpkg), or None."""
        where = f"{name}:{self.stage}"
        if not self.recorded:
            if self.tag is None:
                return None
            return (
                f"{where} names {self.tag.version} ({self.tag.manifest[:19]}) but the history records no move "
                f"to {self.stage}: the tag was set outside mpkg"
            )
        newest = self.recorded[-1]
        target = newest.event.target
        assert target is not None  # latest_moves keeps moves with a target
        if self.tag is None:
            return (
                f"{where} is gone but {newest.label} put {target.version} ({target.manifest[:19]}) there: "
                "the tag was deleted outside mpkg"
            )
        if any(r.event.target and r.event.target.manifest == self.tag.manifest for r in self.recorded):
            return None
        return (
            f"{where} names {self.tag.version} ({self.tag.manifest[:19]}) but {newest.label} put "
            f"{target.version} ({target.manifest[:19]}) there: the tag was re-pointed outside mpkg "
            "(rollback or mix-and-match); promote the version you want to repair it"
        )


@dataclass(frozen=True)
class RepositoryState:
    """The stage tags, then the history: what every command that reasons about stages reads."""

    history: History
    stages: dict[str, StageState]


def load_state(
    backend: Store, repo: str, policy: HistoryPolicy = UNAUTHENTICATED, stages: Sequence[str] = STAGES
) -> RepositoryState:
    """Read the stage tags *first*, then the history: events are written before tags move, so a
    tag naming a move whose event is not read yet cannot happen (spec/registry.md §7)."""
    tags = {}
    for stage in stages:
        manifest = backend.get_manifest(repo, stage)
        tags[stage] = (manifest, package_ref(manifest, f"{repo}:{stage}") if manifest else None)
    history = load_history(backend, repo, policy)
    states = {
        stage: StageState(stage, ref, manifest, history.latest_moves(stage)) for stage, (manifest, ref) in tags.items()
    }
    return RepositoryState(history, states)


def resolve_trusted(
    backend: Store, ref: Reference, policy: HistoryPolicy = UNAUTHENTICATED
) -> tuple[Manifest, PackageRef]:
    """The artifact ``ref`` names, if it is what ``ref`` asks for: the repository's package, the
    version a version tag names, and for a stage exactly what the history's newest move put there
    (read under ``policy``; a history with problems is refused). What pull and promote act on."""
    stage = ref.tag if ref.digest is None and is_alias(ref.tag) else None
    if stage is None:
        return resolve(backend, ref)
    for attempt in range(2):
        state = load_state(backend, ref.repository, policy, (stage,))
        state.history.require_ok(ref.name)
        current = state.stages[stage]
        if stage not in STAGES and not current.recorded:
            return resolve(backend, ref)  # no move ever named it: a pushed tag, not an alias
        problem = current.mismatch(ref.name)
        if problem is None:
            break
        if attempt == 0:  # a move in flight: its event is written, its tag is about to move
            time.sleep(STAGE_RETRY_SECONDS)
    if problem is not None:
        raise RegistryError(f"{problem}; refusing it")  # the problem names the stage
    if current.tag is None or current.tag_manifest is None:
        raise RegistryError(f"{stage} has no holder in {backend.describe()}", str(ref))
    check_identity(ref, current.tag.name, current.tag.version, verified=False)
    return current.tag_manifest, current.tag
