"""Content digests: per-file BLAKE3 and the package's sha256.

Digests are written ``<algorithm>:<lowercase hex>``. The per-file algorithm is
named in the manifest (spec/format.md §4): BLAKE3 because it hashes at memory
speed on both cores, so verification costs about one read of the bytes.
Hashing walks files through bounded memory-mapped windows, so the resident set
stays constant whatever the model's size.
"""

from __future__ import annotations

import hashlib
import mmap
import re
from dataclasses import dataclass
from typing import BinaryIO

import blake3

FILE_DIGEST_ALGORITHM = "blake3"
PACKAGE_DIGEST_ALGORITHM = "sha256"
# Window mapped at a time; large enough for BLAKE3's threads, small enough to bound RSS.
WINDOW = 64 * 1024 * 1024
_HEX_LEN = {"blake3": 64, "sha256": 64}
_DIGEST = re.compile(r"^(blake3|sha256):([0-9a-f]{64})\Z")


@dataclass(frozen=True, order=True)
class Digest:
    """A digest as the manifest writes it, ``algorithm:hex``."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: object) -> Digest | None:
        """The digest in ``text``, or None if it is not of a known form."""
        if not isinstance(text, str):
            return None
        m = _DIGEST.match(text)
        return cls(m.group(1), m.group(2)) if m else None


def new_file_hasher() -> blake3.blake3:
    """The per-file hasher (BLAKE3, multithreaded for large files)."""
    return blake3.blake3(max_threads=blake3.blake3.AUTO)


def package_digest(manifest_bytes: bytes) -> Digest:
    """The package digest: sha256 of the canonical manifest bytes."""
    return Digest(PACKAGE_DIGEST_ALGORITHM, hashlib.sha256(manifest_bytes).hexdigest())


def hash_range(f: BinaryIO, offset: int, length: int, hasher: blake3.blake3 | None = None) -> Digest:
    """BLAKE3 of ``length`` bytes at ``offset`` of an open file, through bounded mmap windows."""
    h = hasher or new_file_hasher()
    update_from_fd(h, f.fileno(), offset, length)
    return Digest(FILE_DIGEST_ALGORITHM, h.hexdigest())


def update_from_fd(hasher: blake3.blake3, fd: int, offset: int, length: int) -> None:
    """Feed ``length`` bytes at ``offset`` of ``fd`` (opened readable) to ``hasher`` through
    mmap windows of at most WINDOW bytes, each dropped from this process once hashed."""
    pos = offset
    end = offset + length
    while pos < end:
        start = pos - pos % mmap.ALLOCATIONGRANULARITY
        size = min(WINDOW, end - start)
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ, offset=start) as window:
            window.madvise(mmap.MADV_SEQUENTIAL)
            with memoryview(window) as view:
                hasher.update(view[pos - start : size])
            # Drop the pages from this process (they stay in the page cache) to keep RSS flat.
            window.madvise(mmap.MADV_DONTNEED)
        pos = start + size


def hash_bytes(data: bytes | memoryview) -> Digest:
    """The file digest of bytes already in memory."""
    h = new_file_hasher()
    h.update(data)
    return Digest(FILE_DIGEST_ALGORITHM, h.hexdigest())
