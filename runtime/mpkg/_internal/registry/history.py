"""The append-only, hash-linked, signed history of a repository, kept in the store itself: reading it.

Each event (push, promote, rollback, void, delete) is its own OCI artifact: layer 0 is the
canonical event JSON, layer 1 (when the actor gave ``--key``) a DSSE envelope signing exactly
those bytes, parsed by the same strict envelope code as package signatures. Each event has its
own tag ``_mpkg-event-<seq>-<digest hex>``, so no writer can overwrite another's event
(registries have no compare-and-swap on tags), and the tag names the event's digest, so a
reader fetches (and may cache) events by digest. Each event names the events it saw as newest
(``parents``): a hash-linked DAG. Concurrent writers fork it; the next writer joins the fork
again. Deleting an interior event breaks a link and is reported. What a command may trust of
all this is decided in :mod:`.trust`; the builder writes events (``mpkg_builder.registry.record``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from mpkg._internal.format import canonical
from mpkg._internal.trust.signatures import Envelope, TrustedKey, check_envelope
from mpkg.errors import MpkgError

from .aliases import is_alias
from .refs import is_digest, is_tag
from .store import DSSE_LAYER_TYPE, EVENT_ARTIFACT_TYPE, EVENT_LAYER_TYPE, Manifest, Store, check_depth

EVENT_TAG_PREFIX = "_mpkg-event-"
EVENT_SCHEMA = "dev.mpkg.event.v1"
ACTIONS = ("push", "promote", "rollback", "void", "delete")
MOVES = ("promote", "rollback")
OVERRIDES = ("allow-major", "allow-downgrade")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# sequence, then the full digest (or, in tags older mpkg wrote, its first 12 hex digits)
_EVENT_TAG = re.compile(rf"^{EVENT_TAG_PREFIX}([0-9]{{8}})-([0-9a-f]{{64}}|[0-9a-f]{{12}})\Z", re.ASCII)


@dataclass(frozen=True)
class PackageRef:
    """What an event points at: the OCI manifest and the package it carries."""

    manifest: str
    package: str
    name: str
    version: str
    blob: str
    size: int

    def to_json(self) -> dict[str, Any]:
        """The JSON form stored in history events."""
        return {
            "manifest": self.manifest,
            "package": self.package,
            "name": self.name,
            "version": self.version,
            "blob": self.blob,
            "size": self.size,
        }

    @classmethod
    def from_json(cls, obj: Any) -> PackageRef | None:
        """Read a reference from an event strictly; None for a malformed one."""
        if obj is None:
            return None
        if not isinstance(obj, Mapping):
            raise ValueError("package reference is not an object")
        values = [obj.get(k) for k in ("manifest", "package", "name", "version", "blob")]
        strings = [v for v in values if isinstance(v, str)]
        size = obj.get("size")
        if len(strings) != 5 or not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError("package reference lacks manifest/package/name/version/blob/size")
        if not all(is_digest(d) for d in (strings[0], strings[1], strings[4])):
            raise ValueError("package reference has a malformed digest")
        return cls(strings[0], strings[1], strings[2], strings[3], strings[4], size)


@dataclass(frozen=True)
class Event:
    """One history event: who moved what where, linked to its parents."""

    repository: str
    sequence: int
    parents: tuple[str, ...]
    action: str
    time: str
    user: str
    key: str | None = None  # key id of the signer, when signed
    stage: str | None = None
    source: PackageRef | None = None  # "from": the holder the move replaced
    target: PackageRef | None = None  # "to"
    voids: str | None = None  # for "void": the event it cancels
    notes: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()  # promotion checks the actor chose to skip (--allow-major, ...)
    tag: str | None = None  # for "push": the tag the package was pushed under

    @property
    def when(self) -> dt.datetime:
        """The event's time as an aware datetime."""
        return dt.datetime.strptime(self.time, TIME_FORMAT).replace(tzinfo=dt.UTC)

    def to_json(self) -> dict[str, Any]:
        """The event document that is signed and stored."""
        doc = {
            "schema": EVENT_SCHEMA,
            "repository": self.repository,
            "sequence": self.sequence,
            "parents": list(self.parents),
            "action": self.action,
            "time": self.time,
            "who": {"user": self.user, "key": self.key},
            "stage": self.stage,
            "from": self.source.to_json() if self.source else None,
            "to": self.target.to_json() if self.target else None,
            "voids": self.voids,
            "notes": list(self.notes),
        }
        if self.overrides:  # optional fields are absent when unused
            doc["overrides"] = list(self.overrides)
        if self.tag is not None:
            doc["tag"] = self.tag
        return doc

    @classmethod
    def from_json(cls, obj: Any) -> Event:
        """Read an event strictly: every field of the type the spec says, nothing coerced."""
        if not isinstance(obj, Mapping) or obj.get("schema") != EVENT_SCHEMA:
            raise ValueError(f"not a {EVENT_SCHEMA} object")
        who, parents, sequence = obj.get("who"), obj.get("parents"), obj.get("sequence")
        if (
            not isinstance(obj.get("repository"), str)
            or not isinstance(sequence, int)
            or isinstance(sequence, bool)
            or sequence < 0
            or not isinstance(parents, list)
            or not all(isinstance(p, str) and is_digest(p) for p in parents)
            or obj.get("action") not in ACTIONS
            or not isinstance(obj.get("time"), str)
            or not isinstance(who, Mapping)
            or not isinstance(who.get("user"), str)
        ):
            raise ValueError("lacks repository/sequence/parents/action/time/who, or one has the wrong type")
        key, stage, voids, tag = who.get("key"), obj.get("stage"), obj.get("voids"), obj.get("tag")
        notes, overrides = obj.get("notes", []), obj.get("overrides", [])
        if (
            not (tag is None or (isinstance(tag, str) and is_tag(tag)))
            or not (key is None or isinstance(key, str))
            or not (stage is None or is_alias(stage))
            or not (voids is None or (isinstance(voids, str) and is_digest(voids)))
            or not isinstance(notes, list)
            or not all(isinstance(n, str) for n in notes)
            or not isinstance(overrides, list)
            or not all(o in OVERRIDES for o in overrides)
        ):
            raise ValueError("has a malformed who.key, stage, voids, notes, overrides or tag")
        event = cls(
            obj["repository"],
            sequence,
            tuple(parents),
            obj["action"],
            obj["time"],
            who["user"],
            key,
            stage,
            PackageRef.from_json(obj.get("from")),
            PackageRef.from_json(obj.get("to")),
            voids,
            tuple(notes),
            tuple(overrides),
            tag,
        )
        event.when  # noqa: B018 - validates the time format
        return event


