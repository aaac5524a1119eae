"""The local store, write side: :class:`LocalBackend` adds atomic writes, links and the stage-move
lock to the runtime's :class:`mpkg._internal.registry.local.LocalStore` (layout: spec/registry.md §10).
Every write is temp file + fsync + rename, so a crash leaves the old or the new state, never a torn file.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mpkg._internal.io.atomic import temporary
from mpkg._internal.registry.local import LocalStore
from mpkg._internal.registry.refs import check_tag, is_digest
from mpkg._internal.registry.store import MAX_MANIFEST_BYTES, Progress, digest_bytes
from mpkg.errors import RegistryError

from .backend import read_file_range


class LocalBackend(LocalStore):
    """A directory that behaves like a registry: no server, same lifecycle commands."""

    def __init__(self, home: Path | None = None) -> None:
        super().__init__(home)
        self.blob_uploads = 0

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

    @contextmanager
    def lock(self, repo: str) -> Iterator[None]:
        """An exclusive lock on ``repo`` for a race-free read-check-write."""
        path = self._repo(repo) / "_lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def push_blob_file(
        self, repo: str, path: Path, digest: str, size: int, progress: Progress | None = None, offset: int = 0
    ) -> bool:
        """Store a file range as a blob unless present; True when bytes were written."""
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
                    for chunk in read_file_range(path, offset, size, hasher, progress):
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
        """Store small bytes as a blob; returns its digest."""
        digest = digest_bytes(data)
        if not self._blob_path(digest).is_file():
            self._write_atomic(self._blob_path(digest), data)
            self.blob_uploads += 1
        if not self._link(repo, "_layers", digest).exists():
            self._write_atomic(self._link(repo, "_layers", digest), b"")
        return digest

    def delete_blob(self, repo: str, digest: str) -> None:
        """Unlink a blob from ``repo`` (gc)."""
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

    def put_manifest(self, repo: str, reference: str, data: bytes) -> str:
        """Store a manifest under a tag or digest; returns its digest."""
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

    def delete_manifest(self, repo: str, digest: str) -> None:
        """Remove a manifest (gc)."""
        tags = self._repo(repo) / "_tags"
        if tags.is_dir():
            for tag in tags.iterdir():
                if tag.read_text().strip() == digest:
                    tag.unlink(missing_ok=True)
        self._link(repo, "_manifests", digest).unlink(missing_ok=True)
        self._collect(digest)
