"""Bounded, authenticated HTTP for registries: every exchange ends by a deadline, every body
within a cap (:class:`RegistryClient`, used by :mod:`.oci`).

httpx's timeouts apply to each socket operation, not to a whole exchange (encode/httpx#1450):
a registry that trickles one byte at a time never trips them and holds the client forever
(TUF's *slow retrieval* attack). Here each socket operation may wait only until the current
deadline: a network backend clamps every connect, read and write to the time left, which a
context variable carries for the exchange in progress. Small exchanges (manifests, tag pages,
tokens, events) get a fixed deadline; blob transfers one derived from their declared size and
a minimum average rate. Bodies are read through :func:`read_capped`, so a registry that sends
more than it should (*endless data*) is cut off at the cap, not buffered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpcore
import httpx

from mpkg.errors import RegistryError

from .auth import Challenge, Credentials, parse_challenge
from .store import parse_json

Body = bytes | Callable[[], Iterable[bytes]] | None
_DEADLINE: ContextVar[float | None] = ContextVar("mpkg_registry_deadline", default=None)
_WRITE_PIECE = 64 * 1024


@dataclass(frozen=True)
class Limits:
    """How long and how much a registry may take. Defaults suit a real registry on a slow link;
    tests shrink them to show each limit ends a hostile answer quickly."""

    exchange_seconds: float = 60.0  # one small exchange, connect to last byte
    read_seconds: float = 30.0  # silence between two bytes
    connect_seconds: float = 15.0
    min_rate: float = 256 * 1024  # bytes per second, averaged over a blob transfer
    max_json_bytes: int = 4 * 1024 * 1024  # a tag page, a token, an error body
    max_tag_pages: int = 1000
    max_tags: int = 100_000

    def transfer_seconds(self, size: int) -> float:
        """The deadline for moving ``size`` bytes: a fixed allowance plus the size at the minimum rate."""
        return self.exchange_seconds + size / self.min_rate

    def timeout(self) -> httpx.Timeout:
        """httpx's timeout for one exchange."""
        return httpx.Timeout(self.read_seconds, connect=self.connect_seconds)


DEFAULT_LIMITS = Limits()


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Network operations inside end by ``seconds`` from now (or an enclosing, earlier deadline)."""
    end = time.monotonic() + seconds
    outer = _DEADLINE.get()
    token = _DEADLINE.set(end if outer is None else min(end, outer))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    end = _DEADLINE.get()
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise error("the deadline for this exchange passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), _WRITE_PIECE):  # pieces: each send is clamped anew
            self._inner.write(buffer[start : start + _WRITE_PIECE], _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None) -> _Stream:
        return _Stream(self._inner.start_tls(ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_tcp(host, port, left, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._inner.connect_unix_socket(path, left, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def bounded_client(limits: Limits = DEFAULT_LIMITS) -> httpx.Client:
    """An httpx client whose every socket operation honours :func:`deadline`.

    httpx offers no public hook for its network backend, so the connection pools it builds
    (direct and through environment proxies) get theirs wrapped here, once.
    """
    client = httpx.Client(timeout=limits.timeout(), follow_redirects=True, headers={"User-Agent": "mpkg"})
    for transport in [client._transport, *client._mounts.values()]:
        if transport is None:  # a mount that disables a scheme
            continue
        pool = getattr(transport, "_pool", None)
        if pool is None or not hasattr(pool, "_network_backend"):
            raise RuntimeError("httpx changed its transport internals; mpkg cannot bound registry exchanges")
        pool._network_backend = _Backend(pool._network_backend)
    return client


def read_capped(resp: httpx.Response, limit: int, what: str, where: str) -> bytes:
    """The whole body of a streamed response, refusing more than ``limit`` bytes (declared or sent)."""
    if resp.request.method == "HEAD":  # no body; Content-Length is the size of what a GET would send
        resp.close()
        return b""
    declared = resp.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        resp.close()
        raise RegistryError(f"{what} is {declared} bytes, over the {limit} byte limit; refusing it", where)
    pieces: list[bytes] = []
    got = 0
    try:
        for chunk in resp.iter_bytes():
            got += len(chunk)
            if got > limit:
                raise RegistryError(
                    f"{what} goes on past {limit} bytes (endless data); refusing it and closing the connection",
                    where,
                )
            pieces.append(chunk)
    finally:
        resp.close()
    return b"".join(pieces)


class RegistryClient:
    """Bounded, authenticated HTTP to one registry: each exchange ends by its deadline, each body
    within its cap, any failure is one RegistryError line, and a 401 is answered once (basic, or
    the bearer-token flow) before the request is sent again."""

    def __init__(self, host: str, base: str, insecure: bool, credentials: Credentials | None, limits: Limits) -> None:
        self.host, self.base, self.insecure, self.credentials, self.limits = host, base, insecure, credentials, limits
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._client = bounded_client(limits)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    @contextmanager
    def bounded(self, method: str, url: str, seconds: float | None = None) -> Iterator[None]:
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

    def read(self, resp: httpx.Response, what: str, limit: int | None = None) -> bytes:
        """An answer's body, capped."""
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
            with self.bounded("GET", realm):
                resp = self._client.send(self._client.build_request("GET", url, headers=headers), stream=True)
                body = self.read(resp, "the token service's answer")
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

    def request(
        self,
        method: str,
        url: str,
        *,
        scope: str,
        headers: dict[str, str] | None = None,
        body: Body = None,
    ) -> httpx.Response:
        """Send once (streamed answer); on a 401 answer the challenge (bearer or basic) and send
        again. Call inside :meth:`bounded`, which also covers reading the answer."""
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

    def exchange(
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
        with self.bounded(method, url, seconds):
            resp = self.request(method, url, scope=scope, headers=headers, body=body)
            return resp, self.read(resp, f"the answer to {method} {urlsplit(url).path}", limit)

    def fail(self, resp: httpx.Response, body: bytes, what: str) -> RegistryError:
        """A one-line error for an answer that is not what was asked for."""
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