@dataclass(frozen=True)
class RecordedEvent:
    """An event as read back: its manifest digest and what its signature proves."""

    digest: str
    event: Event
    signature: str  # "none", "verified", "untrusted" (no trusted key signed it), "invalid"
    signer: str | None = None
    reason: str = ""  # why the signature is not "verified", for messages

    @property
    def label(self) -> str:
        """How messages name this event: its sequence and the start of its digest."""
        return f"history event {self.event.sequence} ({self.digest[:19]})"

    def to_json(self) -> dict[str, Any]:
        """The event with its digest and signature status, for --json."""
        return {**self.event.to_json(), "digest": self.digest, "signature": self.signature, "signer": self.signer}


def now_text() -> str:
    """Now, as events and marks record time (UTC, microseconds)."""
    return dt.datetime.now(dt.UTC).strftime(TIME_FORMAT)


# --- reading ----------------------------------------------------------------------------


class ContentCache(Protocol):
    """Immutable bytes by sha256 digest, kept by the client (events never change once written)."""

    def get(self, digest: str) -> bytes | None: ...

    def put(self, digest: str, data: bytes) -> None: ...


class _Reader:
    """Fetches an event's pieces by digest, through the cache when there is one."""

    def __init__(self, backend: Store, repo: str, cache: ContentCache | None) -> None:
        self.backend, self.repo, self.cache = backend, repo, cache

    def manifest(self, tag: str, digest_or_prefix: str) -> tuple[bytes, str]:
        if len(digest_or_prefix) == 64:
            digest = "sha256:" + digest_or_prefix
            data = self.cache.get(digest) if self.cache else None
            if data is None:
                found = self.backend.get_manifest(self.repo, digest)
                if found is None:
                    raise ValueError("names an event that is not in the repository")
                data = found.data
                if self.cache:
                    self.cache.put(digest, data)
            return data, digest
        found = self.backend.get_manifest(self.repo, tag)  # an older tag: resolve it, check the prefix
        if found is None or not found.digest.startswith("sha256:" + digest_or_prefix):
            raise ValueError("its tag does not match its digest")
        return found.data, found.digest

    def blob(self, descriptor: Any) -> bytes:
        if not isinstance(descriptor, Mapping) or not isinstance(descriptor.get("digest"), str):
            raise ValueError("has a malformed layer descriptor")
        digest = descriptor["digest"]
        if not is_digest(digest):
            raise ValueError("has a layer with a malformed digest")
        data = self.cache.get(digest) if self.cache else None
        if data is None:
            data = self.backend.fetch_blob_bytes(self.repo, digest)
            if self.cache:
                self.cache.put(digest, data)
        return data


