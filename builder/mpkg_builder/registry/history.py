"""The append-only, hash-linked, signed history of a repository, kept in the store itself.

Each event (push, promote, rollback, void, delete) is its own OCI artifact: layer 0 is the
canonical event JSON, layer 1 (when the actor gave ``--key``) a DSSE envelope signing exactly
those bytes. Each event has its own tag ``_mpkg-event-<seq>-<hex12>``, so no writer can
overwrite another's event (registries have no compare-and-swap on tags), and names the
events it saw as newest (``parents``): a hash-linked DAG. Concurrent writers fork it; the
next writer joins the fork again. Deleting an interior event breaks a link and is reported.
"""

from __future__ import annotations

import base64
import datetime as dt
import getpass
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from mpkg.errors import RegistryError
from mpkg.signatures import TrustedKey, key_id, pae, verify_signature

from ..signing import load_private_key, sign_payload
from .backend import (
    DSSE_LAYER_TYPE,
    EMPTY_DATA,
    EVENT_ARTIFACT_TYPE,
    EVENT_LAYER_TYPE,
    Backend,
    artifact_manifest,
    canonical_json,
    digest_bytes,
)

EVENT_TAG_PREFIX = "_mpkg-event-"
EVENT_SCHEMA = "dev.mpkg.event.v1"
ACTIONS = ("push", "promote", "rollback", "void", "delete")
MOVES = ("promote", "rollback")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


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
        if obj is None:
            return None
        if not isinstance(obj, Mapping):
            raise ValueError("package reference is not an object")
        values = [obj.get(k) for k in ("manifest", "package", "name", "version", "blob")]
        strings = [v for v in values if isinstance(v, str)]
        if len(strings) != 5 or not isinstance(obj.get("size"), int):
            raise ValueError("package reference lacks manifest/package/name/version/blob/size")
        return cls(strings[0], strings[1], strings[2], strings[3], strings[4], obj["size"])


@dataclass(frozen=True)
class Event:
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

    @property
    def when(self) -> dt.datetime:
        return dt.datetime.strptime(self.time, TIME_FORMAT).replace(tzinfo=dt.UTC)

    def to_json(self) -> dict[str, Any]:
        return {
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

    @classmethod
    def from_json(cls, obj: Any) -> Event:
        if not isinstance(obj, Mapping) or obj.get("schema") != EVENT_SCHEMA:
            raise ValueError(f"not a {EVENT_SCHEMA} object")
        who = obj.get("who")
        parents = obj.get("parents")
        if (
            not isinstance(obj.get("repository"), str)
            or not isinstance(obj.get("sequence"), int)
            or not isinstance(parents, list)
            or not all(isinstance(p, str) for p in parents)
            or obj.get("action") not in ACTIONS
            or not isinstance(obj.get("time"), str)
            or not isinstance(who, Mapping)
            or not isinstance(who.get("user"), str)
        ):
            raise ValueError("lacks repository/sequence/parents/action/time/who")
        notes = obj.get("notes") or []
        event = cls(
            obj["repository"],
            obj["sequence"],
            tuple(parents),
            obj["action"],
            obj["time"],
            who["user"],
            who.get("key") if isinstance(who.get("key"), str) else None,
            obj.get("stage") if isinstance(obj.get("stage"), str) else None,
            PackageRef.from_json(obj.get("from")),
            PackageRef.from_json(obj.get("to")),
            obj.get("voids") if isinstance(obj.get("voids"), str) else None,
            tuple(str(n) for n in notes) if isinstance(notes, list) else (),
        )
        event.when  # noqa: B018 - validates the time format
        return event


@dataclass(frozen=True)
class RecordedEvent:
    """An event as read back: its manifest digest and what its signature proves."""

    digest: str
    event: Event
    signature: str  # "none", "verified", "untrusted" (no trusted key given), "invalid"
    signer: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.event.to_json(), "digest": self.digest, "signature": self.signature, "signer": self.signer}


