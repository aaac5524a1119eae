"""The read side of the OCI distribution API (by hand on httpx: the Python ORAS SDK reads blobs
whole; we need streaming GETs checked while they arrive for multi-GB packages).

GET streams to disk while hashing; tag lists page within limits. HTTP, auth (anonymous, basic,
bearer-token challenge) and the limits on every exchange are :class:`.transport.RegistryClient`'s;
this module is the distribution API. The builder's ``OciBackend`` adds uploads and deletes.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

import httpx

from mpkg.errors import RegistryError

from . import transport
from .auth import Credentials
from .store import MANIFEST_MEDIA_TYPE, MAX_MANIFEST_BYTES, MAX_SMALL_BLOB_BYTES, Manifest, digest_bytes, parse_json
from .transport import Limits, RegistryClient

_ACCEPT = ", ".join(
    [
        MANIFEST_MEDIA_TYPE,
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


class OciClient:
    """The read side of a registry at ``host`` (``host[:port]``); ``insecure`` means plain HTTP.

    Every exchange is bounded (:mod:`.transport`): small ones by ``limits.exchange_seconds``
    and ``limits.max_json_bytes``, blob transfers by their declared size at ``limits.min_rate``.
    """

    def __init__(
        self,
        host: str,
        *,
        insecure: bool = False,
        credentials: Credentials | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.host = host
        self.base = f"{'http' if insecure else 'https'}://{host}"
        self.limits = limits or transport.DEFAULT_LIMITS
        self._http = RegistryClient(host, self.base, insecure, credentials, self.limits)

    @property
    def origin(self) -> str:
        """The registry host, for high-water marks and messages."""
        return self.host

    def describe(self) -> str:
        """The registry host, for messages."""
        return self.host

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> OciClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _url(self, repo: str, tail: str) -> str:
        return f"{self.base}/v2/{repo}/{tail}"

    @staticmethod
    def _scope(repo: str, actions: str) -> str:
        return f"repository:{repo}:{actions}"

    # --- blobs ------------------------------------------------------------------------

    def blob_exists(self, repo: str, digest: str) -> bool:
        """Whether the registry has the blob (HEAD)."""
        url = self._url(repo, f"blobs/{digest}")
        resp, body = self._http.exchange("HEAD", url, scope=self._scope(repo, "pull,push"))
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self._http.fail(resp, body, f"HEAD blob {digest} in {repo}")

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
        """Stream a blob to ``out`` within its deadline, checking size and digest while copying."""
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
        """A small blob's bytes, capped and checked against its digest."""
        url = self._url(repo, f"blobs/{digest}")
        with self._http.bounded("GET", url, self.limits.transfer_seconds(limit)):
            data = self._http.read(self._get_blob(repo, digest), f"blob {digest}", limit)
        if digest_bytes(data) != digest:
            raise RegistryError(f"blob {digest} does not match its digest; refusing it", self.host)
        return data

    # --- manifests and tags -----------------------------------------------------------

    def get_manifest(self, repo: str, reference: str) -> Manifest | None:
        """The manifest a tag or digest names (capped, depth-checked), or None."""
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
