"""OCI distribution client (by hand on httpx: the Python ORAS SDK reads blobs whole and
re-uploads blobs the registry already has; we need streaming, HEAD-before-upload and
chunked uploads for multi-GB packages).

Follows the distribution spec: HEAD a blob before uploading; monolithic POST+PUT for small
blobs, POST → PATCH (Content-Range) → PUT ?digest= for large ones; GET streams to disk while
hashing. HTTP, auth (anonymous, basic, bearer-token challenge) and the limits on every
exchange are :class:`.transport.RegistryClient`'s; this module is the distribution API.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext, suppress
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlencode, urljoin, urlsplit

import httpx
from mpkg.errors import RegistryError

from . import transport
from .auth import Credentials
from .backend import (
    MANIFEST_MEDIA_TYPE,
    MAX_MANIFEST_BYTES,
    MAX_SMALL_BLOB_BYTES,
    Manifest,
    Progress,
    digest_bytes,
    parse_json,
    read_file_range,
)
from .transport import Body, Limits, RegistryClient

DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024
DEFAULT_MONOLITHIC_LIMIT = 64 * 1024 * 1024
_ACCEPT = ", ".join(
    [
        MANIFEST_MEDIA_TYPE,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


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


class OciBackend:
    """A registry at ``host`` (``host[:port]``); ``insecure`` means plain HTTP.

    Every exchange is bounded (:mod:`.transport`): small ones by ``limits.exchange_seconds``
    and ``limits.max_json_bytes``, blob transfers by their declared size at ``limits.min_rate``.
    """

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
        self.host = host
        self.base = f"{'http' if insecure else 'https'}://{host}"
        self.chunk_size = chunk_size
        self.monolithic_limit = monolithic_limit
        self.limits = limits or transport.DEFAULT_LIMITS
        self._http = RegistryClient(host, self.base, insecure, credentials, self.limits)
        self.blob_uploads = 0  # blobs whose bytes were actually sent (idempotence is observable)

    @property
    def origin(self) -> str:
        return self.host

    def describe(self) -> str:
        return self.host

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> OciBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lock(self, repo: str) -> AbstractContextManager[None]:
        return nullcontext()

    def _url(self, repo: str, tail: str) -> str:
        return f"{self.base}/v2/{repo}/{tail}"

    @staticmethod
    def _scope(repo: str, actions: str) -> str:
        return f"repository:{repo}:{actions}"

    # --- blobs ------------------------------------------------------------------------

    def blob_exists(self, repo: str, digest: str) -> bool:
        url = self._url(repo, f"blobs/{digest}")
        resp, body = self._http.exchange("HEAD", url, scope=self._scope(repo, "pull,push"))
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self._http.fail(resp, body, f"HEAD blob {digest} in {repo}")

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
        digest = digest_bytes(data)
        if not self.blob_exists(repo, digest):
            self._finish_upload(repo, self._start_upload(repo), digest, data, len(data))
            self.blob_uploads += 1
        return digest

    def push_blob_file(self, repo: str, path: Path, digest: str, size: int, progress: Progress | None = None) -> bool:
        if self.blob_exists(repo, digest):
            return False
        location = self._start_upload(repo)
        hasher = _StreamHash()
        if size <= self.monolithic_limit:
            # the registry checks ?digest= against what it received: a changed file is refused
            self._finish_upload(repo, location, digest, hasher.body(path, 0, size, progress), size)
        else:
            offset = 0
            while offset < size:
                length = min(self.chunk_size, size - offset)
                start = offset
                resp, answer = self._http.exchange(
                    "PATCH",
                    location,
                    scope=self._scope(repo, "pull,push"),
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{start}-{start + length - 1}",
                        "Content-Length": str(length),
                    },
                    body=hasher.body(path, start, length, progress),
                    seconds=self.limits.transfer_seconds(length),
                )
                if resp.status_code != 202 or "location" not in resp.headers:
                    raise self._http.fail(resp, answer, f"upload chunk at {start} to {repo}")
                hasher.commit()
                location = urljoin(self.base + "/", resp.headers["location"])
                offset += length
            if hasher.digest() != digest:
                self._abort(repo, location)
                raise RegistryError("file changed while uploading; push it again", str(path))
            self._finish_upload(repo, location, digest, b"", 0)
        self.blob_uploads += 1
        return True

    def _abort(self, repo: str, location: str) -> None:
        with suppress(RegistryError):
            self._http.exchange("DELETE", location, scope=self._scope(repo, "pull,push"))

    def _get_blob(self, repo: str, digest: str) -> httpx.Response:
        """The blob's answer, streamed; call inside :meth:`_bounded` with the transfer's deadline."""
        resp = self._http.request("GET", self._url(repo, f"blobs/{digest}"), scope=self._scope(repo, "pull"))
        if resp.status_code == 404:
            resp.close()
            raise RegistryError(f"blob {digest} is not in {repo}", self.host)
        if resp.status_code != 200:
            raise self._http.fail(resp, self._http.read(resp, "an error answer"), f"GET blob {digest} from {repo}")
        return resp

    def fetch_blob(self, repo: str, digest: str, size: int, out: BinaryIO) -> None:
        hasher = hashlib.sha256()
        got = 0
        url = self._url(repo, f"blobs/{digest}")
        with self._http.bounded("GET", url, self.limits.transfer_seconds(size)):
            resp = self._get_blob(repo, digest)
            try:
                for chunk in resp.iter_bytes():
                    got += len(chunk)
                    if got > size:
                        raise RegistryError(
                            f"blob {digest} is larger than the {size} bytes its descriptor says (endless "
                            "data); refusing it",
                            self.host,
                        )
                    hasher.update(chunk)
                    out.write(chunk)
            finally:
                resp.close()
        actual = "sha256:" + hasher.hexdigest()
        if got != size or actual != digest:
            raise RegistryError(
                f"blob {digest} arrived with digest {actual} and {got} bytes (expected {size}); "
                "refusing tampered or corrupt content",
                self.host,
            )

    def fetch_blob_bytes(self, repo: str, digest: str, limit: int = MAX_SMALL_BLOB_BYTES) -> bytes:
        url = self._url(repo, f"blobs/{digest}")
        with self._http.bounded("GET", url, self.limits.transfer_seconds(limit)):
            data = self._http.read(self._get_blob(repo, digest), f"blob {digest}", limit)
        if digest_bytes(data) != digest:
            raise RegistryError(f"blob {digest} does not match its digest; refusing it", self.host)
        return data

    def delete_blob(self, repo: str, digest: str) -> None:
        url = self._url(repo, f"blobs/{digest}")
        resp, body = self._http.exchange("DELETE", url, scope=self._scope(repo, "pull,push,delete"))
        if resp.status_code not in (202, 404):
            raise self._http.fail(resp, body, f"delete blob {digest} in {repo}")

    # --- manifests and tags -----------------------------------------------------------

    def put_manifest(self, repo: str, reference: str, data: bytes) -> str:
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

    def get_manifest(self, repo: str, reference: str) -> Manifest | None:
        resp, data = self._http.exchange(
            "GET",
            self._url(repo, f"manifests/{reference}"),
            scope=self._scope(repo, "pull"),
            headers={"Accept": _ACCEPT},
            limit=MAX_MANIFEST_BYTES,
        )
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._http.fail(resp, data, f"GET manifest {repo}:{reference}")
        digest = digest_bytes(data)
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(
                f"manifest {reference} arrived with digest {digest}; refusing tampered content", self.host
            )
        return Manifest(data, digest)

    def list_tags(self, repo: str) -> list[str]:
        """Every tag, page by page (``Link: <...>; rel="next"``), within the page and tag limits:
        a registry that pages forever, loops or points elsewhere is refused, not followed."""
        tags: list[str] = []
        url: str | None = self._url(repo, "tags/list?n=1000")
        seen: set[str] = set()
        while url:
            if len(seen) >= self.limits.max_tag_pages:
                raise RegistryError(
                    f"the tag list of {repo} did not end after {len(seen)} pages (endless pagination); refusing it",
                    self.host,
                )
            seen.add(url)
            resp, body = self._http.exchange("GET", url, scope=self._scope(repo, "pull"))
            if resp.status_code == 404:
                return tags  # no such repository yet: no tags
            if resp.status_code != 200:
                raise self._http.fail(resp, body, f"list tags of {repo}")
            doc = parse_json(body, f"tag list of {repo}")
            page = doc.get("tags") if isinstance(doc, dict) else None
            if page is not None and (not isinstance(page, list) or not all(isinstance(t, str) for t in page)):
                raise RegistryError(f"the tag list of {repo} is not a list of strings", self.host)
            tags.extend(page or [])
            if len(tags) > self.limits.max_tags:
                raise RegistryError(
                    f"{repo} lists more than {self.limits.max_tags} tags; refusing an endless tag list", self.host
                )
            link = resp.links.get("next", {}).get("url")
            url = urljoin(url, link) if link else None
            if url is not None and (urlsplit(url).netloc != urlsplit(self.base).netloc or url in seen):
                raise RegistryError(
                    f"the tag list of {repo} links to {url!r} as its next page (another host or a page "
                    "already read); refusing it",
                    self.host,
                )
        return tags

    def delete_manifest(self, repo: str, digest: str) -> None:
        url = self._url(repo, f"manifests/{digest}")
        resp, body = self._http.exchange("DELETE", url, scope=self._scope(repo, "pull,push,delete"))
        if resp.status_code not in (202, 404):
            raise self._http.fail(resp, body, f"delete manifest {digest} in {repo}")