@dataclass(frozen=True)
class Signer:
    """A private key that signs events; its key id goes into ``who``."""

    key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    keyid: str

    @classmethod
    def load(cls, path: str | Path) -> Signer:
        key = load_private_key(path)
        return cls(key, key_id(key.public_key()))

    def sign(self, payload: bytes) -> bytes:
        sig = sign_payload(self.key, EVENT_LAYER_TYPE, payload).sig
        return canonical_json(
            {
                "payload": base64.b64encode(payload).decode(),
                "payloadType": EVENT_LAYER_TYPE,
                "signatures": [{"keyid": self.keyid, "sig": base64.b64encode(sig).decode()}],
            }
        )


def now_text() -> str:
    return dt.datetime.now(dt.UTC).strftime(TIME_FORMAT)


def current_user() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def write_event(backend: Backend, repo: str, event: Event, signer: Signer | None) -> str:
    """Store one event and its own tag; returns the event's manifest digest."""
    payload = canonical_json(event.to_json())
    layers = [{"mediaType": EVENT_LAYER_TYPE, "digest": backend.push_blob_bytes(repo, payload), "size": len(payload)}]
    if signer is not None:
        envelope = signer.sign(payload)
        layers.append(
            {"mediaType": DSSE_LAYER_TYPE, "digest": backend.push_blob_bytes(repo, envelope), "size": len(envelope)}
        )
    backend.push_blob_bytes(repo, EMPTY_DATA)
    data = artifact_manifest(
        EVENT_ARTIFACT_TYPE,
        layers,
        {
            "dev.mpkg.event.action": event.action,
            "dev.mpkg.event.sequence": str(event.sequence),
        },
    )
    digest = digest_bytes(data)
    backend.put_manifest(repo, event_tag(event.sequence, digest), data)
    return digest


def event_tag(sequence: int, digest: str) -> str:
    return f"{EVENT_TAG_PREFIX}{sequence:08d}-{digest.split(':', 1)[1][:12]}"


def _check_envelope(envelope: bytes, payload: bytes, trusted: Sequence[TrustedKey]) -> tuple[str, str | None]:
    try:
        doc = json.loads(envelope)
        signed = base64.b64decode(doc["payload"], validate=True)
        (entry,) = doc["signatures"]
        keyid, sig = str(entry["keyid"]), base64.b64decode(entry["sig"], validate=True)
        if doc["payloadType"] != EVENT_LAYER_TYPE or signed != payload:
            return "invalid", None
    except (ValueError, KeyError, TypeError):
        return "invalid", None
    key = next((k for k in trusted if k.keyid == keyid), None)
    if key is None:
        return "untrusted", keyid
    ok = verify_signature(key.key, pae(EVENT_LAYER_TYPE, payload), sig)
    return ("verified" if ok else "invalid"), keyid


def read_events(
    backend: Backend, repo: str, trusted: Sequence[TrustedKey] = ()
) -> tuple[list[RecordedEvent], list[str]]:
    """Every event of ``repo`` (ordered by sequence, time, digest) and what is wrong with them."""
    problems: list[str] = []
    seen: dict[str, RecordedEvent] = {}
    for tag in backend.list_tags(repo):
        if not tag.startswith(EVENT_TAG_PREFIX):
            continue
        manifest = backend.get_manifest(repo, tag)
        if manifest is None or manifest.digest in seen:
            continue
        where = f"history event {tag}"
        try:
            doc = manifest.json()
            layers = doc.get("layers") or []
            if doc.get("artifactType") != EVENT_ARTIFACT_TYPE or not layers:
                raise ValueError("is not an mpkg event artifact")
            if layers[0].get("mediaType") != EVENT_LAYER_TYPE:
                raise ValueError("has no event layer")
            payload = backend.fetch_blob_bytes(repo, str(layers[0]["digest"]))
            event = Event.from_json(json.loads(payload))
            if event_tag(event.sequence, manifest.digest) != tag:
                raise ValueError("its tag does not match its sequence and digest")
            status, signer = "none", None
            if len(layers) > 1 and layers[1].get("mediaType") == DSSE_LAYER_TYPE:
                envelope = backend.fetch_blob_bytes(repo, str(layers[1]["digest"]))
                status, signer = _check_envelope(envelope, payload, trusted)
                if signer is not None and event.key is not None and signer != event.key:
                    status = "invalid"
        except (ValueError, KeyError, TypeError, AttributeError, RegistryError) as exc:
            problems.append(f"{where}: unreadable ({exc}); the history was tampered with")
            continue
        if event.repository != repo:
            problems.append(f"{where}: belongs to repository {event.repository!r}, copied here")
            continue
        seen[manifest.digest] = RecordedEvent(manifest.digest, event, status, signer)
    events = sorted(seen.values(), key=lambda r: (r.event.sequence, r.event.time, r.digest))
    problems.extend(check_chain(events))
    return events, problems


