"""The per-file artifact layout: a package stored as pieces of its archive, reassembled byte-exact.

The `.mpkg` archive is a pure function of its members (spec/format.md §3), so it can be cut at
member-data boundaries and put back by concatenation. Each member whose data is at least
:data:`SEPARATE_MIN` bytes (weights, large ONNX graphs) is its own layer holding exactly its
data (``application/vnd.mpkg.file.v1``), so versions that share a file share its blob wherever
it sits in the archive; everything between (headers, padding, small members, the manifest, the
signatures, the end of archive) is a *part* layer (``application/vnd.mpkg.package.v1.tar.part``).
The layers in order, concatenated, are the `.mpkg` file: its sha256 and size are the artifact's
``dev.mpkg.package.file`` and ``dev.mpkg.package.size`` annotations, checked after reassembly.

Artifacts written by mpkg before this layout have one layer, the whole file
(``application/vnd.mpkg.package.v1.tar``); they read as a layout of one piece.

A blob already on this machine is copied instead of downloaded (:class:`LocalBlobs`): the local
store's blobs and the pieces of packages in the package cache, each re-hashed while copied; a
copy that does not match is dropped and the blob downloaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from mpkg._internal.format.canonical import dumps as canonical_json
from mpkg._internal.io.atomic import atomic_output
from mpkg.errors import MpkgError, RegistryError

from .refs import is_digest
from .store import PACKAGE_LAYER_TYPE, READ_SIZE, Manifest, Progress, Store

PART_TYPE = "application/vnd.mpkg.package.v1.tar.part"
FILE_TYPE = "application/vnd.mpkg.file.v1"
TITLE = "org.opencontainers.image.title"
ANNOTATION_FILE = "dev.mpkg.package.file"  # sha256 of the whole .mpkg
ANNOTATION_SIZE = "dev.mpkg.package.size"  # its size in bytes
SEPARATE_MIN = 1024 * 1024  # members this large get a layer of their own
MAX_LAYERS = 100_003  # a package holds at most 100,002 members (spec/format.md §12), one part between each
INDEX_SUFFIX = ".layers.json"


@dataclass(frozen=True)
class Layer:
    """One piece of the archive: its blob digest and size, and where it starts in the file."""

    digest: str
    size: int
    offset: int
    media_type: str = PART_TYPE
    title: str | None = None

    def descriptor(self) -> dict[str, Any]:
        """The OCI descriptor of this piece."""
        doc: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.title is not None:
            doc["annotations"] = {TITLE: self.title}
        return doc


def read_layers(doc: Mapping[str, Any], where: str) -> tuple[Layer, ...] | None:
    """The pieces an artifact manifest lists in order, or None if it is not a package layout."""
    layers = doc.get("layers")
    if not isinstance(layers, list) or not 0 < len(layers) <= MAX_LAYERS:
        return None
    out: list[Layer] = []
    offset = 0
    single = len(layers) == 1 and isinstance(layers[0], dict) and layers[0].get("mediaType") == PACKAGE_LAYER_TYPE
    for layer in layers:
        if not isinstance(layer, dict):
            return None
        kind, digest, size = layer.get("mediaType"), layer.get("digest"), layer.get("size")
        if (
            not (single or kind in (PART_TYPE, FILE_TYPE))
            or not isinstance(digest, str)
            or not is_digest(digest)
            or not isinstance(size, int)
            or isinstance(size, bool)
            or size < 0
        ):
            return None
        title = (layer.get("annotations") or {}).get(TITLE) if isinstance(layer.get("annotations"), dict) else None
        out.append(Layer(digest, size, offset, str(kind), title if isinstance(title, str) else None))
        offset += size
    return tuple(out)


def cut(members: list[tuple[str, int, int]], file_size: int) -> list[tuple[int, int, str | None]]:
    """Where to cut an archive: ``(offset, size, title)`` pieces from its members' ``(name,
    data offset, size)``. Large members' data stand alone (title: the member name)."""
    pieces: list[tuple[int, int, str | None]] = []
    pos = 0
    for name, offset, size in members:
        if size < SEPARATE_MIN or name.startswith("mpkg/"):
            continue
        if offset > pos:
            pieces.append((pos, offset - pos, None))
        pieces.append((offset, size, name))
        pos = offset + size
    if file_size > pos or not pieces:
        pieces.append((pos, file_size - pos, None))
    return pieces


