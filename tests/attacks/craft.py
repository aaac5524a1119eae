"""Hostile .mpkg files, crafted as raw bytes.

Canonical headers come from :mod:`mpkg._internal.format.layout` (so a refusal is about the attack, not
about a sloppy header); non-canonical ones are hand-made here or with tarfile's header
encoder (tarfile never extracts anything in these tests). Manifests are encoded with
:func:`mpkg._internal.format.canonical.dumps` without validation, and signed with a real key, so the
package under test differs from a valid signed one only by the attack.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpkg._internal.format import canonical, layout
from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.digests import hash_bytes, package_digest
from mpkg._internal.format.manifest import MANIFEST_NAME, SIGNATURES_NAME
from mpkg._internal.trust.signatures import PAYLOAD_TYPE, key_id, pae, statement
from mpkg_builder.signing import PrivateKey

WEIGHTS = b"\x00" * 100 + b"weights"
CARD = b"---\nlicense: mit\n---\n# Card\n"
LOCK = b"numpy==2.1.0\n"


@dataclass(frozen=True)
class File:
    path: str
    data: bytes
    role: str
    encoding: str = "identity"  # the only value format v1 accepts; anything else is an attack

    @property
    def member(self) -> str:
        """The tar member name: the package path (v1 has no `.zst` members)."""
        return self.path

    @property
    def stored(self) -> bytes:
        return self.data

    def entry(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": len(self.data),
            "digest": str(hash_bytes(self.data)),
            "encoding": self.encoding,
            "role": self.role,
        }


def base_files() -> list[File]:
    return [
        File("card/MODEL_CARD.md", CARD, "card"),
        File("environment/requirements.lock", LOCK, "environment"),
        File("model/w.safetensors", WEIGHTS, "weights"),
    ]


def manifest_doc(files: Sequence[File], **overrides: Any) -> dict[str, Any]:
    """A valid manifest for ``files`` (which must include base_files()), then ``overrides``."""
    doc: dict[str, Any] = {
        "format_version": 1,
        "name": "victim",
        "version": "1.0.0",
        "model": {"format": "safetensors", "files": ["model/w.safetensors"], "architecture": {}},
        "contract": {
            "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 2]}],
            "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 1]}],
        },
        "environment": {"lockfile": "environment/requirements.lock", "kind": "requirements", "packages": []},
        "card": {"path": "card/MODEL_CARD.md", "metadata": {}},
        "files": [f.entry() for f in files],
    }
    doc.update(overrides)
    return doc


def member(name: str, data: bytes) -> bytes:
    """One canonical member: header, data, zero padding."""
    return layout.member_header(name, len(data)) + data + b"\0" * layout.padding(len(data))


def archive(chunks: Iterable[bytes]) -> bytes:
    """Concatenate member chunks and add the canonical end of archive."""
    body = b"".join(chunks)
    return body + layout.end_of_archive(len(body))


def envelope(
    manifest_bytes: bytes, keys: Sequence[PrivateKey], payload_type: str = PAYLOAD_TYPE, payload: bytes | None = None
) -> bytes:
    """A DSSE envelope for the package whose manifest is ``manifest_bytes``, signed by ``keys``
    over the PAE of ``payload_type`` (so a wrong type is a real signature, not a broken one)."""
    doc = json.loads(manifest_bytes)  # last key wins, like a lax parser would
    if payload is None:
        payload = statement(doc["name"], doc["version"], package_digest(manifest_bytes), doc["format_version"])
    sigs = sorted((key_id(k.public_key()), _sign_raw(k, pae(payload_type, payload))) for k in keys)
    return canonical.dumps(
        {
            "payload": base64.b64encode(payload).decode(),
            "payloadType": payload_type,
            "signatures": [{"keyid": kid, "sig": base64.b64encode(sig).decode()} for kid, sig in sigs],
        }
    )


def _sign_raw(key: PrivateKey, message: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    return key.sign(message, ec.ECDSA(hashes.SHA256()))


def package(
    files: Sequence[File] | None = None,
    doc: Mapping[str, Any] | None = None,
    keys: Sequence[PrivateKey] = (),
    manifest_bytes: bytes | None = None,
    members: Sequence[bytes] | None = None,
) -> bytes:
    """A package: members for ``files`` (or raw ``members``), the manifest, a signature envelope."""
    files = list(files if files is not None else base_files())
    if manifest_bytes is None:
        manifest_bytes = canonical.dumps(doc if doc is not None else manifest_doc(files))
    chunks = list(members) if members is not None else [member(f.member, f.stored) for f in files]
    chunks.append(member(MANIFEST_NAME, manifest_bytes))
    if keys:
        chunks.append(member(SIGNATURES_NAME, envelope(manifest_bytes, keys)))
    return archive(chunks)


def members_of(path: Path) -> list[tuple[str, bytes]]:
    """(member name, stored bytes) of every member of a (valid) package, in order."""
    with PackageFile(path) as pkg:
        return [(m.name, pkg.read(m)) for m in pkg.members]


def rebuild(pairs: Sequence[tuple[str, bytes]]) -> bytes:
    return archive(member(name, data) for name, data in pairs)


def ustar(
    name: bytes,
    size: int,
    typeflag: bytes = b"0",
    linkname: bytes = b"",
    mode: int = 0o644,
    uid: int = 0,
    mtime: int = 0,
    magic: bytes = b"ustar\x0000",
) -> bytes:
    """A hand-made ustar header block with a correct checksum (non-canonical fields allowed)."""
    h = bytearray(layout.BLOCK)
    h[0 : len(name)] = name
    h[100:108] = f"{mode:07o}\0".encode()
    h[108:116] = f"{uid:07o}\0".encode()
    h[116:124] = b"0000000\0"
    h[124:136] = f"{size:011o}\0".encode()
    h[136:148] = f"{mtime:011o}\0".encode()
    h[148:156] = b" " * 8
    h[156:157] = typeflag
    h[157 : 157 + len(linkname)] = linkname
    h[257:265] = magic
    h[329:337] = b"0000000\0"
    h[337:345] = b"0000000\0"
    h[148:156] = f"{sum(h):06o}\0 ".encode()
    return bytes(h)


def pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    return str(n).encode() + body


def pax_header(records: bytes, typeflag: bytes = b"x") -> bytes:
    return ustar(layout.PAX_NAME.encode(), len(records), typeflag) + records + b"\0" * layout.padding(len(records))


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def tree(root: Path) -> list[str]:
    """Every path under ``root`` (relative, sorted), to show nothing was written."""
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, ds, fs in os.walk(root) for n in ds + fs)
