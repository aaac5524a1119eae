"""Request bodies: read with a size limit and a deadline, inflate as a stream with a cap.

Nothing past the limit is ever buffered: a declared Content-Length over it is refused
before a byte is read, streamed bytes are counted as they arrive, and a compressed body
is inflated in bounded steps that stop at the first byte over the limit (a 100 KB gzip
bomb costs at most one step past the limit, and is given back at once). A valid gzip
body is inflated into one buffer sized from the gzip trailer, so it peaks at its decoded
size plus a constant.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from .tensors import RequestError

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
ENCODINGS = (b"", b"identity", b"gzip", b"x-gzip", b"deflate")
_IN_STEP = 64 * 1024  # compressed bytes fed to zlib at once
_OUT_STEP = 256 * 1024  # decoded bytes produced at once


class Disconnected(Exception):
    """The client went away before its request was read."""


def too_large(limit: int, what: str = "request body") -> RequestError:
    """The 413 for a body over the limit, saying what to do."""
    return RequestError(413, f"{what} is over the {limit}-byte limit; send a smaller batch or raise --max-body-bytes")


async def read_body(receive: Receive, limit: int, expected: int | None, timeout: float) -> bytes | bytearray:
    """The whole body. ``expected`` is the declared Content-Length (already checked against
    ``limit``); the body must be complete within ``timeout`` seconds of its first part."""
    message = await receive()
    if message["type"] == "http.disconnect":
        raise Disconnected
    chunk: bytes = message.get("body", b"")
    if len(chunk) > limit:
        raise too_large(limit)
    if not message.get("more_body", False):
        return chunk  # the common case: the whole body arrived with the headers
    try:
        async with asyncio.timeout(timeout):
            return await _read_rest(receive, chunk, limit, expected)
    except TimeoutError:
        raise RequestError(408, f"request body not received within {timeout:g} s; send it faster") from None


async def _read_rest(receive: Receive, first: bytes, limit: int, expected: int | None) -> bytearray:
    # One buffer sized from Content-Length when given (no join, no doubling at the end).
    body = bytearray(expected) if expected is not None else bytearray()
    size = 0

    def add(chunk: bytes) -> None:
        nonlocal size
        end = size + len(chunk)
        if end > limit:
            raise too_large(limit)
        if end <= len(body):
            body[size:end] = chunk
        else:
            del body[size:]
            body.extend(chunk)
        size = end

    add(first)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        add(message.get("body", b""))
        if not message.get("more_body", False):
            break
    del body[size:]
    return body


def decompress(body: bytes | bytearray, encoding: bytes, limit: int) -> bytes | bytearray:
    """Inflate a gzip or deflate body; 413 past ``limit`` decoded bytes, 400 when malformed."""
    if encoding in (b"", b"identity"):
        return body
    name = encoding.decode("latin-1")
    if encoding == b"deflate":
        # RFC 9110 deflate is zlib-wrapped; some clients send raw deflate. The zlib header says which.
        zlib_wrapped = len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0
        wbits, hint = (15 if zlib_wrapped else -15), None
    else:
        wbits = 31
        # ISIZE, the gzip trailer's decoded size mod 2**32: a hint to size the buffer, never trusted.
        hint = int.from_bytes(body[-4:], "little") if len(body) >= 18 else None
    return _inflate(body, wbits, name, limit, hint)


def _inflate(body: bytes | bytearray, wbits: int, name: str, limit: int, hint: int | None) -> bytearray:
    d = zlib.decompressobj(wbits)
    out = bytearray(hint) if hint is not None and hint <= limit else bytearray()
    size = 0
    view = memoryview(body)
    try:
        for start in range(0, max(len(view), 1), _IN_STEP):
            data: bytes | memoryview = view[start : start + _IN_STEP]
            while data:
                piece = d.decompress(data, _OUT_STEP)
                end = size + len(piece)
                if end > limit:
                    raise too_large(limit, "decompressed request body")
                if end <= len(out):
                    out[size:end] = piece
                else:
                    del out[size:]
                    out.extend(piece)
                size = end
                data = d.unconsumed_tail
                if d.eof:
                    break
            if d.eof:
                break
    except zlib.error as exc:
        raise RequestError(400, f"body is not valid {name} data ({exc})") from None
    if not d.eof:
        raise RequestError(400, f"{name} body is truncated")
    if d.unused_data or start + _IN_STEP < len(body):
        raise RequestError(400, f"{name} body has trailing bytes after the stream")
    del out[size:]
    return out
