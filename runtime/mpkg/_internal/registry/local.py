"""The local store, read side: the same storage interface as a registry, on disk under ``MPKG_HOME``.

Layout (content-addressed; every write is temp file + rename, so a crash leaves either the
old or the new state, never a torn file)::

    MPKG_HOME/blobs/sha256/<hex>                 blob and manifest bytes
    MPKG_HOME/repositories/<repo>/_tags/<tag>    "sha256:<hex>\\n" of the tagged manifest
    MPKG_HOME/repositories/<repo>/_manifests/<hex>  the manifest belongs to the repository
    MPKG_HOME/repositories/<repo>/_layers/<hex>     the blob belongs to the repository
    MPKG_HOME/repositories/<repo>/_lock          flock(2) for stage moves
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

from mpkg.errors import RegistryError

from .refs import check_tag, is_digest
from .store import MAX_SMALL_BLOB_BYTES, READ_SIZE, Manifest, digest_bytes

LOCAL_ORIGIN = "_local"  # what clients remember the local store as (no host can start with "_")


def default_home() -> Path:
    """``MPKG_HOME``, or ``~/.cache/mpkg``: the local store and this client's state."""
    env = os.environ.get("MPKG_HOME")
    return Path(env) if env else Path.home() / ".cache" / "mpkg"


class LocalStore:
    """The read side of a directory that behaves like a registry: no server, same commands."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = (home or default_home()).expanduser()

    @property
    def origin(self) -> str:
        """The store's name in high-water marks and messages."""
        return LOCAL_ORIGIN

    def describe(self) -> str:
        """Where the store is, for messages."""
        return f"local store {self.home}"

    def close(self) -> None:
        """Nothing to close; part of the Store interface."""
        pass

    # --- paths and atomic writes ------------------------------------------------------

    def _blob_path(self, digest: str) -> Path:
        if not is_digest(digest):
            raise RegistryError(f"{digest!r} is not a sha256 digest", self.describe())
        return self.home / "blobs" / "sha256" / digest.split(":", 1)[1]

    def _repo(self, repo: str) -> Path:
        return self.home / "repositories" / repo

    def _link(self, repo: str, kind: str, digest: str) -> Path:
        return self._repo(repo) / kind / digest.split(":", 1)[1]

    # --- blobs ------------------------------------------------------------------------

    def blob_exists(self, repo: str, digest: str) -> bool:
        """Whether the blob is stored and linked to ``repo``."""
        return self._blob_path(digest).is_file() and self._link(repo, "_layers", digest).exists()

    def _open_blob(self, repo: str, digest: str, kind: str = "_layers") -> BinaryIO:
        if not self._link(repo, kind, digest).exists():
            raise RegistryError(f"blob {digest} is not in {repo}", self.describe())
        try:
            return self._blob_path(digest).open("rb")
        except FileNotFoundError:
            raise RegistryError(f"blob {digest} of {repo} is missing from the store", self.describe()) from None

    def fetch_blob(self, repo: str, digest: str, size: int, out: BinaryIO) -> None:
        """Copy a blob to ``out``, checking its size and digest while copying."""
        hasher = hashlib.sha256()
        got = 0
        with self._open_blob(repo, digest) as fh:
            while chunk := fh.read(READ_SIZE):
                got += len(chunk)
                if got > size:
                    break
                hasher.update(chunk)
                out.write(chunk)
        actual = "sha256:" + hasher.hexdigest()
        if got != size or actual != digest:
            raise RegistryError(
                f"blob {digest} in the store has digest {actual} or a wrong size; refusing tampered or corrupt content",
                self.describe(),
            )

    def fetch_blob_bytes(self, repo: str, digest: str, limit: int = MAX_SMALL_BLOB_BYTES) -> bytes:
        """A small blob's bytes, capped and checked against its digest."""
        with self._open_blob(repo, digest) as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise RegistryError(f"blob {digest} is larger than {limit} bytes", self.describe())
        if digest_bytes(data) != digest:
            raise RegistryError(f"blob {digest} in the store does not match its digest", self.describe())
        return data

    # --- manifests and tags -----------------------------------------------------------

    def _resolve(self, repo: str, reference: str) -> str | None:
        if is_digest(reference):
            return reference
        check_tag(reference)
        try:
            value = (self._repo(repo) / "_tags" / reference).read_text().strip()
        except FileNotFoundError:
            return None
        if not is_digest(value):
            raise RegistryError(f"tag {reference} of {repo} is corrupt", self.describe())
        return value

    def get_manifest(self, repo: str, reference: str) -> Manifest | None:
        """The manifest a tag or digest names in ``repo``, or None."""
        digest = self._resolve(repo, reference)
        if digest is None or not self._link(repo, "_manifests", digest).exists():
            return None
        try:
            data = self._blob_path(digest).read_bytes()
        except FileNotFoundError:
            return None
        if digest_bytes(data) != digest:
            raise RegistryError(
                f"manifest {digest} in the store does not match its digest; refusing it", self.describe()
            )
        return Manifest(data, digest)

    def list_tags(self, repo: str) -> list[str]:
        """Every tag of ``repo``, sorted."""
        tags = self._repo(repo) / "_tags"
        return sorted(p.name for p in tags.iterdir()) if tags.is_dir() else []
