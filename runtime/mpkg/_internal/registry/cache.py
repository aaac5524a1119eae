"""A client-side cache of immutable registry content (history events), by sha256 digest.

Events never change once written and are named by digest, so a client reads each one from a
registry once: a history read costs one tag listing plus the new events, not a round trip per
event. Every read re-hashes the bytes; anything that does not match its name is dropped and
fetched again, so a damaged or tampered cache can cost time, never trust. Failing to write the
cache is never an error.

Layout: ``MPKG_HOME/cache/sha256/<hex>``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from mpkg._internal.io.atomic import atomic_output
from mpkg.errors import MpkgError

from .refs import is_digest
from .store import MAX_SMALL_BLOB_BYTES, digest_bytes


class DiskCache:
    """Small registry blobs by digest under MPKG_HOME, re-hashed on every read."""

    def __init__(self, home: Path) -> None:
        self.root = home / "cache" / "sha256"

    def _path(self, digest: str) -> Path | None:
        return self.root / digest.split(":", 1)[1] if is_digest(digest) else None

    def get(self, digest: str) -> bytes | None:
        """The blob's bytes if cached and still matching its digest, else None."""
        path = self._path(digest)
        if path is None:
            return None
        try:
            with path.open("rb") as fh:
                data = fh.read(MAX_SMALL_BLOB_BYTES + 1)
        except OSError:
            return None
        if digest_bytes(data) != digest:
            path.unlink(missing_ok=True)
            return None
        return data

    def put(self, digest: str, data: bytes) -> None:
        """Cache a small blob that matches its digest; a failure to write is not an error."""
        path = self._path(digest)
        if path is None or digest_bytes(data) != digest or len(data) > MAX_SMALL_BLOB_BYTES:
            return
        with contextlib.suppress(OSError, MpkgError):
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(path) as out:
                out.write(data)