def _json(data: bytes, where: str) -> Any:
    """Canonical JSON (the only form mpkg writes), nested no deeper than registry JSON may be."""
    check_depth(data, where)
    return canonical.loads_canonical(data, where)


def _signature(
    envelope: bytes, payload: bytes, claimed: str | None, trusted: Sequence[TrustedKey]
) -> tuple[str, str | None, str]:
    """What the envelope proves about ``payload``: (status, signer key id, reason unless verified)."""
    try:
        check_depth(envelope, "its signature envelope")
        env = Envelope.from_bytes(envelope, EVENT_LAYER_TYPE, "its signature envelope")
    except MpkgError as exc:
        return "invalid", None, exc.reasons()[0]
    if env.payload != payload:
        return "invalid", None, "its signature envelope signs other bytes than the event"
    if claimed is not None and claimed not in {s.keyid for s in env.signatures}:
        return "invalid", None, f"it names key {claimed[:16]} as its signer but carries no signature by it"
    checks = check_envelope(env, trusted, message_ok=True)
    bad = [c for c in checks if c.trusted and not c.valid]
    if bad:
        return "invalid", bad[0].keyid, f"{bad[0].reason}: the event was altered"
    good = [c for c in checks if c.valid]
    if good:
        return "verified", good[0].keyid, ""
    first = env.signatures[0].keyid
    return "untrusted", first, f"it is signed by key {first[:16]}, which is not trusted here"


def _read_one(reader: _Reader, tag: str, trusted: Sequence[TrustedKey]) -> RecordedEvent:
    m = _EVENT_TAG.match(tag)
    if not m:
        raise ValueError("is not an mpkg event tag (_mpkg-event-SEQUENCE-DIGEST)")
    data, digest = reader.manifest(tag, m.group(2))
    doc = Manifest(data, digest).json()  # content-addressed: any JSON form will do
    layers = doc.get("layers")
    if doc.get("artifactType") != EVENT_ARTIFACT_TYPE or not isinstance(layers, list) or not 1 <= len(layers) <= 2:
        raise ValueError("is not an mpkg event artifact")
    types = [layer.get("mediaType") if isinstance(layer, Mapping) else None for layer in layers]
    if types not in ([EVENT_LAYER_TYPE], [EVENT_LAYER_TYPE, DSSE_LAYER_TYPE]):
        raise ValueError("does not hold one event layer and at most one signature layer")
    payload = reader.blob(layers[0])
    event = Event.from_json(_json(payload, "its event"))
    if int(m.group(1)) != event.sequence:
        raise ValueError(f"its tag says sequence {int(m.group(1))}, the event {event.sequence}")
    if len(layers) == 1:
        return RecordedEvent(digest, event, "none", None, "it is not signed")
    status, signer, reason = _signature(reader.blob(layers[1]), payload, event.key, trusted)
    return RecordedEvent(digest, event, status, signer, reason)


