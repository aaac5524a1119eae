"""The canonical archive writer: streams files in, hashing exactly what it writes.

Files must be added in manifest order (sorted by path); each entry records the
size and digest of the bytes actually written, so the manifest describes the
archive, not the source at some other moment.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import zstandard
from mpkg import layout
from mpkg.digests import FILE_DIGEST_ALGORITHM, Digest, new_file_hasher
from mpkg.errors import SourceError
from mpkg.manifest import MANIFEST_NAME, SIGNATURES_NAME, FileEntry

# Fixed compressor parameters: part of "same mpkg version gives the same bytes" (spec §3.3).
ZSTD_LEVEL = 19
CHUNK = 8 * 1024 * 1024
MAX_COMPRESSED_SOURCE = 256 * 1024 * 1024

Progress = Callable[[int], None]


def compress(data: bytes) -> bytes:
    cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True, write_checksum=False, threads=0)
    return cctx.compress(data)


class ArchiveWriter:
    """Writes members to an open binary file in canonical form."""

    def __init__(self, out: BinaryIO, progress: Progress | None = None) -> None:
        self._out = out
        self._offset = 0
        self._last_path: bytes | None = None
        self._progress = progress
        self._buffer = bytearray(CHUNK)

    def _write(self, data: bytes | memoryview) -> None:
        self._out.write(data)
        self._offset += len(data)

    def _member(self, name: str, data: bytes) -> None:
        self._write(layout.member_header(name, len(data)))
        self._write(data)
        self._write(b"\0" * layout.padding(len(data)))

    def _check_order(self, path: str) -> None:
        key = path.encode("utf-8")
        if self._last_path is not None and key <= self._last_path:
            raise ValueError(f"files must be added in sorted order: {path!r}")
        self._last_path = key

    def add_file(self, path: str, source: Path, role: str, compressed: bool) -> FileEntry:
        """Stream ``source`` into the archive as ``path``; hash while copying."""
        self._check_order(path)
        if compressed:
            size = source.stat().st_size
            if size > MAX_COMPRESSED_SOURCE:
                raise SourceError(
                    f"is {size} bytes; only weight files may exceed {MAX_COMPRESSED_SOURCE} bytes", str(source)
                )
            return self.add_bytes(path, source.read_bytes(), role, compressed=True, _checked=True)
        with open(source, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self._write(layout.member_header(path, size))
            hasher = new_file_hasher()
            view = memoryview(self._buffer)
            remaining = size
            while remaining:
                n = f.readinto(view[: min(CHUNK, remaining)])
                if not n:
                    raise SourceError("changed size while being packed; build again", str(source))
                chunk = view[:n]
                hasher.update(chunk)
                self._write(chunk)
                remaining -= n
                if self._progress:
                    self._progress(n)
            if f.read(1):
                raise SourceError("grew while being packed; build again", str(source))
            self._write(b"\0" * layout.padding(size))
        return FileEntry(path, size, Digest(FILE_DIGEST_ALGORITHM, hasher.hexdigest()), "identity", role)

    def add_bytes(
        self, path: str, data: bytes, role: str, compressed: bool, _checked: bool = False
    ) -> FileEntry:
        if not _checked:
            self._check_order(path)
        hasher = new_file_hasher()
        hasher.update(data)
        digest = Digest(FILE_DIGEST_ALGORITHM, hasher.hexdigest())
        entry = FileEntry(path, len(data), digest, "zstd" if compressed else "identity", role)
        self._member(entry.member_name, compress(data) if compressed else data)
        if self._progress:
            self._progress(len(data))
        return entry

    def finish(self, manifest: bytes, signatures: bytes | None = None) -> None:
        """Write the manifest, the optional signature envelope and the end of archive."""
        self._member(MANIFEST_NAME, manifest)
        if signatures is not None:
            self._member(SIGNATURES_NAME, signatures)
        self._write(layout.end_of_archive(self._offset))

    @property
    def offset(self) -> int:
        return self._offset
