"""The HTTP/1.1 connection layer: uvicorn's httptools protocol with the limits it lacks.

uvicorn and httptools (llhttp) bound none of these, so a client could make the server
hold unbounded bytes or sockets (checked against uvicorn 0.54 / httptools 0.9: the URL
and header values are accumulated without a limit; a new connection that sends
nothing, or one byte at a time, is kept forever; ``limit_concurrency`` answers 503 to
*every* request, health checks included, once hostile connections fill it):

- the request line and the head (request line plus headers) have byte limits and the
  head a field count: 414 / 431, then the connection is closed;
- a head must arrive within ``header_timeout`` of the connection or of the request's
  first byte, however slowly it trickles in: 408, then close;
- an idle keep-alive connection is closed after ``keepalive_timeout``;
- at ``max_connections`` open connections, a new one first evicts the oldest connection
  that is not in the middle of a request (idle, or still sending its head); only when
  every connection is busy is the new one refused with 503 and Retry-After.

Also: TCP_NODELAY on every accepted socket (uvicorn issue 3149) and one write per
response (CoalescingTransport).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .limits import Limits

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Disable Nagle on an accepted TCP connection, whatever socket.proto says."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


_COALESCE_MAX = 64 * 1024  # bigger bodies are written after the head, not copied onto it


class CoalescingTransport:
    """A transport proxy that sends a response's head and body in one write.

    uvicorn writes the status line and headers, then the body, as two ``write`` calls:
    with TCP_NODELAY that is two syscalls and two TCP segments per response. The head
    is held until the next write (the body, which the app sends right after it) and
    sent with it; a head followed by nothing is released at the end of the loop turn.
    """

    __slots__ = ("_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Send ``data``, joined with a held response head when small (one packet per answer)."""
        held = self._held
        if held is not None:
            self._held = None
            if len(data) <= _COALESCE_MAX:
                self._transport.write(held + data)
                return
            self._transport.write(held)
        elif data[:9] == b"HTTP/1.1 " and data[9:10] != b"1":  # a final response's head
            self._held = bytes(data)
            self._loop.call_soon(self._release)
            return
        self._transport.write(data)

    def _release(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        """Flush what is held, then close."""
        self._release()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Refuse(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def refusal(status: int, message: str, *extra: tuple[bytes, bytes]) -> bytes:
    """A complete ``Connection: close`` answer written by the connection layer itself."""
    body = orjson.dumps({"error": message})
    head = [b"HTTP/1.1 %d %s" % (status, _REASONS[status]), b"content-type: application/json"]
    head += [b"%s: %s" % pair for pair in extra]
    head += [b"content-length: %d" % len(body), b"connection: close", b"", b""]
    return b"\r\n".join(head) + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the limits above; ``limits`` is set by :func:`protocol_for`."""

    limits = Limits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the head timer and wrap the transport (asyncio protocol API)."""
        set_nodelay(transport)
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
        self._head_bytes = 0
        self._in_head = True  # reading a request head (or waiting for the first byte of one)
        self._head_timer: asyncio.TimerHandle | None = None
        self._since = self.loop.time()
        self._arm_head_timer()
        if len(self.connections) > self.limits.max_connections and not self._evict_one():
            self._close_with(503, "too many open connections; retry shortly", (b"retry-after", b"1"))

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the head timer (asyncio protocol API)."""
        self._cancel_head_timer()
        super().connection_lost(exc)

    # --- limits on the head -----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Feed the parser only what fits the head limit; refuse the rest (431)."""
        if self._in_head:
            room = self.limits.max_header_bytes - self._head_bytes
            if len(data) > room:
                # Feed only what may still be head; the rest is body if the head ended in it.
                self._feed(data[:room])
                if self._in_head:
                    if not self.transport.is_closing():
                        self._close_with(431, f"request head is over {self.limits.max_header_bytes} bytes")
                    return
                data = data[room:]
            else:
                self._head_bytes += len(data)
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._close_with(400, "protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            refused = exc.__context__
            if isinstance(refused, _Refuse):
                self._close_with(refused.status, refused.message)
            else:
                self._close_with(400, "malformed HTTP request")

    def on_message_begin(self) -> None:
        """A new request head starts: arm its timer (httptools callback)."""
        super().on_message_begin()
        self._in_head = True
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        """Refuse a request target over the limit (414) (httptools callback)."""
        super().on_url(url)
        if len(self.url) > self.limits.max_request_line:
            raise _Refuse(414, f"request target is over {self.limits.max_request_line} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        """Refuse more header fields than the limit (431) (httptools callback)."""
        if len(self.headers) >= self.limits.max_headers:
            raise _Refuse(431, f"request has more than {self.limits.max_headers} header fields")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """The head is complete: stop its timer (httptools callback)."""
        self._in_head = False
        self._head_bytes = 0
        self._cancel_head_timer()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """Back to reading a head; the keep-alive clock restarts (httptools callback)."""
        super().on_message_complete()
        self._in_head = True
        self._since = self.loop.time()

    def on_response_complete(self) -> None:
        """The keep-alive clock restarts after an answer (uvicorn callback)."""
        self._since = self.loop.time()
        super().on_response_complete()

    # --- timers and eviction -----------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_timeout)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timeout(self) -> None:
        self._head_timer = None
        if not self._in_head or self.transport.is_closing():
            return
        if self._head_bytes:
            self._close_with(408, f"request head not received within {self.limits.header_timeout:g} s")
        else:  # not a byte of a request: close quietly, as for an idle keep-alive connection
            self._drop()

    def _idle(self) -> bool:
        """Not in the middle of a request: evicting it loses no work (HTTP lets a server close
        an idle keep-alive connection; a client still sending its head is the likely attacker)."""
        return self._in_head and (self.cycle is None or self.cycle.response_complete)

    def _evict_one(self) -> bool:
        victims = [c for c in self.connections if c is not self and isinstance(c, GuardedHttpToolsProtocol)]
        idle = [c for c in victims if c._idle() and not c.transport.is_closing()]
        if not idle:
            return False
        min(idle, key=lambda c: c._since)._drop()
        return True

    def _drop(self) -> None:
        """Close without an answer (nothing was asked, or the asker is the attacker)."""
        self._cancel_head_timer()
        self._in_head = False
        self.connections.discard(self)
        if not self.transport.is_closing():
            self.transport.close()

    def _close_with(self, status: int, message: str, *extra: tuple[bytes, bytes]) -> None:
        if not self.transport.is_closing():
            self.transport.write(refusal(status, message, *extra))
        self._drop()


def protocol_for(limits: Limits) -> type[GuardedHttpToolsProtocol]:
    """The protocol class uvicorn instantiates per connection, carrying this server's limits."""
    return type("MpkgHttpProtocol", (GuardedHttpToolsProtocol,), {"limits": limits})