def read_events(
    backend: Store, repo: str, trusted: Sequence[TrustedKey] = (), cache: ContentCache | None = None
) -> tuple[list[RecordedEvent], list[str]]:
    """Every event of ``repo`` (ordered by sequence, time, digest) and what is wrong with them.

    Signatures are checked against ``trusted``; whether an unsigned or untrusted event is a
    problem is the caller's policy (:mod:`.trust`). ``cache`` keeps event bytes by digest, so a
    client reads each event from a registry once.
    """
    problems: list[str] = []
    seen: dict[str, RecordedEvent] = {}
    reader = _Reader(backend, repo, cache)
    for tag in backend.list_tags(repo):
        if not tag.startswith(EVENT_TAG_PREFIX):
            continue
        try:
            recorded = _read_one(reader, tag, trusted)
        except (ValueError, MpkgError) as exc:
            reason = exc.reasons()[0] if isinstance(exc, MpkgError) else str(exc)
            problems.append(f"history event tag {tag[:33]}...: {reason}; the history was tampered with")
            continue
        if recorded.event.repository != repo:
            problems.append(f"{recorded.label}: belongs to repository {recorded.event.repository!r}, copied here")
            continue
        seen[recorded.digest] = recorded
    events = sorted(seen.values(), key=lambda r: (r.event.sequence, r.event.time, r.digest))
    problems.extend(check_chain(events))
    return events, problems


def check_chain(events: Sequence[RecordedEvent]) -> list[str]:
    """The links: every parent exists, each sequence is one more than its parents' largest, and
    events without parents (the first, or concurrent first writers) have sequence 0."""
    by_digest = {r.digest: r for r in events}
    problems = []
    for r in events:
        if not r.event.parents and r.event.sequence != 0:
            problems.append(f"{r.label}: has no parents but sequence {r.event.sequence}; the history was tampered with")
        for parent in r.event.parents:
            if parent not in by_digest:
                problems.append(f"{r.label}: links to {parent[:19]}, which is missing: an event was deleted")
        expected = 1 + max((by_digest[p].event.sequence for p in r.event.parents if p in by_digest), default=-1)
        if r.event.parents and all(p in by_digest for p in r.event.parents) and r.event.sequence != expected:
            problems.append(f"{r.label}: has sequence {r.event.sequence}, expected {expected}")
    return problems


def tips(events: Iterable[RecordedEvent]) -> tuple[str, ...]:
    """Events nobody links to yet: what the next event names as its parents."""
    events = list(events)
    linked = {p for r in events for p in r.event.parents}
    return tuple(sorted(r.digest for r in events if r.digest not in linked))


def next_sequence(events: Sequence[RecordedEvent], parents: Iterable[str]) -> int:
    """The sequence number the next event after ``parents`` carries."""
    by_digest = {r.digest: r for r in events}
    return 1 + max((by_digest[p].event.sequence for p in parents if p in by_digest), default=-1)


def ancestors(
    events: Sequence[RecordedEvent], digest: str, by_digest: Mapping[str, RecordedEvent] | None = None
) -> set[str]:
    """Every event ``digest`` descends from (pass ``by_digest`` when asking for many)."""
    index = by_digest if by_digest is not None else {r.digest: r for r in events}
    out: set[str] = set()
    stack = list(index[digest].event.parents) if digest in index else []
    while stack:
        d = stack.pop()
        if d in out:
            continue
        out.add(d)
        if d in index:
            stack.extend(index[d].event.parents)
    return out


def descendants(events: Sequence[RecordedEvent], digest: str) -> set[str]:
    """Every event that descends from ``digest``: one pass, as sequence order is topological."""
    out = {digest}
    for r in sorted(events, key=lambda r: r.event.sequence):
        if any(p in out for p in r.event.parents):
            out.add(r.digest)
    out.discard(digest)
    return out


def voided(events: Iterable[RecordedEvent]) -> set[str]:
    """Digests of events a later rollback voided."""
    return {r.event.voids for r in events if r.event.action == "void" and r.event.voids}


def concurrent_moves(events: Sequence[RecordedEvent]) -> set[str]:
    """Moves of one stage where neither knew of the other and neither was voided."""
    dead = voided(events)
    moves = [r for r in events if r.event.action in MOVES and r.digest not in dead]
    out: set[str] = set()
    index = {r.digest: r for r in events}
    anc = {r.digest: ancestors(events, r.digest, index) for r in moves}
    for i, a in enumerate(moves):
        for b in moves[i + 1 :]:
            if a.event.stage != b.event.stage:
                continue
            if a.digest not in anc[b.digest] and b.digest not in anc[a.digest]:
                out.update((a.digest, b.digest))
    return out
