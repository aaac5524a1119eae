"""DSSE envelopes over in-toto statements (spec/format.md §8)."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from mpkg._internal.format import canonical
from mpkg._internal.format.digests import Digest
from mpkg._internal.trust.signatures import (
    PAYLOAD_TYPE,
    Envelope,
    SignatureEntry,
    TrustedKey,
    check_envelope,
    check_statement,
    key_id,
    pae,
    statement,
    verify_signature,
)
from mpkg.errors import FormatError, SignatureError

DIGEST = Digest("sha256", "ab" * 32)
SIG = {"keyid": "a", "sig": ""}


def test_pae_published_test_vector() -> None:
    """The DSSE specification's example (protocol.md)."""
    expected = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert pae("http://example.com/HelloWorld", b"hello world") == expected
    assert pae("", b"") == b"DSSEv1 0  0 "
    assert pae("t", "é".encode()) == b"DSSEv1 1 t 2 \xc3\xa9"  # lengths are in bytes


def test_statement_is_canonical_in_toto_v1() -> None:
    raw = statement("iris-mlp", "1.0.0", DIGEST, 1)
    assert canonical.loads_canonical(raw, "s") == {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "iris-mlp@1.0.0", "digest": {"sha256": "ab" * 32}}],
        "predicateType": "https://mpkg.dev/package-signature/v1",
        "predicate": {"format_version": 1, "name": "iris-mlp", "version": "1.0.0"},
    }
    assert check_statement(raw, "iris-mlp", "1.0.0", DIGEST, 1) is None
    other = Digest("sha256", "cd" * 32)
    for args in (("iris-mlp", "1.0.1", DIGEST), ("iris", "1.0.0", DIGEST), ("iris-mlp", "1.0.0", other)):
        reason = check_statement(raw, *args, 1)
        assert reason is not None and "names another package" in reason


@pytest.mark.parametrize("make", [ed25519.Ed25519PrivateKey.generate, lambda: ec.generate_private_key(ec.SECP256R1())])
def test_key_id_is_sha256_of_der_public_key(make) -> None:  # type: ignore[no-untyped-def]
    key = make().public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert key_id(key) == hashlib.sha256(der).hexdigest()


def test_envelope_round_trip_and_every_signature_checked() -> None:
    payload = statement("m", "1.0.0", DIGEST, 1)
    message = pae(PAYLOAD_TYPE, payload)
    ed = ed25519.Ed25519PrivateKey.generate()
    p256 = ec.generate_private_key(ec.SECP256R1())
    from cryptography.hazmat.primitives import hashes

    entries = sorted(
        [
            SignatureEntry(key_id(ed.public_key()), ed.sign(message)),
            SignatureEntry(key_id(p256.public_key()), p256.sign(message, ec.ECDSA(hashes.SHA256()))),
        ],
        key=lambda e: e.keyid,
    )
    env = Envelope(payload, PAYLOAD_TYPE, tuple(entries))
    raw = env.to_bytes()
    assert canonical.loads_canonical(raw, "e")["payload"] == base64.b64encode(payload).decode()
    assert Envelope.from_bytes(raw) == env
    trusted = [TrustedKey(key_id(k.public_key()), k.public_key(), n) for k, n in ((ed, "ed"), (p256, "p256"))]
    assert all(c.valid for c in check_envelope(env, trusted, True))
    assert not any(c.valid for c in check_envelope(env, trusted, False))  # statement names another package
    assert [c.trusted for c in check_envelope(env, trusted[:1], True)].count(True) == 1
    ed_sig = next(e.sig for e in entries if e.keyid == key_id(ed.public_key()))
    assert verify_signature(ed.public_key(), message, ed_sig)
    assert not verify_signature(ed.public_key(), message + b"x", ed.sign(message))


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"payload": "", "payloadType": PAYLOAD_TYPE}, "must be a DSSE envelope"),
        ({"payload": "", "payloadType": PAYLOAD_TYPE, "signatures": [], "x": 1}, "must be a DSSE envelope"),
        ({"payload": "e30=", "payloadType": "application/json", "signatures": [SIG]}, "is refused"),
        ({"payload": "e30", "payloadType": PAYLOAD_TYPE, "signatures": [SIG]}, "base64"),
        ({"payload": "e31=", "payloadType": PAYLOAD_TYPE, "signatures": [SIG]}, "canonical base64"),
        ({"payload": "e30=", "payloadType": PAYLOAD_TYPE, "signatures": [{"keyid": 1, "sig": ""}]}, "{keyid, sig}"),
        ({"payload": "e30=", "payloadType": PAYLOAD_TYPE, "signatures": {}}, "list of 1-64"),
        ({"payload": 5, "payloadType": PAYLOAD_TYPE, "signatures": [SIG]}, "base64 string"),
    ],
)
def test_envelope_refusals(doc: dict, reason: str) -> None:  # type: ignore[type-arg]
    with pytest.raises((SignatureError, FormatError)) as exc:
        Envelope.from_bytes(canonical.dumps(doc))
    assert reason in exc.value.diagnostics()


def test_envelope_must_be_canonical_json() -> None:
    env = {"payload": "e30=", "payloadType": PAYLOAD_TYPE, "signatures": [{"keyid": "a", "sig": ""}]}
    assert Envelope.from_bytes(canonical.dumps(env)).payload == b"{}"
    with pytest.raises(FormatError, match="canonical"):
        Envelope.from_bytes(json.dumps(env, indent=2).encode())
