"""Signature attacks: stripping, substitution, renaming, type confusion, weak key types,
checking only the first signature, and malleable encodings.

Keys: ``a`` (Ed25519) and ``b`` (ECDSA P-256) are trusted where passed; ``c`` never is.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from mpkg._internal.format import canonical
from mpkg._internal.format.manifest import MANIFEST_NAME, SIGNATURES_NAME
from mpkg._internal.trust.signatures import load_public_key
from mpkg._internal.trust.verify import Policy, verify
from mpkg.errors import SignatureError
from mpkg_builder.signing import load_private_key

from tests.attacks.checks import Keys, refused, unpack_refused
from tests.attacks.craft import base_files, envelope, manifest_doc, members_of, package, rebuild, write


def _signed(tmp: Path, keys: Keys, name: str = "victim", version: str = "1.0.0", signers: tuple = ()) -> Path:
    doc = manifest_doc(base_files(), name=name, version=version)
    return write(tmp / f"{name}-{version}.mpkg", package(doc=doc, keys=list(signers) or [keys.a.key]))


def _replace_envelope(pkg: Path, env: bytes | None, out: Path) -> Path:
    pairs = [(n, d) for n, d in members_of(pkg) if n != SIGNATURES_NAME]
    if env is not None:
        pairs.append((SIGNATURES_NAME, env))
    return write(out, rebuild(pairs))


def _envelope_of(pkg: Path) -> dict:
    return json.loads(dict(members_of(pkg))[SIGNATURES_NAME])


def test_signature_stripping_cve_2022_35929(tmp_path: Path, keys: Keys, run_mpkg) -> None:
    """Removing the signature member must not turn a signed package into an 'unsigned, fine' one."""
    signed = _signed(tmp_path, keys)
    assert verify(signed, [keys.a.pub]).ok
    stripped = _replace_envelope(signed, None, tmp_path / "stripped.mpkg")
    refused(stripped, "the package is not signed", keys=(keys.a.pub,))
    refused(stripped, "the package is not signed")
    assert verify(stripped, Policy.unsafe_allow_unsigned([keys.a.pub])).ok  # only when the caller says so
    proc = run_mpkg("verify", stripped, "--key", keys.a.pub, expect=1)
    assert "the package is not signed" in proc.stderr
    unpack_refused(stripped, tmp_path, "not signed", keys=(keys.a.pub,), allow_unsigned=False)


def test_empty_signature_list(tmp_path: Path, keys: Keys) -> None:
    signed = _signed(tmp_path, keys)
    env = _envelope_of(signed)
    env["signatures"] = []
    pkg = _replace_envelope(signed, canonical.dumps(env), tmp_path / "empty.mpkg")
    refused(pkg, "signatures must be a list of 1-64 entries", keys=(keys.a.pub,))
    refused(pkg, "signatures must be a list", keys=(keys.a.pub,), allow_unsigned=True)


def test_signature_from_other_package_substituted(tmp_path: Path, keys: Keys) -> None:
    """A genuine envelope by a trusted key, moved onto another package (same name and version)."""
    victim = _signed(tmp_path, keys)
    other_doc = manifest_doc(base_files(), description="the package the signer actually approved")
    other = write(tmp_path / "other.mpkg", package(doc=other_doc, keys=[keys.a.key]))
    assert verify(other, [keys.a.pub]).ok
    forged = _replace_envelope(victim, dict(members_of(other))[SIGNATURES_NAME], tmp_path / "forged.mpkg")
    result = refused(forged, "names another package than victim@1.0.0", keys=(keys.a.pub,))
    assert not any(s.valid for s in result.signatures)


def test_renamed_package_keeps_old_signature(tmp_path: Path, keys: Keys) -> None:
    """Rename (or re-version) a signed package and keep its envelope: the statement's subject
    no longer names it."""
    signed = _signed(tmp_path, keys)
    env = dict(members_of(signed))[SIGNATURES_NAME]
    for field, value, shown in (("name", "trusted-name", "trusted-name@1.0.0"), ("version", "9.9.9", "victim@9.9.9")):
        doc = manifest_doc(base_files(), **{field: value})
        pairs = [(n, d) for n, d in members_of(signed) if n not in (MANIFEST_NAME, SIGNATURES_NAME)]
        pkg = write(
            tmp_path / f"renamed-{field}.mpkg",
            rebuild([*pairs, (MANIFEST_NAME, canonical.dumps(doc)), (SIGNATURES_NAME, env)]),
        )
        refused(pkg, f"names another package than {shown}", keys=(keys.a.pub,))


def test_statement_with_wrong_types_is_refused(tmp_path: Path, keys: Keys) -> None:
    signed = _signed(tmp_path, keys)
    manifest = dict(members_of(signed))[MANIFEST_NAME]
    good = json.loads(base64.b64decode(_envelope_of(signed)["payload"]))
    for change, reason in (
        ({"_type": "https://in-toto.io/Statement/v0.1"}, "not an in-toto Statement v1"),
        ({"predicateType": "https://slsa.dev/provenance/v1"}, "predicateType is not"),
    ):
        payload = canonical.dumps({**good, **change})
        env = envelope(manifest, [keys.a.key], payload=payload)
        refused(_replace_envelope(signed, env, tmp_path / "st.mpkg"), reason, keys=(keys.a.pub,))
    env = envelope(manifest, [keys.a.key], payload=b"\x00not json")
    refused(_replace_envelope(signed, env, tmp_path / "nj.mpkg"), "not a JSON statement", keys=(keys.a.pub,))


@pytest.mark.parametrize("payload_type", ["application/json", "application/vnd.in-toto+json ", "text/plain", ""])
def test_wrong_payload_type_no_fallback(tmp_path: Path, keys: Keys, payload_type: str) -> None:
    """A correctly signed envelope of another payload type: refused, never reinterpreted."""
    signed = _signed(tmp_path, keys)
    manifest = dict(members_of(signed))[MANIFEST_NAME]
    env = envelope(manifest, [keys.a.key], payload_type=payload_type)
    pkg = _replace_envelope(signed, env, tmp_path / "type.mpkg")
    refused(pkg, f"payloadType {payload_type!r} is refused", keys=(keys.a.pub,))
    refused(pkg, "is refused", keys=(keys.a.pub,), allow_unsigned=True)  # a broken envelope is never ignored


def test_rsa_key_refused(tmp_path: Path, keys: Keys, run_mpkg) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = tmp_path / "rsa.pub"
    pub.write_bytes(
        rsa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    priv = tmp_path / "rsa.key"
    priv.write_bytes(
        rsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(SignatureError, match="not an Ed25519 or ECDSA P-256 public key"):
        load_public_key(pub)
    with pytest.raises(SignatureError, match="not an Ed25519 or ECDSA P-256 public key"):
        load_private_key(priv)
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    (tmp_path / "p384.pub").write_bytes(
        p384.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(SignatureError, match="other key types are refused"):
        load_public_key(tmp_path / "p384.pub")
    pkg = _signed(tmp_path, keys)
    proc = run_mpkg("verify", pkg, "--key", pub, expect=1)
    assert "not an Ed25519 or ECDSA P-256 public key" in proc.stderr
    proc = run_mpkg("sign", pkg, "--key", priv, expect=1)
    assert "other key types are refused" in proc.stderr


def test_only_first_signature_checked_weakness(tmp_path: Path, keys: Keys) -> None:
    """Two trusted keys sign; the signature that sorts second is bad. Checking only the first
    (or stopping at the first valid one) would accept the package."""
    signed = _signed(tmp_path, keys, signers=(keys.a.key, keys.b.key))
    assert verify(signed, [keys.a.pub, keys.b.pub]).ok
    for index in (1, 0):
        env = _envelope_of(signed)
        sig = bytearray(base64.b64decode(env["signatures"][index]["sig"]))
        sig[len(sig) // 2] ^= 1
        env["signatures"][index]["sig"] = base64.b64encode(bytes(sig)).decode()
        pkg = _replace_envelope(signed, canonical.dumps(env), tmp_path / f"bad{index}.mpkg")
        result = refused(pkg, "bad signature for trusted key", keys=(keys.a.pub, keys.b.pub))
        assert [s.valid for s in result.signatures].count(True) == 1
        # trusting only the key whose signature is good still accepts it: untrusted signatures are not judged
        good_key = keys.a.pub if env["signatures"][1 - index]["keyid"] == _keyid(keys.a.pub) else keys.b.pub
        assert verify(pkg, [good_key]).ok


def _keyid(pub: Path) -> str:
    return load_public_key(pub).keyid


def test_signature_by_untrusted_key_only(tmp_path: Path, keys: Keys) -> None:
    pkg = _signed(tmp_path, keys, signers=(keys.c.key,))
    result = refused(pkg, "no signature by a trusted key", keys=(keys.a.pub,))
    assert [(s.trusted, s.valid) for s in result.signatures] == [(False, False)]


def test_keyid_relabelled_to_a_trusted_key(tmp_path: Path, keys: Keys) -> None:
    """An untrusted key's signature relabelled with a trusted key's id."""
    signed = _signed(tmp_path, keys, signers=(keys.c.key,))
    env = _envelope_of(signed)
    env["signatures"][0]["keyid"] = _keyid(keys.a.pub)
    pkg = _replace_envelope(signed, canonical.dumps(env), tmp_path / "relabel.mpkg")
    refused(pkg, "bad signature for trusted key", keys=(keys.a.pub,))


def test_duplicate_and_unsorted_signatures(tmp_path: Path, keys: Keys) -> None:
    signed = _signed(tmp_path, keys, signers=(keys.a.key, keys.b.key))
    env = _envelope_of(signed)
    for sigs in ([env["signatures"][0], env["signatures"][0]], list(reversed(env["signatures"]))):
        pkg = _replace_envelope(signed, canonical.dumps({**env, "signatures": sigs}), tmp_path / "d.mpkg")
        refused(pkg, "sorted by keyid, one per key", keys=(keys.a.pub, keys.b.pub))
    many = [{"keyid": f"{i:064x}", "sig": "AAAA"} for i in range(65)]
    pkg = _replace_envelope(signed, canonical.dumps({**env, "signatures": many}), tmp_path / "m.mpkg")
    refused(pkg, "signatures must be a list of 1-64 entries", keys=(keys.a.pub,))


def test_non_canonical_base64_in_envelope(tmp_path: Path, keys: Keys) -> None:
    """Base64 whose unused trailing bits are set decodes to the same bytes; accepting it would let
    anyone change the package's bytes without touching what was signed."""
    signed = _signed(tmp_path, keys)
    env = _envelope_of(signed)
    sig = env["signatures"][0]["sig"]
    assert sig.endswith("==")  # 64-byte Ed25519 signature: the last symbol carries 4 unused bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(sig[-3])
    tweaked = sig[:-3] + alphabet[last ^ 1] + "=="
    assert base64.b64decode(tweaked) == base64.b64decode(sig)
    variants = [tweaked, sig.rstrip("="), sig[:-2] + "\n=="]
    urlsafe = base64.urlsafe_b64encode(base64.b64decode(sig)).decode()
    if urlsafe != sig:
        variants.append(urlsafe)
    for value in variants:
        bad = json.loads(json.dumps(env))
        bad["signatures"][0]["sig"] = value
        pkg = _replace_envelope(signed, canonical.dumps(bad), tmp_path / "b64.mpkg")
        refused(pkg, keys=(keys.a.pub,))


