"""Keys and signing: keygen, passphrases, several signers, re-signing, the CLI's policy."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.package import read_manifest
from mpkg._internal.trust.signatures import Envelope, load_public_key
from mpkg._internal.trust.verify import verify
from mpkg.errors import MpkgError, SignatureError, SourceError
from mpkg_builder.signing import PASSPHRASE_ENV, keygen, load_private_key, sign


@pytest.fixture
def pkg(built, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    path = tmp_path / "iris.mpkg"
    shutil.copyfile(built.unsigned["iris-mlp"], path)
    return path


@pytest.mark.parametrize("algorithm", ["ed25519", "ecdsa-p256"])
def test_keygen_writes_a_private_0600_key_and_its_public_half(
    tmp_path: Path, algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    old = os.umask(0o000)  # even a permissive umask must not make the private key readable
    try:
        pair = keygen(tmp_path / "k", algorithm)
    finally:
        os.umask(old)
    assert stat.S_IMODE(pair.private_path.stat().st_mode) == 0o600
    pub = load_public_key(pair.public_path)
    der = pub.key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert pair.keyid == pub.keyid == hashlib.sha256(der).hexdigest()
    assert load_private_key(pair.private_path) is not None
    assert b"ENCRYPTED" not in pair.private_path.read_bytes()
    with pytest.raises(SourceError, match="already exists"):
        keygen(tmp_path / "k", algorithm)
    assert keygen(tmp_path / "k", algorithm, force=True).keyid != pair.keyid


def test_passphrase_encrypts_the_private_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse")
    pair = keygen(tmp_path / "k")
    assert b"ENCRYPTED PRIVATE KEY" in pair.private_path.read_bytes()
    assert load_private_key(pair.private_path) is not None
    monkeypatch.delenv(PASSPHRASE_ENV)
    with pytest.raises(SignatureError) as exc:
        load_private_key(pair.private_path)
    assert exc.value.reasons() == [f"{pair.private_path}: is encrypted; set {PASSPHRASE_ENV}"]
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
    with pytest.raises(SignatureError, match="is wrong"):
        load_private_key(pair.private_path)


def test_encrypted_key_through_the_cli(pkg: Path, run_mpkg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run_mpkg("keygen", tmp_path / "enc", env={PASSPHRASE_ENV: "s3cret"}, expect=0)
    proc = run_mpkg("sign", pkg, "--key", tmp_path / "enc.key", expect=1)
    assert proc.stderr.strip() == f"mpkg: {tmp_path / 'enc.key'}: is encrypted; set {PASSPHRASE_ENV}"
    run_mpkg("sign", pkg, "--key", tmp_path / "enc.key", env={PASSPHRASE_ENV: "s3cret"}, expect=0)
    run_mpkg("verify", pkg, "--key", tmp_path / "enc.pub", expect=0)


def test_several_signatures_coexist(pkg: Path, tmp_path: Path) -> None:
    digest = read_manifest(pkg).digest
    ed = keygen(tmp_path / "ed")
    p256 = keygen(tmp_path / "p256", "ecdsa-p256")
    assert sign(pkg, ed.private_path) == ed.keyid
    assert sign(pkg, p256.private_path) == p256.keyid
    assert read_manifest(pkg).digest == digest  # signing never changes identity
    with PackageFile(pkg) as f:
        assert f.signatures_bytes is not None
        envelope = Envelope.from_bytes(f.signatures_bytes)
    assert [s.keyid for s in envelope.signatures] == sorted([ed.keyid, p256.keyid])
    both = verify(pkg, [ed.public_path, p256.public_path])
    assert both.ok and [s.valid for s in both.signatures] == [True, True]
    for alone in (ed.public_path, p256.public_path):
        result = verify(pkg, [alone])
        assert result.ok and sum(s.valid for s in result.signatures) == 1


def test_resigning_with_the_same_key_replaces_its_signature(pkg: Path, tmp_path: Path) -> None:
    p256 = keygen(tmp_path / "p256", "ecdsa-p256")  # ECDSA signatures differ on every signing
    sign(pkg, p256.private_path)
    first = _signatures(pkg)
    sign(pkg, p256.private_path)
    second = _signatures(pkg)
    assert [s.keyid for s in first] == [s.keyid for s in second] == [p256.keyid]
    assert first[0].sig != second[0].sig
    assert verify(pkg, [p256.public_path]).ok
    size_before = pkg.stat().st_size
    sign(pkg, p256.private_path)
    assert abs(pkg.stat().st_size - size_before) <= 512  # only the envelope member is rewritten


def _signatures(pkg: Path) -> tuple:  # type: ignore[type-arg]
    with PackageFile(pkg) as f:
        assert f.signatures_bytes is not None
        return Envelope.from_bytes(f.signatures_bytes).signatures


def test_signing_refuses_a_broken_package(pkg: Path, tmp_path: Path) -> None:
    data = bytearray(pkg.read_bytes())
    data[1000] ^= 1
    pkg.write_bytes(bytes(data))
    before = pkg.read_bytes()
    with pytest.raises(MpkgError):
        sign(pkg, keygen(tmp_path / "k").private_path)
    assert pkg.read_bytes() == before


def test_unknown_key_and_allow_unsigned_cli(built, run_mpkg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stranger = keygen(tmp_path / "stranger")
    proc = run_mpkg("verify", built.signed["iris-mlp"], "--key", stranger.public_path, expect=1)
    assert "no signature by a trusted key" in proc.stderr
    run_mpkg("verify", built.signed["iris-mlp"], "--key", stranger.public_path, "--key", built.pub, expect=0)
    run_mpkg("verify", built.unsigned["iris-mlp"], "--allow-unsigned", expect=0)
    proc = run_mpkg("verify", built.unsigned["iris-mlp"], expect=1)
    assert "the package is not signed" in proc.stderr
