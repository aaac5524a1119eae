"""OCI distribution client (by hand on httpx: the Python ORAS SDK reads blobs whole and
re-uploads blobs the registry already has; we need streaming, HEAD-before-upload and
chunked uploads for multi-GB packages).

Follows the distribution spec: HEAD a blob before uploading; monolithic POST+PUT for small
blobs, POST → PATCH (Content-Range) → PUT ?digest= for large ones; GET streams to disk while
hashing. Auth: anonymous, basic, or the bearer-token challenge flow.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlencode, urljoin, urlsplit

import httpx
from mpkg.errors import RegistryError

from . import transport
from .auth import Challenge, Credentials, parse_challenge
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
from .transport import Limits, bounded_client, deadline, read_capped

DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024
DEFAULT_MONOLITHIC_LIMIT = 64 * 1024 * 1024
_ACCEPT = ", ".join(
    [
        MANIFEST_MEDIA_TYPE,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)
Body = bytes | Callable[[], Iterable[bytes]] | None


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
        self.insecure = insecure
        self.credentials = credentials
        self.chunk_size = chunk_size
        self.monolithic_limit = monolithic_limit
        self.limits = limits or transport.DEFAULT_LIMITS
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._client = bounded_client(self.limits)
        self.blob_uploads = 0  # blobs whose bytes were actually sent (idempotence is observable)

    @property
    def origin(self) -> str:
        return self.host

    def describe(self) -> str:
        return self.host

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OciBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def lock(self, repo: str) -> AbstractContextManager[None]:
        return nullcontext()

    # --- transport --------------------------------------------------------------------

    def _url(self, repo: str, tail: str) -> str:
        return f"{self.base}/v2/{repo}/{tail}"

    @contextmanager
    def _bounded(self, method: str, url: str, seconds: float | None = None) -> Iterator[None]:
        """One exchange: ends by its deadline; any transport failure becomes one RegistryError line."""
        what = f"{method} {urlsplit(url).path}"
        try:
            with deadline(self.limits.exchange_seconds if seconds is None else seconds):
                yield
        except httpx.ConnectError as exc:
            hint = "" if self.insecure else "; use --insecure for a plain-HTTP registry"
            raise RegistryError(
                f"cannot connect to the registry ({exc}); is it running at {self.base}?{hint}", self.host
            ) from None
        except httpx.TimeoutException:
            raise RegistryError(
                f"{what}: the registry did not answer in time (silent for {self.limits.read_seconds:g} s, "
                "or slower than the deadline allows: a stalled or trickling registry); try again later",
                self.host,
            ) from None
        except httpx.HTTPError as exc:
            raise RegistryError(f"{what} failed ({exc})", self.host) from None

    def _read(self, resp: httpx.Response, what: str, limit: int | None = None) -> bytes:
        return read_capped(resp, self.limits.max_json_bytes if limit is None else limit, what, self.host)

    def _auth_header(self, scope: str) -> dict[str, str]:
        if scope in self._tokens:
            return {"Authorization": f"Bearer {self._tokens[scope]}"}
        if self._basic and self.credentials:
            return {"Authorization": self.credentials.basic_header()}
        return {}

    def _fetch_token(self, challenge: Challenge, scope: str) -> str:
        realm = challenge.params.get("realm")
        if not realm:
            raise RegistryError("bearer challenge without a realm; the registry is misconfigured", self.host)
        query = {"scope": scope}
        if "service" in challenge.params:
            query["service"] = challenge.params["service"]
        headers = {"Authorization": self.credentials.basic_header()} if self.credentials else {}
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        try:
            with self._bounded("GET", realm):
                resp = self._client.send(self._client.build_request("GET", url, headers=headers), stream=True)
                body = self._read(resp, "the token service's answer")
        except RegistryError as exc:
            raise RegistryError(f"token service {realm}: {exc.problems[0].reason}", self.host) from None
        if resp.status_code in (401, 403):
            raise RegistryError(
                f"the token service refused the credentials for {scope} (HTTP "
                f"{resp.status_code}); log in (docker login) or pass --username/--password-stdin",
                self.host,
            )
        if resp.status_code != 200:
            raise RegistryError(f"token service answered HTTP {resp.status_code}", self.host)
        try:
            data = parse_json(body, "the token service's answer")
            token = data.get("token") or data.get("access_token") if isinstance(data, dict) else None
        except RegistryError:
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError("token service answered without a token", self.host)
        return token

    def _request(
        self,
        method: str,
        url: str,
        *,
        scope: str,
        headers: dict[str, str] | None = None,
        body: Body = None,
    ) -> httpx.Response:
        """Send once (streamed answer); on a 401 answer the challenge (bearer or basic) and send
        again. Call inside :meth:`_bounded`, which also covers reading the answer."""
        for attempt in range(2):
            content: Any = body() if callable(body) else body
            request = self._client.build_request(
                method,
                url,
                headers={**(headers or {}), **self._auth_header(scope)},
                content=content,
            )
            resp = self._client.send(request, stream=True)
            if resp.status_code != 401 or attempt == 1:
                return resp
            resp.close()
            challenge = parse_challenge(resp.headers.get("www-authenticate", ""))
            if challenge and challenge.scheme == "bearer":
                wanted = challenge.params.get("scope") or scope
                self._tokens[scope] = self._fetch_token(challenge, wanted)
            elif challenge and challenge.scheme == "basic" and self.credentials:
                self._basic = True
            else:
                break
        raise RegistryError(
            "the registry requires authentication; log in (docker login) or pass --username/--password-stdin",
            self.host,
        )

    def _exchange(
        self,
        method: str,
        url: str,
        *,
        scope: str,
        headers: dict[str, str] | None = None,
        body: Body = None,
        limit: int | None = None,
        seconds: float | None = None,
    ) -> tuple[httpx.Response, bytes]:
        """A whole small exchange: request and answer body (capped), within one deadline."""
        with self._bounded(method, url, seconds):
            resp = self._request(method, url, scope=scope, headers=headers, body=body)
            return resp, self._read(resp, f"the answer to {method} {urlsplit(url).path}", limit)

    def _fail(self, resp: httpx.Response, body: bytes, what: str) -> RegistryError:
        detail = ""
        try:
            doc = parse_json(body, what) if body else {}
            errors = doc.get("errors") or [] if isinstance(doc, dict) else []
            detail = "; ".join(
                f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors if isinstance(e, dict)
            )
        except (RegistryError, TypeError):
            pass
        hint = {
            403: " (permission denied for this repository)",
            405: " (the registry does not allow this; deletes need storage.delete.enabled)",
        }.get(resp.status_code, "")
        return RegistryError(
            f"{what}: HTTP {resp.status_code}{hint}" + (f" ({detail[:300]})" if detail else ""),
            self.host,
        )

    @staticmethod
    def _scope(repo: str, actions: str) -> str:
        return f"repository:{repo}:{actions}"

    # --- blobs ------------------------------------------------------------------------

    def blob_exists(self, repo: str, digest: str) -> bool:
        url = self._url(repo, f"blobs/{digest}")
        resp, body = self._exchange("HEAD", url, scope=self._scope(repo, "pull,push"))
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self._fail(resp, body, f"HEAD blob {digest} in {repo}")

    def _start_upload(self, repo: str) -> str:
        resp, body = self._exchange("POST", self._url(repo, "blobs/uploads/"), scope=self._scope(repo, "pull,push"))
        if resp.status_code != 202 or "location" not in resp.headers:
            raise self._fail(resp, body, f"start upload to {repo}")
        return urljoin(self.base + "/", resp.headers["location"])

    @staticmethod
    def _with_query(location: str, **params: str) -> str:
        return location + ("&" if "?" in location else "?") + urlencode(params)

    def _finish_upload(self, repo: str, location: str, digest: str, body: Body, size: int) -> None:
        resp, answer = self._exchange(
            "PUT",
            self._with_query(location, digest=digest),
            scope=self._scope(repo, "pull,push"),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            body=body,
            seconds=self.limits.transfer_seconds(size),
        )
        if resp.status_code != 201:
            raise self._fail(resp, answer, f"upload {digest} to {repo}")

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
                resp, answer = self._exchange(
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
                    raise self._fail(resp, answer, f"upload chunk at {start} to {repo}")
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
            self._exchange("DELETE", location, scope=self._scope(repo, "pull,push"))

    def _get_blob(self, repo: str, digest: str) -> httpx.Response:
        """The blob's answer, streamed; call inside :meth:`_bounded` with the transfer's deadline."""
        resp = self._request("GET", self._url(repo, f"blobs/{digest}"), scope=self._scope(repo, "pull"))
        if resp.status_code == 404:
            resp.close()
            raise RegistryError(f"blob {digest} is not in {repo}", self.host)
        if resp.status_code != 200:
            raise self._fail(resp, self._read(resp, "an error answer"), f"GET blob {digest} from {repo}")
        return resp

    def fetch_blob(self, repo: str, digest: str, size: int, out: BinaryIO) -> None:
        hasher = hashlib.sha256()
        got = 0
        url = self._url(repo, f"blobs/{digest}")
        with self._bounded("GET", url, self.limits.transfer_seconds(size)):
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
        with self._bounded("GET", url, self.limits.transfer_seconds(limit)):
            data = self._read(self._get_blob(repo, digest), f"blob {digest}", limit)
        if digest_bytes(data) != digest:
            raise RegistryError(f"blob {digest} does not match its digest; refusing it", self.host)
        return data

    def delete_blob(self, repo: str, digest: str) -> None:
        url = self._url(repo, f"blobs/{digest}")
        resp, body = self._exchange("DELETE", url, scope=self._scope(repo, "pull,push,delete"))
        if resp.status_code not in (202, 404):
            raise self._fail(resp, body, f"delete blob {digest} in {repo}")

    # --- manifests and tags -----------------------------------------------------------

    def put_manifest(self, repo: str, reference: str, data: bytes) -> str:
        resp, body = self._exchange(
            "PUT",
            self._url(repo, f"manifests/{reference}"),
            scope=self._scope(repo, "pull,push"),
            headers={"Content-Type": MANIFEST_MEDIA_TYPE},
            body=data,
        )
        if resp.status_code != 201:
            raise self._fail(resp, body, f"PUT manifest {repo}:{reference}")
        digest = digest_bytes(data)
        echoed = resp.headers.get("docker-content-digest")
        if echoed and echoed != digest:
            raise RegistryError(
                f"registry stored manifest {repo}:{reference} as {echoed}, not {digest}; it rewrote the bytes",
                self.host,
            )
        return digest

    def get_manifest(self, repo: str, reference: str) -> Manifest | None:
        resp, data = self._exchange(
            "GET",
            self._url(repo, f"manifests/{reference}"),
            scope=self._scope(repo, "pull"),
            headers={"Accept": _ACCEPT},
            limit=MAX_MANIFEST_BYTES,
        )
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._fail(resp, data, f"GET manifest {repo}:{reference}")
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
            resp, body = self._exchange("GET", url, scope=self._scope(repo, "pull"))
            if resp.status_code == 404:
                return tags  # no such repository yet: no tags
            if resp.status_code != 200:
                raise self._fail(resp, body, f"list tags of {repo}")
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
        resp, body = self._exchange("DELETE", url, scope=self._scope(repo, "pull,push,delete"))
        if resp.status_code not in (202, 404):
            raise self._fail(resp, body, f"delete manifest {digest} in {repo}")