class LocalBlobs:
    """Blobs this machine already holds: the local store's, and the pieces of cached packages
    (each cached package has an index of its layers beside it)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._index: dict[str, tuple[Path, int]] | None = None

    def _cached_pieces(self) -> dict[str, tuple[Path, int]]:
        if self._index is None:
            self._index = {}
            folder = self.home / "packages" / "sha256"
            for index in sorted(folder.glob("*" + INDEX_SUFFIX)) if folder.is_dir() else []:
                package = index.with_name(index.name[: -len(INDEX_SUFFIX)] + ".mpkg")
                with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
                    for digest, offset in json.loads(index.read_bytes()[: 16 * 1024 * 1024])["layers"]:
                        if isinstance(digest, str) and isinstance(offset, int) and package.is_file():
                            self._index.setdefault(digest, (package, offset))
        return self._index

    def find(self, digest: str, size: int) -> tuple[Path, int] | None:
        """A file and offset where ``size`` bytes with this digest may be, or None."""
        stored = self.home / "blobs" / "sha256" / digest.split(":", 1)[1]
        with contextlib.suppress(OSError):
            if stored.stat().st_size == size:
                return stored, 0
        return self._cached_pieces().get(digest)

    def record(self, package: Path, layers: tuple[Layer, ...]) -> None:
        """Remember where a cached package's pieces are, for the next version's pull."""
        index = package.with_name(package.name[: -len(".mpkg")] + INDEX_SUFFIX)
        with contextlib.suppress(OSError, MpkgError), atomic_output(index) as out:
            out.write(canonical_json({"layers": [[layer.digest, layer.offset] for layer in layers]}))


class _Hashing:
    """A writable file that hashes what passes through (the whole reassembled package)."""

    def __init__(self, out: BinaryIO, progress: Progress | None) -> None:
        self.out, self.progress, self.hasher, self.size = out, progress, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        """Write and hash (and tell the progress bar)."""
        self.hasher.update(data)
        self.size += len(data)
        if self.progress is not None:
            self.progress(len(data))
        return self.out.write(data)


def _copy_range(source: Path, offset: int, size: int, digest: str, sink: _Hashing) -> bool:
    """Copy a local piece into ``sink`` if its bytes hash to ``digest``; on a mismatch (a damaged
    or changed local file) undo what was written and return False."""
    hasher = hashlib.sha256()
    start, saved, written = sink.out.tell(), sink.hasher.copy(), sink.size
    left = size
    try:
        with source.open("rb") as fh:
            fh.seek(offset)
            while left > 0:
                chunk = fh.read(min(READ_SIZE, left))
                if not chunk:
                    break
                hasher.update(chunk)
                sink.write(chunk)
                left -= len(chunk)
    except OSError:
        left = 1
    if left == 0 and "sha256:" + hasher.hexdigest() == digest:
        return True
    sink.out.seek(start)
    sink.out.truncate()
    sink.hasher, sink.size = saved, written
    return False


def assemble(
    store: Store,
    repo: str,
    layers: tuple[Layer, ...],
    out: BinaryIO,
    whole: tuple[str, int],
    where: str,
    local: LocalBlobs | None = None,
    progress: Progress | None = None,
) -> int:
    """Write the pieces in order into ``out`` (a file opened for writing at its start): copied when
    this machine holds them, else downloaded and checked against their descriptors; then check the
    whole file is ``whole`` (sha256, size), the one pushed. Returns the bytes downloaded."""
    downloaded = 0
    sink = _Hashing(out, progress)
    for layer in layers:
        found = local.find(layer.digest, layer.size) if local is not None else None
        if found is not None and _copy_range(found[0], found[1], layer.size, layer.digest, sink):
            continue  # else the local copy did not match: undone, download it
        store.fetch_blob(repo, layer.digest, layer.size, cast(BinaryIO, sink))
        downloaded += layer.size
    actual = "sha256:" + sink.hasher.hexdigest()
    if (actual, sink.size) != whole:
        raise RegistryError(
            f"the reassembled package has digest {actual} and {sink.size} bytes, not the {whole[0]} and "
            f"{whole[1]} its artifact names; refusing it",
            where,
        )
    return downloaded


def layers_of(manifest: Manifest, where: str) -> tuple[Layer, ...]:
    """The pieces of a package artifact, in archive order."""
    found = read_layers(manifest.json(), where)
    if found is None:
        raise RegistryError("is not an mpkg package artifact (its layers are not a package layout)", where)
    return found
