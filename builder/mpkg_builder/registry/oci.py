"""OCI distribution client (by hand on httpx: the Python ORAS SDK reads blobs whole and
re-uploads blobs the registry already has; we need streaming, HEAD-before-upload and
chunked uploads for multi-GB packages).

Follows the distribution spec: HEAD a blob before uploading; monolithic POST+PUT for small
blobs, POST → PATCH (Content-Range) → PUT ?digest= for large ones; GET streams to disk while
hashing. Auth: anonymous, basic, or the bearer-token challenge flow.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext, suppress
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlencode, urljoin

import httpx
from mpkg.errors import RegistryError

from .auth import Challenge, Credentials, parse_challenge
from .backend import (
    MANIFEST_MEDIA_TYPE,
    MAX_MANIFEST_BYTES,
    MAX_SMALL_BLOB_BYTES,
    Manifest,
    Progress,
    digest_bytes,
    read_file_range,
)

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
    """A registry at ``host`` (``host[:port]``); ``insecure`` means plain HTTP."""

    def __init__(
        self,
        host: str,
        *,
        insecure: bool = False,
        credentials: Credentials | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        monolithic_limit: int = DEFAULT_MONOLITHIC_LIMIT,
        timeout: float = 300.0,
    ) -> None:
        self.host = host
        self.base = f"{'http' if insecure else 'https'}://{host}"
        self.insecure = insecure
        self.credentials = credentials
        self.chunk_size = chunk_size
        self.monolithic_limit = monolithic_limit
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=15.0),
            follow_redirects=True,
            headers={"User-Agent": "mpkg"},
        )
        self.blob_uploads = 0  # blobs whose bytes were actually sent (idempotence is observable)

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
        try:
            resp = self._client.get(realm + ("&" if "?" in realm else "?") + urlencode(query), headers=headers)
        except httpx.HTTPError as exc:
            raise RegistryError(f"cannot reach the token service {realm} ({exc})", self.host) from None
        if resp.status_code in (401, 403):
            raise RegistryError(
                f"the token service refused the credentials for {scope} (HTTP "
                f"{resp.status_code}); log in (docker login) or pass --username/--password-stdin",
                self.host,
            )
        if resp.status_code != 200:
            raise RegistryError(f"token service answered HTTP {resp.status_code}", self.host)
        try:
            data = resp.json()
            token = data.get("token") or data.get("access_token")
        except ValueError:
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
        stream: bool = False,
    ) -> httpx.Response:
        """Send once; on a 401 answer the challenge (bearer token or basic) and send again."""
        for attempt in range(2):
            content: Any = body() if callable(body) else body
            request = self._client.build_request(
                method,
                url,
                headers={**(headers or {}), **self._auth_header(scope)},
                content=content,
            )
            try:
                resp = self._client.send(request, stream=stream)
            except httpx.ConnectError as exc:
                hint = "" if self.insecure else "; use --insecure for a plain-HTTP registry"
                raise RegistryError(
                    f"cannot connect to the registry ({exc}); is it running at {self.base}?{hint}",
                    self.host,
                ) from None
            except httpx.HTTPError as exc:
                raise RegistryError(f"{method} {url} failed ({exc})", self.host) from None
            if resp.status_code != 401 or attempt == 1:
                return resp
            resp.read()
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

    def _fail(self, resp: httpx.Response, what: str) -> RegistryError:
        resp.read()
        detail = ""
        try:
            errors = resp.json().get("errors") or []
            detail = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors)
        except (ValueError, AttributeError):
            pass
        hint = {
            403: " (permission denied for this repository)",
            405: " (the registry does not allow this; deletes need storage.delete.enabled)",
        }.get(resp.status_code, "")
        return RegistryError(
            f"{what}: HTTP {resp.status_code}{hint}" + (f" ({detail})" if detail else ""),
            self.host,
        )

    @staticmethod
    def _scope(repo: str, actions: str) -> str:
        return f"repository:{repo}:{actions}"

    # --- blobs ------------------------------------------------------------------------

    def blob_exists(self, repo: str, digest: str) -> bool:
        resp = self._request("HEAD", self._url(repo, f"blobs/{digest}"), scope=self._scope(repo, "pull,push"))
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self._fail(resp, f"HEAD blob {digest} in {repo}")

    def _start_upload(self, repo: str) -> str:
        resp = self._request("POST", self._url(repo, "blobs/uploads/"), scope=self._scope(repo, "pull,push"))
        if resp.status_code != 202 or "location" not in resp.headers:
            raise self._fail(resp, f"start upload to {repo}")
        return urljoin(self.base + "/", resp.headers["location"])

    @staticmethod
    def _with_query(location: str, **params: str) -> str:
        return location + ("&" if "?" in location else "?") + urlencode(params)

    def _finish_upload(self, repo: str, location: str, digest: str, body: Body, size: int) -> None:
        resp = self._request(
            "PUT",
            self._with_query(location, digest=digest),
            scope=self._scope(repo, "pull,push"),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            body=body,
        )
        if resp.status_code != 201:
            raise self._fail(resp, f"upload {digest} to {repo}")

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
                resp = self._request(
                    "PATCH",
                    location,
                    scope=self._scope(repo, "pull,push"),
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{start}-{start + length - 1}",
                        "Content-Length": str(length),
                    },
                    body=hasher.body(path, start, length, progress),
                )
                if resp.status_code != 202 or "location" not in resp.headers:
                    raise self._fail(resp, f"upload chunk at {start} to {repo}")
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
            self._request("DELETE", location, scope=self._scope(repo, "pull,push")).close()

    def _get_blob(self, repo: str, digest: str) -> httpx.Response:
        resp = self._request("GET", self._url(repo, f"blobs/{digest}"), scope=self._scope(repo, "pull"), stream=True)
        if resp.status_code == 404:
            resp.close()
            raise RegistryError(f"blob {digest} is not in {repo}", self.host)
        if resp.status_code != 200:
            raise self._fail(resp, f"GET blob {digest} from {repo}")
        return resp

    def fetch_blob(self, repo: str, digest: str, size: int, out: BinaryIO) -> None:
        resp = self._get_blob(repo, digest)
        hasher = hashlib.sha256()
        got = 0
        try:
            for chunk in resp.iter_bytes():
                got += len(chunk)
                if got > size:
                    raise RegistryError(
                        f"blob {digest} is larger than its descriptor says ({size} bytes); "
                        "the registry content is corrupt",
                        self.host,
                    )
                hasher.update(chunk)
                out.write(chunk)
        except httpx.HTTPError as exc:
            raise RegistryError(f"download of {digest} failed ({exc})", self.host) from None
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
        resp = self._get_blob(repo, digest)
        try:
            data = b""
            for chunk in resp.iter_bytes():
                data += chunk
                if len(data) > limit:
                    raise RegistryError(f"blob {digest} is larger than {limit} bytes", self.host)
        finally:
            resp.close()
        if digest_bytes(data) != digest:
            raise RegistryError(f"blob {digest} does not match its digest; refusing it", self.host)
        return data

    def delete_blob(self, repo: str, digest: str) -> None:
        resp = self._request("DELETE", self._url(repo, f"blobs/{digest}"), scope=self._scope(repo, "pull,push,delete"))
        if resp.status_code not in (202, 404):
            raise self._fail(resp, f"delete blob {digest} in {repo}")

    # --- manifests and tags -----------------------------------------------------------

    def put_manifest(self, repo: str, reference: str, data: bytes) -> str:
        resp = self._request(
            "PUT",
            self._url(repo, f"manifests/{reference}"),
            scope=self._scope(repo, "pull,push"),
            headers={"Content-Type": MANIFEST_MEDIA_TYPE},
            body=data,
        )
        if resp.status_code != 201:
            raise self._fail(resp, f"PUT manifest {repo}:{reference}")
        digest = digest_bytes(data)
        echoed = resp.headers.get("docker-content-digest")
        if echoed and echoed != digest:
            raise RegistryError(
                f"registry stored manifest {repo}:{reference} as {echoed}, not {digest}; it rewrote the bytes",
                self.host,
            )
        return digest

    def get_manifest(self, repo: str, reference: str) -> Manifest | None:
        resp = self._request(
            "GET",
            self._url(repo, f"manifests/{reference}"),
            scope=self._scope(repo, "pull"),
            headers={"Accept": _ACCEPT},
            stream=True,
        )
        try:
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise self._fail(resp, f"GET manifest {repo}:{reference}")
            data = b""
            for chunk in resp.iter_bytes():
                data += chunk
                if len(data) > MAX_MANIFEST_BYTES:
                    raise RegistryError(f"manifest {repo}:{reference} is too large", self.host)
        finally:
            resp.close()
        digest = digest_bytes(data)
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(
                f"manifest {reference} arrived with digest {digest}; refusing tampered content", self.host
            )
        return Manifest(data, digest)

    def list_tags(self, repo: str) -> list[str]:
        tags: list[str] = []
        url: str | None = self._url(repo, "tags/list?n=1000")
        while url:
            resp = self._request("GET", url, scope=self._scope(repo, "pull"))
            if resp.status_code == 404:
                return tags  # no such repository yet: no tags
            if resp.status_code != 200:
                raise self._fail(resp, f"list tags of {repo}")
            try:
                page = resp.json().get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError(f"tag list of {repo} is not JSON", self.host) from None
            tags.extend(str(t) for t in page)
            link = resp.links.get("next", {}).get("url")
            url = urljoin(self.base + "/", link) if link else None
        return tags

    def delete_manifest(self, repo: str, digest: str) -> None:
        resp = self._request(
            "DELETE", self._url(repo, f"manifests/{digest}"), scope=self._scope(repo, "pull,push,delete")
        )
        if resp.status_code not in (202, 404):
            raise self._fail(resp, f"delete manifest {digest} in {repo}")
