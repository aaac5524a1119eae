"""A registry that lies: a real HTTP/1.1 server on 127.0.0.1 whose routes each misbehave in one
specific way (TUF's *endless data* and *slow retrieval*, endless tag pagination, hostile JSON).

It is not a mock of the client: the code under test talks HTTP to it exactly as to a real
registry. A test installs answers per path (``registry.route(path, Answer(...))``); every other
path answers 404 like an empty registry. ``Answer.body`` is bytes, or a function returning the
body's pieces (possibly endless); ``pause`` sleeps before each piece (a trickle);
``content_length`` may lie. The server stops writing when the client hangs up.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

Body = bytes | Callable[[], Iterable[bytes]]
Route = Callable[[str], "Answer"]  # query string -> answer


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: Body = b""
    headers: dict[str, str] = field(default_factory=dict)
    pause: float = 0.0  # seconds before each piece of the body
    content_length: int | None = None  # declared length; None: the true one for bytes, chunked otherwise
    status_pause: float = 0.0  # seconds between the bytes of the status line and headers (slow headers)


def endless(piece: bytes) -> Callable[[], Iterator[bytes]]:
    """A body that never ends."""
    return lambda: itertools.repeat(piece)


def trickle(data: bytes, size: int = 1) -> Callable[[], Iterator[bytes]]:
    """``data`` in pieces of ``size`` bytes (pair with ``Answer.pause``)."""
    return lambda: (data[i : i + size] for i in range(0, len(data), size))


@dataclass
class HostileRegistry:
    host: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def route(self, path: str, answer: Answer | Route) -> None:
        self.routes[path] = answer if callable(answer) else (lambda _query, a=answer: a)


def _handler(registry: HostileRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # each answer is several writes: no 40 ms delayed-ACK stalls

        def _answer(self) -> None:
            parts = urlsplit(self.path)
            registry.requests.append((self.command, self.path))
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            route = registry.routes.get(parts.path)
            answer = route(parts.query) if route else Answer(404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}')
            try:
                self._send(answer)
            except (BrokenPipeError, ConnectionResetError, TimeoutError):
                self.close_connection = True

        def _send(self, answer: Answer) -> None:
            body = answer.body
            head = [f"HTTP/1.1 {answer.status} X\r\n"]
            headers = {"Content-Type": "application/json", **answer.headers}
            if isinstance(body, bytes) and answer.content_length is None:
                headers["Content-Length"] = str(len(body))
            elif answer.content_length is not None:
                headers["Content-Length"] = str(answer.content_length)
            else:
                headers["Transfer-Encoding"] = "chunked"
            head += [f"{k}: {v}\r\n" for k, v in headers.items()] + ["\r\n"]
            raw = "".join(head).encode()
            if answer.status_pause:
                for i in range(len(raw)):
                    self.wfile.write(raw[i : i + 1])
                    self.wfile.flush()
                    time.sleep(answer.status_pause)
            else:
                self.wfile.write(raw)
            if self.command == "HEAD":
                return
            chunked = headers.get("Transfer-Encoding") == "chunked"
            pieces = [body] if isinstance(body, bytes) else body()
            for piece in pieces:
                if answer.pause:
                    time.sleep(answer.pause)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                self.wfile.flush()
            if chunked:
                self.wfile.write(b"0\r\n\r\n")

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def hostile_registry() -> Iterator[HostileRegistry]:
    registry = HostileRegistry("")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(registry))
    server.daemon_threads = True
    registry.host = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield registry
    finally:
        server.shutdown()
        server.server_close()
