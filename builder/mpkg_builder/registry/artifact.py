"""Writing the package artifact: a package as an OCI manifest over its pieces (spec/registry.md §2).

Reading it (and what a reference may resolve to) is the runtime's
:mod:`mpkg._internal.registry.artifact`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.manifest import Manifest as PackageManifest
from mpkg._internal.registry.artifact import ANNOTATION_DIGEST, ANNOTATION_METRICS, ANNOTATION_NAME, ANNOTATION_VERSION
from mpkg._internal.registry.layers import ANNOTATION_FILE, ANNOTATION_SIZE, FILE_TYPE, PART_TYPE, Layer, cut
from mpkg._internal.registry.store import PACKAGE_ARTIFACT_TYPE, PACKAGE_CONFIG_TYPE, Progress

from .backend import Backend, artifact_manifest, read_file_range


@dataclass(frozen=True)
class Pieces:
    """A package file cut for storage: its pieces in order (spec/registry.md §2.1), and the whole
    file's sha256 and size."""

    path: Path
    layers: tuple[Layer, ...]
    digest: str
    size: int


def cut_package(path: Path) -> Pieces:
    """Cut a package at its large members' data and hash every piece and the whole file in one
    pass over the bytes (bounded memory)."""
    with PackageFile(path) as pkg:
        members = [(m.name, m.data_offset, m.size) for m in pkg.members]
        size = pkg.size
    whole = hashlib.sha256()
    layers = []
    for offset, length, title in cut(members, size):
        piece = hashlib.sha256()
        for chunk in read_file_range(path, offset, length, piece):
            whole.update(chunk)
        kind = FILE_TYPE if title is not None else PART_TYPE
        layers.append(Layer("sha256:" + piece.hexdigest(), length, offset, kind, title))
    return Pieces(path, tuple(layers), "sha256:" + whole.hexdigest(), size)


def push_pieces(backend: Backend, repo: str, pieces: Pieces, progress: Progress | None = None) -> int:
    """Upload the pieces the store lacks (each HEADed first); returns the bytes sent."""
    sent = 0
    for layer in pieces.layers:
        if backend.push_blob_file(repo, pieces.path, layer.digest, layer.size, progress, offset=layer.offset):
            sent += layer.size
        elif progress is not None:
            progress(layer.size)
    return sent


def package_manifest(package: PackageManifest, pieces: Pieces, annotations: Mapping[str, str] | None = None) -> bytes:
    """The package's OCI manifest, in pieces: same package file, same bytes (no timestamps);
    ``annotations`` (what `mpkg ls` reads) added to its own."""
    name, version = package.name, package.version
    config = {"mediaType": PACKAGE_CONFIG_TYPE, "digest": str(package.digest), "size": len(package.encoded)}
    return artifact_manifest(
        PACKAGE_ARTIFACT_TYPE,
        [layer.descriptor() for layer in pieces.layers],
        {
            ANNOTATION_NAME: name,
            ANNOTATION_VERSION: version,
            ANNOTATION_DIGEST: str(package.digest),
            ANNOTATION_METRICS: json.dumps(package.metrics, sort_keys=True, separators=(",", ":")),
            ANNOTATION_FILE: pieces.digest,
            ANNOTATION_SIZE: str(pieces.size),
            "org.opencontainers.image.title": name,
            "org.opencontainers.image.version": version,
        }
        | dict(annotations or {}),
        config,
    )
