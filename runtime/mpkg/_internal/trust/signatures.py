"""Signature envelopes: DSSE over an in-toto Statement v1 naming the package digest.

One envelope per package (member ``mpkg/signatures.json``) holds any number of
signatures over the same statement, so adding one never changes the digest.
Everything is pinned — payload type, statement and predicate types, key types,
one encoding — and nothing falls back to anything else (spec/format.md §8).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from mpkg._internal.format import canonical
from mpkg._internal.format.digests import Digest
from mpkg._internal.format.manifest import SIGNATURES_NAME
from mpkg._internal.trust.keyfiles import PUBLIC, pem_blocks, read_key_file
from mpkg.errors import SignatureError

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://mpkg.dev/package-signature/v1"
MAX_SIGNATURES = 64

PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding: what is actually signed."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


def subject_name(name: str, version: str) -> str:
    """The in-toto subject name a signature binds: ``name@version``."""
    return f"{name}@{version}"


def statement(name: str, version: str, digest: Digest, format_version: int) -> bytes:
    """The canonical statement every signer of this package signs."""
    return canonical.dumps(
        {
            "_type": STATEMENT_TYPE,
            "subject": [{"name": subject_name(name, version), "digest": {digest.algorithm: digest.hex}}],
            "predicateType": PREDICATE_TYPE,
            "predicate": {"format_version": format_version, "name": name, "version": version},
        }
    )


@dataclass(frozen=True)
class TrustedKey:
    """A public key a verifier trusts, with its key id and where it came from."""

    keyid: str
    key: PublicKey
    source: str


def key_id(key: PublicKey) -> str:
    """sha256 of the DER SubjectPublicKeyInfo, hex."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def check_key_type(key: object, where: str) -> PublicKey:
    """The key if it is Ed25519 or ECDSA P-256; any other key type is refused."""
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise SignatureError("is not an Ed25519 or ECDSA P-256 public key; other key types are refused", where)


def load_key_file(path: str | os.PathLike[str]) -> tuple[TrustedKey, ...]:
    """Every public key in a PEM file (a file may hold several: all are trusted, and named
    "FILE (key i of n)" in reports). See mpkg._internal.trust.keyfiles for what a key file may be."""
    where = str(path)
    blocks = pem_blocks(read_key_file(path), PUBLIC, where)
    keys = []
    for i, block in enumerate(blocks, start=1):
        source = where if len(blocks) == 1 else f"{where} (key {i} of {len(blocks)})"
        try:
            key = serialization.load_pem_public_key(block)
        except (ValueError, UnsupportedAlgorithm):
            raise SignatureError("is not a valid PEM public key", source) from None
        checked = check_key_type(key, source)
        keys.append(TrustedKey(key_id(checked), checked, source))
    return tuple(keys)


def load_public_key(path: str | os.PathLike[str]) -> TrustedKey:
    """The one public key in a PEM file (refused when it holds several)."""
    keys = load_key_file(path)
    if len(keys) != 1:
        raise SignatureError(f"holds {len(keys)} public keys where one is expected", str(path))
    return keys[0]


def load_public_keys(paths: Iterable[str | os.PathLike[str]]) -> tuple[TrustedKey, ...]:
    """Every key of every file, each key once."""
    seen: dict[str, TrustedKey] = {}
    for path in paths:
        for key in load_key_file(path):
            seen.setdefault(key.keyid, key)
    return tuple(seen.values())


@dataclass(frozen=True)
class SignatureEntry:
    """One DSSE signature: the key id it claims and the signature bytes."""

    keyid: str
    sig: bytes