def check_chain(events: Sequence[RecordedEvent]) -> list[str]:
    """The links: every parent exists, sequences count up from one root."""
    by_digest = {r.digest: r for r in events}
    problems = []
    roots = [r for r in events if not r.event.parents]
    if events and len(roots) != 1:
        problems.append(f"history has {len(roots)} first events, expected 1")
    for r in events:
        for parent in r.event.parents:
            if parent not in by_digest:
                problems.append(
                    f"history event {r.event.sequence} ({r.digest[:19]}) links to {parent[:19]}, "
                    "which is missing: an event was deleted"
                )
        expected = 1 + max((by_digest[p].event.sequence for p in r.event.parents if p in by_digest), default=-1)
        if r.event.parents and all(p in by_digest for p in r.event.parents) and r.event.sequence != expected:
            problems.append(f"history event {r.digest[:19]} has sequence {r.event.sequence}, expected {expected}")
    return problems


def tips(events: Iterable[RecordedEvent]) -> tuple[str, ...]:
    """Events nobody links to yet: what the next event names as its parents."""
    events = list(events)
    linked = {p for r in events for p in r.event.parents}
    return tuple(sorted(r.digest for r in events if r.digest not in linked))


def next_sequence(events: Sequence[RecordedEvent], parents: Iterable[str]) -> int:
    by_digest = {r.digest: r for r in events}
    return 1 + max((by_digest[p].event.sequence for p in parents if p in by_digest), default=-1)


def ancestors(events: Sequence[RecordedEvent], digest: str) -> set[str]:
    by_digest = {r.digest: r for r in events}
    out: set[str] = set()
    stack = list(by_digest[digest].event.parents) if digest in by_digest else []
    while stack:
        d = stack.pop()
        if d in out:
            continue
        out.add(d)
        if d in by_digest:
            stack.extend(by_digest[d].event.parents)
    return out


def voided(events: Iterable[RecordedEvent]) -> set[str]:
    return {r.event.voids for r in events if r.event.action == "void" and r.event.voids}


@dataclass(frozen=True)
class HistoryReport:
    repository: str
    events: tuple[RecordedEvent, ...]
    problems: tuple[str, ...]
    holders: dict[str, PackageRef | None] = field(default_factory=dict)
    concurrent: tuple[str, ...] = ()  # event digests of moves raced by another move

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "repository": self.repository,
            "events": [r.to_json() | {"concurrent": r.digest in self.concurrent} for r in self.events],
            "holders": {k: v.to_json() if v else None for k, v in self.holders.items()},
            "problems": list(self.problems),
        }


def concurrent_moves(events: Sequence[RecordedEvent]) -> set[str]:
    """Moves of one stage where neither knew of the other and neither was voided."""
    dead = voided(events)
    moves = [r for r in events if r.event.action in MOVES and r.digest not in dead]
    out: set[str] = set()
    anc = {r.digest: ancestors(events, r.digest) for r in moves}
    for i, a in enumerate(moves):
        for b in moves[i + 1 :]:
            if a.event.stage != b.event.stage:
                continue
            if a.digest not in anc[b.digest] and b.digest not in anc[a.digest]:
                out.update((a.digest, b.digest))
    return out
