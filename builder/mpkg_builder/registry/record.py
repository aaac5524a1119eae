"""Writing the history: signed events appended after the head a command read.

The event format and reading are the runtime's (:mod:`mpkg._internal.registry.history`); this is
the write side: the signer (``--key NAME.key``), one event artifact and its own tag per event.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from mpkg._internal.registry.history import EVENT_TAG_PREFIX, Event, now_text
from mpkg._internal.registry.store import (
    DSSE_LAYER_TYPE,
    EMPTY_DATA,
    EVENT_ARTIFACT_TYPE,
    EVENT_LAYER_TYPE,
    digest_bytes,
)
from mpkg._internal.registry.trust import History
from mpkg._internal.trust.signatures import Envelope, SignatureEntry, key_id

from ..signing import load_private_key, sign_payload
from .backend import Backend, artifact_manifest, canonical_json


@dataclass(frozen=True)
class Signer:
    """A private key that signs events; its key id goes into ``who``."""

    key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
    keyid: str

    @classmethod
    def load(cls, path: str | Path) -> Signer:
        """A signer from a private key file."""
        key = load_private_key(path)
        return cls(key, key_id(key.public_key()))

    def sign(self, payload: bytes) -> bytes:
        """Sign an event payload (DSSE)."""
        sig = sign_payload(self.key, EVENT_LAYER_TYPE, payload).sig
        return Envelope(payload, EVENT_LAYER_TYPE, (SignatureEntry(self.keyid, sig),)).to_bytes()


def load_signer(key: str | Path | None) -> Signer | None:
    """The signer for ``--key NAME.key``, or None: events are then written unsigned."""
    return Signer.load(key) if key is not None else None


def current_user() -> str:
    """Who an event says moved a tag: the OS user on this host."""
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
    """The tag an event is stored under: sequence first, so tags list in order."""
    return f"{EVENT_TAG_PREFIX}{sequence:08d}-{digest.split(':', 1)[1]}"


def append_event(history: History, backend: Backend, action: str, signer: Signer | None, **fields: Any) -> str:
    """Write an event after ``history``'s head (its parents: the tips read); its digest."""
    who = signer.keyid if signer else None
    event = Event(
        history.repository, history.next_sequence, history.head, action, now_text(), current_user(), who, **fields
    )
    return write_event(backend, history.repository, event, signer)