@dataclass(frozen=True)
class Envelope:
    """A DSSE envelope, parsed strictly (the one parser of signatures and history events)."""

    payload: bytes
    payload_type: str
    signatures: tuple[SignatureEntry, ...]

    def to_bytes(self) -> bytes:
        """The envelope in canonical JSON."""
        return canonical.dumps(
            {
                "payload": base64.b64encode(self.payload).decode("ascii"),
                "payloadType": self.payload_type,
                "signatures": [
                    {"keyid": s.keyid, "sig": base64.b64encode(s.sig).decode("ascii")} for s in self.signatures
                ],
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes, payload_type: str = PAYLOAD_TYPE, where: str = SIGNATURES_NAME) -> Envelope:
        """Parse strictly. ``payload_type`` is the one type accepted (packages: the in-toto
        statement; registry history events: their own type); ``where`` names the source."""
        doc = canonical.loads_canonical(data, where)
        if not isinstance(doc, Mapping) or set(doc) != {"payload", "payloadType", "signatures"}:
            raise SignatureError("must be a DSSE envelope with payload, payloadType, signatures", where)
        if doc["payloadType"] != payload_type:
            raise SignatureError(
                f"payloadType {doc['payloadType']!r} is refused; only {payload_type!r} is accepted", where
            )
        payload = _b64(doc["payload"], f"{where}: payload")
        sigs = doc["signatures"]
        if not isinstance(sigs, list) or not sigs or len(sigs) > MAX_SIGNATURES:
            raise SignatureError(f"signatures must be a list of 1-{MAX_SIGNATURES} entries", where)
        entries = []
        for i, s in enumerate(sigs):
            if not isinstance(s, Mapping) or set(s) != {"keyid", "sig"} or not isinstance(s["keyid"], str):
                raise SignatureError("must be {keyid, sig}", f"{where}: signatures[{i}]")
            entries.append(SignatureEntry(s["keyid"], _b64(s["sig"], f"{where}: signatures[{i}].sig")))
        keyids = [e.keyid for e in entries]
        if keyids != sorted(set(keyids)):
            raise SignatureError("signatures must be sorted by keyid, one per key", where)
        return cls(payload, doc["payloadType"], tuple(entries))


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise SignatureError("must be a base64 string", where)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("is not valid standard base64", where) from None
    if base64.b64encode(raw).decode("ascii") != value:  # set unused bits: same bytes, other envelope bytes
        raise SignatureError("is not canonical base64 (non-zero trailing bits)", where)
    return raw


def verify_signature(key: PublicKey, message: bytes, sig: bytes) -> bool:
    """Whether ``sig`` is valid for ``message`` under ``key``; never raises for a bad signature."""
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, message)
        else:
            key.verify(sig, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class SignatureCheck:
    """The outcome for one signature in the envelope."""

    keyid: str
    valid: bool
    trusted: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The --json form of one signature's check."""
        return {"keyid": self.keyid, "valid": self.valid, "trusted": self.trusted, "reason": self.reason}


def check_statement(payload: bytes, name: str, version: str, digest: Digest, format_version: int) -> str | None:
    """Why the signed statement does not name this exact package, or None."""
    expected = statement(name, version, digest, format_version)
    if payload == expected:
        return None
    try:
        doc = canonical.loads(payload, "statement")
    except Exception:
        return "the signed payload is not a JSON statement"
    if not isinstance(doc, Mapping) or doc.get("_type") != STATEMENT_TYPE:
        return f"the signed payload is not an in-toto Statement v1 ({STATEMENT_TYPE})"
    if doc.get("predicateType") != PREDICATE_TYPE:
        return f"the statement's predicateType is not {PREDICATE_TYPE}"
    return (
        f"the signed statement names another package than {subject_name(name, version)} "
        f"{digest} (renamed, re-versioned or substituted)"
    )


def check_envelope(envelope: Envelope, trusted: Sequence[TrustedKey], message_ok: bool) -> tuple[SignatureCheck, ...]:
    """Check every signature (not only the first). ``message_ok`` is whether the statement
    names this package; if it does not, no signature can make the package valid."""
    message = pae(envelope.payload_type, envelope.payload)
    by_id = {k.keyid: k for k in trusted}
    checks = []
    for entry in envelope.signatures:
        key = by_id.get(entry.keyid)
        if key is None:
            checks.append(SignatureCheck(entry.keyid, False, False, "signed by a key that is not trusted here"))
            continue
        if not verify_signature(key.key, message, entry.sig):
            checks.append(SignatureCheck(entry.keyid, False, True, f"bad signature for trusted key {key.source}"))
        elif not message_ok:
            checks.append(SignatureCheck(entry.keyid, False, True, "signature is over another package"))
        else:
            checks.append(SignatureCheck(entry.keyid, True, True, f"valid signature by {key.source}"))
    return tuple(checks)
