"""Keys and signing: keygen, and adding a signature to a package without changing its digest.

A signature goes into the one DSSE envelope at the end of the archive; signing
rewrites only that tail (the rest is copied in the kernel) and replaces the
package atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from mpkg._internal.format import layout
from mpkg._internal.format.manifest import MANIFEST_NAME, SIGNATURES_NAME, Manifest
from mpkg._internal.io.atomic import atomic_output
from mpkg._internal.trust.keyfiles import PRIVATE, pem_blocks, read_key_file
from mpkg._internal.trust.signatures import (
    PAYLOAD_TYPE,
    Envelope,
    SignatureEntry,
    check_key_type,
    key_id,
    pae,
    statement,
)
from mpkg._internal.trust.verify import Policy, verified
from mpkg.errors import SignatureError, SourceError

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
ALGORITHMS = ("ed25519", "ecdsa-p256")
PASSPHRASE_ENV = "MPKG_KEY_PASSPHRASE"


@dataclass(frozen=True)
class KeyPair:
    """A key pair keygen wrote, and the key id verifiers will show."""

    private_path: Path
    public_path: Path
    keyid: str
    algorithm: str


def keygen(name: str | Path, algorithm: str = "ed25519", force: bool = False) -> KeyPair:
    """Write NAME.key (PKCS#8 PEM, mode 0600, encrypted if MPKG_KEY_PASSPHRASE is set) and NAME.pub."""
    if algorithm not in ALGORITHMS:
        raise SourceError(f"unknown algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}", "--algorithm")
    private_path, public_path = Path(f"{name}.key"), Path(f"{name}.pub")
    for p in (private_path, public_path):
        if p.exists() and not force:
            raise SourceError("already exists; refusing to overwrite a key (use --force)", str(p))
    key: PrivateKey = (
        ed25519.Ed25519PrivateKey.generate() if algorithm == "ed25519" else ec.generate_private_key(ec.SECP256R1())
    )
    passphrase = os.environ.get(PASSPHRASE_ENV)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with atomic_output(private_path, mode=0o600) as f:
        f.write(pem)
    os.chmod(private_path, 0o600)  # regardless of umask: a private key is never group-readable
    with atomic_output(public_path) as f:
        f.write(pub)
    return KeyPair(private_path, public_path, key_id(key.public_key()), algorithm)


def load_private_key(path: str | Path) -> PrivateKey:
    """Read the one private key of a PEM file (passphrase from MPKG_KEY_PASSPHRASE)."""
    where = str(path)
    blocks = pem_blocks(read_key_file(path), PRIVATE, where)
    if len(blocks) != 1:
        raise SignatureError(f"holds {len(blocks)} private keys; a signing key file holds exactly one", where)
    passphrase = os.environ.get(PASSPHRASE_ENV)
    try:
        key = serialization.load_pem_private_key(blocks[0], passphrase.encode() if passphrase else None)
    except TypeError:
        raise SignatureError(f"is encrypted; set {PASSPHRASE_ENV}", where) from None
    except (ValueError, UnsupportedAlgorithm):
        raise SignatureError(f"is not a PEM private key, or {PASSPHRASE_ENV} is wrong", where) from None
    check_key_type(key.public_key(), where)
    assert isinstance(key, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey))
    return key


def sign_payload(key: PrivateKey, payload_type: str, payload: bytes) -> SignatureEntry:
    """One DSSE signature over PAE(payload_type, payload), with the signer's key id."""
    message = pae(payload_type, payload)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        sig = key.sign(message)
    else:
        sig = key.sign(message, ec.ECDSA(hashes.SHA256()))
    return SignatureEntry(key_id(key.public_key()), sig)


def sign_statement(key: PrivateKey, payload: bytes) -> SignatureEntry:
    """Sign an in-toto statement as a DSSE payload."""
    return sign_payload(key, PAYLOAD_TYPE, payload)


def envelope_for(manifest: Manifest, key: PrivateKey, existing: Envelope | None = None) -> Envelope:
    """The envelope with this key's signature added (replacing an older one by the same key)."""
    payload = statement(manifest.name, manifest.version, manifest.digest, manifest.format_version)
    entry = sign_statement(key, payload)
    others = tuple(s for s in existing.signatures if s.keyid != entry.keyid) if existing else ()
    return Envelope(payload, PAYLOAD_TYPE, tuple(sorted((*others, entry), key=lambda s: s.keyid)))


def sign(package: str | Path, key_path: str | Path) -> str:
    """Add a signature in place; returns the signer's key id. The package digest does not change."""
    key = load_private_key(key_path)
    # One open file: what is verified is what gets copied into the signed package.
    # Integrity, not trust, is checked here: whoever signs vouches for the package.
    with verified(package, Policy.unsafe_allow_unsigned()) as (pkg, result):
        result.raise_for_errors()
        assert pkg is not None and result.manifest is not None
        existing = Envelope.from_bytes(pkg.signatures_bytes) if pkg.signatures_bytes else None
        envelope = envelope_for(result.manifest, key, existing)
        manifest_member = pkg.by_name[MANIFEST_NAME]
        keep = manifest_member.end
        sig_bytes = envelope.to_bytes()
        with atomic_output(package) as out:
            pkg.file.seek(0)
            _copy(pkg.file, out, keep)
            tail = layout.member_header(SIGNATURES_NAME, len(sig_bytes)) + sig_bytes
            tail += b"\0" * layout.padding(len(sig_bytes))
            out.write(tail)
            out.write(layout.end_of_archive(keep + len(tail)))
    return key_id(key.public_key())


def _copy(src: object, dst: object, length: int) -> None:
    """Copy the first ``length`` bytes in the kernel where possible (copy_file_range/sendfile)."""
    src_fd, dst_fd = src.fileno(), dst.fileno()  # type: ignore[attr-defined]
    copied = 0
    try:
        while copied < length:
            n = os.copy_file_range(src_fd, dst_fd, length - copied, copied, copied)
            if n == 0:
                break
            copied += n
    except OSError:
        pass
    if copied < length:
        src.seek(copied)  # type: ignore[attr-defined]
        dst.seek(copied)  # type: ignore[attr-defined]
        remaining = length - copied
        while remaining:
            chunk = src.read(min(remaining, 8 << 20))  # type: ignore[attr-defined]
            if not chunk:
                raise SignatureError("package shrank while being signed", str(src))
            dst.write(chunk)  # type: ignore[attr-defined]
            remaining -= len(chunk)
    dst.seek(length)  # type: ignore[attr-defined]


__all__ = ["KeyPair", "envelope_for", "keygen", "load_private_key", "sign"]
