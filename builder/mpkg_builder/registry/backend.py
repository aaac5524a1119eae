"""One storage interface, two backends: an OCI registry (:mod:`.oci`) and the local store
(:mod:`.local`). The lifecycle (:mod:`.lifecycle`) only speaks this interface, so push, pull,
promote, rollback, history and gc behave the same with or without a server.

The primitives are the OCI distribution ones (content-addressed blobs, manifests, tags),
because that is what every registry can do; nothing here needs an OCI 1.1 registry.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from mpkg._internal.format import canonical
from mpkg.errors import RegistryError

Progress = Callable[[int], None]  # told the size of each piece moved, for progress bars

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
EMPTY_MEDIA_TYPE = "application/vnd.oci.empty.v1+json"
EMPTY_DATA = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY_DATA).hexdigest()
PACKAGE_ARTIFACT_TYPE = "application/vnd.mpkg.package.v1"
PACKAGE_LAYER_TYPE = "application/vnd.mpkg.package.v1.tar"
PACKAGE_CONFIG_TYPE = "application/vnd.mpkg.manifest.v1+json"  # config blob: the package's own manifest
EVENT_ARTIFACT_TYPE = "application/vnd.mpkg.event.v1"
EVENT_LAYER_TYPE = "application/vnd.mpkg.event.v1+json"
DSSE_LAYER_TYPE = "application/vnd.dsse.envelope.v1+json"
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_SMALL_BLOB_BYTES = 4 * 1024 * 1024  # events, envelopes: fetched into memory
MAX_JSON_DEPTH = 64  # registry JSON (manifests, events, tag lists) nests a few levels; deeper is hostile
READ_SIZE = 1024 * 1024
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"[]{}")
_NESTING = [0] * 256
_NESTING[ord("[")] = _NESTING[ord("{")] = 1
_NESTING[ord("]")] = _NESTING[ord("}")] = -1


def json_depth(data: bytes) -> int:
    """How deeply ``data`` nests arrays and objects, found without parsing (so without recursion):
    strings are dropped, the brackets left are counted in C-speed passes."""
    brackets = _JSON_STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(map(_NESTING.__getitem__, brackets)), default=0)


def check_depth(data: bytes, where: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Refuse JSON nested beyond ``max_depth`` before any parser (or encoder) recurses into it."""
    depth = json_depth(data)
    if depth > max_depth:
        raise RegistryError(f"nests {depth} levels deep (at most {max_depth}); refusing hostile JSON", where)


def parse_json(data: bytes, where: str) -> Any:
    """Parse JSON a registry (or the store) gave us, depth-checked first, so a hostile document
    ends in one line rather than a RecursionError."""
    check_depth(data, where)
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise RegistryError(f"is not JSON ({exc})", where) from None


@dataclass(frozen=True)
class Manifest:
    """Manifest bytes exactly as stored, and their digest."""

    data: bytes
    digest: str

    def json(self) -> dict[str, Any]:
        obj = parse_json(self.data, f"manifest {self.digest}")
        if not isinstance(obj, dict):
            raise RegistryError("manifest is not a JSON object", self.digest)
        return obj


class Backend(Protocol):
    """Content-addressed storage with tags. ``repo`` is a repository path (no host)."""

    def describe(self) -> str:
        """Where this backend stores things, for messages."""
        ...

    @property
    def origin(self) -> str:
        """Which store this is, as a client remembers it (a registry's host, ``_local``)."""
        ...

    def blob_exists(self, repo: str, digest: str) -> bool: ...

    def push_blob_file(self, repo: str, path: Path, digest: str, size: int, progress: Progress | None = None) -> bool:
        """Store a file's bytes under ``digest`` unless present; True if bytes were sent.

        Streams from disk with bounded memory and re-hashes while streaming, so a file that
        changed since ``digest`` was computed is refused rather than stored under a lie.
        ``progress(n)`` is told each piece sent.
        """
        ...

    def push_blob_bytes(self, repo: str, data: bytes) -> str:
        """Store small bytes (events, the empty config) unless present; returns the digest."""
        ...

    def fetch_blob(self, repo: str, digest: str, size: int, out: BinaryIO) -> None:
        """Stream a blob into ``out``; raises RegistryError unless digest and size match."""
        ...

    def fetch_blob_bytes(self, repo: str, digest: str, limit: int = MAX_SMALL_BLOB_BYTES) -> bytes: ...

    def put_manifest(self, repo: str, reference: str, data: bytes) -> str:
        """Store a manifest under a tag or its own digest; returns the manifest digest."""
        ...

    def get_manifest(self, repo: str, reference: str) -> Manifest | None:
        """The manifest a tag or digest names, or None if there is none."""
        ...

    def list_tags(self, repo: str) -> list[str]: ...

    def delete_manifest(self, repo: str, digest: str) -> None:
        """Delete a manifest by digest (and, as registries do, every tag naming it)."""
        ...

    def delete_blob(self, repo: str, digest: str) -> None: ...

    def lock(self, repo: str) -> AbstractContextManager[None]:
        """Mutual exclusion for stage moves where the backend can give it (local store);
        a registry has no compare-and-swap, so there it is a no-op (see spec/registry.md)."""
        ...

    def close(self) -> None: ...


def sha256_file(path: Path) -> tuple[str, int]:
    """Digest and size of a file, read in bounded pieces."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(READ_SIZE):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def digest_bytes(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 JSON, as for manifests: same input, same bytes, same digest."""
    return canonical.dumps(obj)


def read_file_range(
    path: Path, start: int, length: int, hasher: Any, progress: Progress | None = None
) -> Iterator[bytes]:
    """Yield ``length`` bytes of ``path`` from ``start`` in bounded pieces, feeding ``hasher``."""
    with path.open("rb") as fh:
        fh.seek(start)
        left = length
        while left > 0:
            chunk = fh.read(min(READ_SIZE, left))
            if not chunk:
                raise RegistryError("file shrank while uploading; push it again", str(path))
            hasher.update(chunk)
            left -= len(chunk)
            if progress:
                progress(len(chunk))
            yield chunk


def empty_descriptor() -> dict[str, Any]:
    return {"mediaType": EMPTY_MEDIA_TYPE, "digest": EMPTY_DIGEST, "size": 2, "data": "e30="}


def artifact_manifest(
    artifact_type: str,
    layers: list[dict[str, Any]],
    annotations: dict[str, str],
    config: dict[str, Any] | None = None,
) -> bytes:
    """An OCI 1.1 artifact as an image manifest (works on 2.x registries); the config is the
    empty one unless the artifact has metadata worth reading on its own."""
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "artifactType": artifact_type,
        "config": config or empty_descriptor(),
        "layers": layers,
    }
    if annotations:
        manifest["annotations"] = annotations
    return canonical_json(manifest)
