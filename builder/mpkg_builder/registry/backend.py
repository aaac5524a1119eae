"""The write side of the storage interface: :class:`Backend` extends the runtime's read-only
:class:`mpkg._internal.registry.store.Store` (an OCI registry, :mod:`.oci`, or the local store,
:mod:`.local`) with uploads, tags and deletes. The lifecycle (:mod:`.lifecycle`) only speaks
this interface, so push, promote, rollback, history and gc behave the same with or without a server.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from mpkg._internal.format import canonical
from mpkg._internal.registry.store import (
    EMPTY_DIGEST,
    EMPTY_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    READ_SIZE,
    Progress,
    Store,
)
from mpkg.errors import RegistryError


class Backend(Store, Protocol):
    """A store that can also be written: what push, promote, rollback and gc need."""

    def push_blob_file(
        self, repo: str, path: Path, digest: str, size: int, progress: Progress | None = None, offset: int = 0
    ) -> bool:
        """Store ``size`` bytes of a file from ``offset`` under ``digest`` unless present; True if bytes were sent.

        Streams from disk with bounded memory and re-hashes while streaming, so a file that
        changed since ``digest`` was computed is refused rather than stored under a lie.
        ``progress(n)`` is told each piece sent.
        """
        ...

    def push_blob_bytes(self, repo: str, data: bytes) -> str:
        """Store small bytes (events, the empty config) unless present; returns the digest."""
        ...

    def put_manifest(self, repo: str, reference: str, data: bytes) -> str:
        """Store a manifest under a tag or its own digest; returns the manifest digest."""
        ...

    def delete_manifest(self, repo: str, digest: str) -> None:
        """Delete a manifest by digest (and, as registries do, every tag naming it)."""
        ...

    def delete_blob(self, repo: str, digest: str) -> None:
        """Delete a blob from the repository (gc)."""
        ...

    def lock(self, repo: str) -> AbstractContextManager[None]:
        """Mutual exclusion for stage moves where the backend can give it (local store);
        a registry has no compare-and-swap, so there it is a no-op (see spec/registry.md)."""
        ...


def sha256_file(path: Path) -> tuple[str, int]:
    """Digest and size of a file, read in bounded pieces."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(READ_SIZE):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


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
    """The OCI empty config, inline (what artifacts without a config of their own carry)."""
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
