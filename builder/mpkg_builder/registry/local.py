"""The local store: the same storage interface as a registry, on disk under ``MPKG_HOME``.

Layout (content-addressed; every write is temp file + rename, so a crash leaves either the
old or the new state, never a torn file)::

    MPKG_HOME/blobs/sha256/<hex>                 blob and manifest bytes
    MPKG_HOME/repositories/<repo>/_tags/<tag>    "sha256:<hex>\\n" of the tagged manifest
    MPKG_HOME/repositories/<repo>/_manifests/<hex>  the manifest belongs to the repository
    MPKG_HOME/repositories/<repo>/_layers/<hex>     the blob belongs to the repository
    MPKG_HOME/repositories/<repo>/_lock          flock(2) for stage moves
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from mpkg._internal.io.atomic import temporary
from mpkg.errors import RegistryError

from .backend import (
    MAX_MANIFEST_BYTES,
    MAX_SMALL_BLOB_BYTES,
    READ_SIZE,
    Manifest,
    Progress,
    digest_bytes,
    read_file_range,
)
from .refs import check_tag, is_digest

LOCAL_ORIGIN = "_local"  # what clients remember the local store as (no host can start with "_")


def default_home() -> Path:
    env = os.environ.get("MPKG_HOME")
    return Path(env) if env else Path.home() / ".cache" / "mpkg"


class LocalBackend:
    """A directory that behaves like a registry: no server, same lifecycle commands."""

    def __init__(self, home: Path | None = None) -> None:
        self.home = (home or default_home()).expanduser()
        self.blob_uploads = 0

    @property
    def origin(self) -> str:
        return LOCAL_ORIGIN

    def describe(self) -> str:
        return f"local store {self.home}"

    def close(self) -> None:
        pass

    # --- paths and atomic writes ------------------------------------------------------

    def _blob_path(self, digest: str) -> Path:
        if not is_digest(digest):
            raise RegistryError(f"{digest!r} is not a sha256 digest", self.describe())
        return self.home / "blobs" / "sha256" / digest.split(":", 1)[1]

    def _repo(self, repo: str) -> Path:
        return self.home / "repositories" / repo

    def _tmp(self) -> Path:
        tmp = self.home / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    def _write_atomic(self, target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary(self._tmp() / "w")  # locked, removed on signals, swept if orphaned
        try:
            with tmp.open() as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.commit(target)
        finally:
            tmp.release()

    def _link(self, repo: str, kind: str, digest: str) -> Path:
        return self._repo(repo) / kind / digest.split(":", 1)[1]

    @contextmanager
    def lock(self, repo: str) -> Iterator[None]:
        path = self._repo(repo) / "_lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # --- blobs ------------------------------------------------------------------------

    def blob_exists(self, repo: str, digest: str) -> bool:
        return self._blob_path(digest).is_file() and self._link(repo, "_layers", digest).exists()

    def push_blob_file(self, repo: str, path: Path, digest: str, size: int, progress: Progress | None = None) -> bool:
        if self.blob_exists(repo, digest):
            return False
        target = self._blob_path(digest)
        uploaded = False
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            hasher = hashlib.sha256()
            tmp = temporary(self._tmp() / "b")
            try:
                with tmp.open() as out:
                    for chunk in read_file_range(path, 0, size, hasher, progress):
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                if "sha256:" + hasher.hexdigest() != digest:
                    raise RegistryError("file changed while storing it; push it again", str(path))
                tmp.commit(target)
            finally:
                tmp.release()
            uploaded = True
            self.blob_uploads += 1
        self._write_atomic(self._link(repo, "_layers", digest), b"")
        return uploaded

    def push_blob_bytes(self, repo: str, data: bytes) -> str:
        digest = digest_bytes(data)
        if not self._blob_path(digest).is_file():
            self._write_atomic(self._blob_path(digest), data)
            self.blob_uploads += 1
        if not self._link(repo, "_layers", digest).exists():
            self._write_atomic(self._link(repo, "_layers", digest), b"")
        return digest

    def _open_blob(self, repo: str, digest: str, kind: str = "_layers") -> BinaryIO:
        if not self._link(repo, kind, digest).exists():
            raise RegistryError(f"blob {digest} is not in {repo}", self.describe())
        try:
            return self._blob_path(digest).open("rb")
        except FileNotFoundError:
            raise RegistryError(f"blob {digest} of {repo} is missing from the store", self.describe()) from None

    def fetch_blob(self, repo: str, digest: str, size: int, out: BinaryIO) -> None:
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
        with self._open_blob(repo, digest) as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise RegistryError(f"blob {digest} is larger than {limit} bytes", self.describe())
        if digest_bytes(data) != digest:
            raise RegistryError(f"blob {digest} in the store does not match its digest", self.describe())
        return data

    def delete_blob(self, repo: str, digest: str) -> None:
        self._link(repo, "_layers", digest).unlink(missing_ok=True)
        self._collect(digest)

    def _collect(self, digest: str) -> None:
        """Remove a blob's bytes once no repository links it any more."""
        hexpart = digest.split(":", 1)[1]
        root = self.home / "repositories"
        if root.is_dir():
            for kind in ("_layers", "_manifests"):
                if any(root.glob(f"**/{kind}/{hexpart}")):
                    return
        self._blob_path(digest).unlink(missing_ok=True)

    # --- manifests and tags -----------------------------------------------------------

    def put_manifest(self, repo: str, reference: str, data: bytes) -> str:
        if len(data) > MAX_MANIFEST_BYTES:
            raise RegistryError("manifest is too large", self.describe())
        digest = digest_bytes(data)
        if is_digest(reference):
            if reference != digest:
                raise RegistryError(f"manifest bytes do not match {reference}", self.describe())
        else:
            check_tag(reference)
        if not self._blob_path(digest).is_file():
            self._write_atomic(self._blob_path(digest), data)
        self._write_atomic(self._link(repo, "_manifests", digest), b"")
        if not is_digest(reference):
            self._write_atomic(self._repo(repo) / "_tags" / reference, digest.encode() + b"\n")
        return digest

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
        tags = self._repo(repo) / "_tags"
        return sorted(p.name for p in tags.iterdir()) if tags.is_dir() else []

    def delete_manifest(self, repo: str, digest: str) -> None:
        tags = self._repo(repo) / "_tags"
        if tags.is_dir():
            for tag in tags.iterdir():
                if tag.read_text().strip() == digest:
                    tag.unlink(missing_ok=True)
        self._link(repo, "_manifests", digest).unlink(missing_ok=True)
        self._collect(digest)