def test_non_canonical_envelope_json(tmp_path: Path, keys: Keys) -> None:
    signed = _signed(tmp_path, keys)
    env = dict(members_of(signed))[SIGNATURES_NAME]
    for bad in (
        env + b" ",
        b" " + env,
        env.replace(b'"payload"', b'"payload" ', 1),
        env.replace(b"{", b'{"extra":1,', 1),
        b"[]",
        b"\xff",
    ):
        pkg = _replace_envelope(signed, bad, tmp_path / "j.mpkg")
        refused(pkg, "mpkg/signatures.json", keys=(keys.a.pub,))


def test_oversized_signature_envelope(tmp_path: Path, keys: Keys) -> None:
    signed = _signed(tmp_path, keys)
    pkg = _replace_envelope(signed, b" " * (1024 * 1024 + 1), tmp_path / "big.mpkg")
    refused(pkg, "mpkg/signatures.json is over", keys=(keys.a.pub,))


def test_signatures_member_not_last(tmp_path: Path, keys: Keys) -> None:
    signed = _signed(tmp_path, keys)
    pairs = members_of(signed)
    pairs.insert(0, pairs.pop())  # envelope first
    refused(
        write(tmp_path / "first.mpkg", rebuild(pairs)),
        "files not listed in the manifest: mpkg/signatures.json",
        keys=(keys.a.pub,),
    )


def test_ecdsa_signature_by_other_curve_key_with_same_keyid_is_impossible(tmp_path: Path, keys: Keys) -> None:
    """The keyid is the sha256 of the DER public key, so it pins the algorithm too: an Ed25519
    signature labelled with the ECDSA key's id is checked as ECDSA and fails."""
    signed = _signed(tmp_path, keys, signers=(keys.a.key,))
    env = _envelope_of(signed)
    env["signatures"][0]["keyid"] = _keyid(keys.b.pub)
    pkg = _replace_envelope(signed, canonical.dumps(env), tmp_path / "x.mpkg")
    refused(pkg, "bad signature for trusted key", keys=(keys.b.pub,))
