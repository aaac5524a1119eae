"""The write side of the OCI distribution API over :class:`mpkg._internal.registry.oci.OciClient`.

Follows the distribution spec: HEAD a blob before uploading; monolithic POST+PUT for small
blobs, POST → PATCH (Content-Range) → PUT ?digest= for large ones; manifests PUT by tag or
digest; deletes for gc. Every exchange is bounded by the client's limits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext, suppress
from pathlib import Path
from urllib.parse import urlencode, urljoin

from mpkg._internal.registry.auth import Credentials
from mpkg._internal.registry.oci import OciClient
from mpkg._internal.registry.store import MANIFEST_MEDIA_TYPE, Progress, digest_bytes
from mpkg._internal.registry.transport import Body, Limits
from mpkg.errors import RegistryError

from .backend import read_file_range

DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024
DEFAULT_MONOLITHIC_LIMIT = 64 * 1024 * 1024


class _StreamHash:
    """sha256 over a file sent in ranges; a resent range (after a 401) is not hashed twice."""

    def __init__(self) -> None:
        self.committed = hashlib.sha256()
        self.pending = self.committed

    def body(
        self, path: Path, start: int, length: int, progress: Progress | None = None
    ) -> Callable[[], Iterable[bytes]]:
        def make() -> Iterable[bytes]:
            self.pending = self.committed.copy()
            return read_file_range(path, start, length, self.pending, progress)

        return make

    def commit(self) -> None:
        self.committed = self.pending

    def digest(self) -> str:
        return "sha256:" + self.committed.hexdigest()


class OciBackend(OciClient):
    """A registry that push, promote, rollback and gc write to: uploads skip blobs already
    present, large ones go in chunks; ``blob_uploads`` counts blobs whose bytes were sent."""

    def __init__(
        self,
        host: str,
        *,
        insecure: bool = False,
        credentials: Credentials | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        monolithic_limit: int = DEFAULT_MONOLITHIC_LIMIT,
        limits: Limits | None = None,
    ) -> None:
        super().__init__(host, insecure=insecure, credentials=credentials, limits=limits)
        self.chunk_size = chunk_size
        self.monolithic_limit = monolithic_limit
        self.blob_uploads = 0  # blobs whose bytes were actually sent (idempotence is observable)

    def __enter__(self) -> OciBackend:
        return self

    def lock(self, repo: str) -> AbstractContextManager[None]:
        """No lock: a registry has no compare-and-swap (spec/registry.md §7)."""
        return nullcontext()

    def _start_upload(self, repo: str) -> str:
        resp, body = self._http.exchange(
            "POST", self._url(repo, "blobs/uploads/"), scope=self._scope(repo, "pull,push")
        )
        if resp.status_code != 202 or "location" not in resp.headers:
            raise self._http.fail(resp, body, f"start upload to {repo}")
        return urljoin(self.base + "/", resp.headers["location"])

    @staticmethod
    def _with_query(location: str, **params: str) -> str:
        return location + ("&" if "?" in location else "?") + urlencode(params)

    def _finish_upload(self, repo: str, location: str, digest: str, body: Body, size: int) -> None:
        resp, answer = self._http.exchange(
            "PUT",
            self._with_query(location, digest=digest),
            scope=self._scope(repo, "pull,push"),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            body=body,
            seconds=self.limits.transfer_seconds(size),
        )
        if resp.status_code != 201:
            raise self._http.fail(resp, answer, f"upload {digest} to {repo}")

    def push_blob_bytes(self, repo: str, data: bytes) -> str:
        """Upload small bytes as a blob; returns its digest."""
        digest = digest_bytes(data)
        if not self.blob_exists(repo, digest):
            self._finish_upload(repo, self._start_upload(repo), digest, data, len(data))
            self.blob_uploads += 1
        return digest

    def push_blob_file(
        self, repo: str, path: Path, digest: str, size: int, progress: Progress | None = None, offset: int = 0
    ) -> bool:
        """Upload a file range as a blob unless the registry has it; True when bytes were sent."""
        if self.blob_exists(repo, digest):
            return False
        location = self._start_upload(repo)
        hasher = _StreamHash()
        if size <= self.monolithic_limit:
            # the registry checks ?digest= against what it received: a changed file is refused
            self._finish_upload(repo, location, digest, hasher.body(path, offset, size, progress), size)
        else:
            start = 0  # within the blob; the file is read from offset + start
            while start < size:
                length = min(self.chunk_size, size - start)
                resp, answer = self._http.exchange(
                    "PATCH",
                    location,
                    scope=self._scope(repo, "pull,push"),
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{start}-{start + length - 1}",
                        "Content-Length": str(length),
                    },
                    body=hasher.body(path, offset + start, length, progress),
                    seconds=self.limits.transfer_seconds(length),
                )
                if resp.status_code != 202 or "location" not in resp.headers:
                    raise self._http.fail(resp, answer, f"upload chunk at {start} to {repo}")
                hasher.commit()
                location = urljoin(self.base + "/", resp.headers["location"])
                start += length
            if hasher.digest() != digest:
                self._abort(repo, location)
                raise RegistryError("file changed while uploading; push it again", str(path))
            self._finish_upload(repo, location, digest, b"", 0)
        self.blob_uploads += 1
        return True

    def _abort(self, repo: str, location: str) -> None:
        with suppress(RegistryError):
            self._http.exchange("DELETE", location, scope=self._scope(repo, "pull,push"))

    def delete_blob(self, repo: str, digest: str) -> None:
        """Delete a blob (gc; registries may refuse)."""
        url = self._url(repo, f"blobs/{digest}")
        resp, body = self._http.exchange("DELETE", url, scope=self._scope(repo, "pull,push,delete"))
        if resp.status_code not in (202, 404):
            raise self._http.fail(resp, body, f"delete blob {digest} in {repo}")

    def put_manifest(self, repo: str, reference: str, data: bytes) -> str:
        """Put a manifest under a tag or digest; returns its digest."""
        resp, body = self._http.exchange(
            "PUT",
            self._url(repo, f"manifests/{reference}"),
            scope=self._scope(repo, "pull,push"),
            headers={"Content-Type": MANIFEST_MEDIA_TYPE},
            body=data,
        )
        if resp.status_code != 201:
            raise self._http.fail(resp, body, f"PUT manifest {repo}:{reference}")
        digest = digest_bytes(data)
        echoed = resp.headers.get("docker-content-digest")
        if echoed and echoed != digest:
            raise RegistryError(
                f"registry stored manifest {repo}:{reference} as {echoed}, not {digest}; it rewrote the bytes",
                self.host,
            )
        return digest

    def delete_manifest(self, repo: str, digest: str) -> None:
        """Delete a manifest (gc)."""
        url = self._url(repo, f"manifests/{digest}")
        resp, body = self._http.exchange("DELETE", url, scope=self._scope(repo, "pull,push,delete"))
        if resp.status_code not in (202, 404):
            raise self._http.fail(resp, body, f"delete manifest {digest} in {repo}")
