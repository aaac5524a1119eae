"""Attacks on what a client can make the server hold at the connection level (issue 9 §2),
against a real ``mpkg serve`` subprocess with raw sockets: slowloris (silent and
byte-by-byte connections), oversized heads, too many header fields, long request lines
and connection floods."""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.harness.server import ServerProcess
from tests.harness.serving import ModelSource

StartServer = Callable[..., ServerProcess]


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def answer(sock: socket.socket, timeout: float = 30) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def raw(url: str, data: bytes) -> bytes:
    with socket.create_connection(address(url), timeout=30) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        return answer(sock)


@pytest.fixture
def many_files() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_slowloris_silent_and_byte_by_byte_connections_do_not_stop_health(
    model_source: ModelSource, start_server: StartServer, many_files: None
) -> None:
    server = start_server(model_source.path("iris1"), "--key", str(model_source.pub), "--header-timeout", "3")
    url = server.wait_ready()
    silent = [socket.create_connection(address(url), timeout=30) for _ in range(1000)]
    trickle = [socket.create_connection(address(url), timeout=30) for _ in range(100)]
    stop = threading.Event()

    def byte_by_byte() -> None:
        request = b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n" + b"x-pad: " + b"a" * 1000
        for i in range(len(request)):
            for s in trickle:
                with contextlib.suppress(OSError):
                    s.send(request[i : i + 1])
            if stop.wait(0.2):
                return

    t = threading.Thread(target=byte_by_byte)
    t.start()
    try:
        latencies = []
        with httpx.Client(base_url=url, timeout=30) as c:
            for _ in range(50):
                t0 = time.perf_counter()
                assert c.get("/v2/health/live").status_code == 200
                latencies.append(time.perf_counter() - t0)
                time.sleep(0.02)
        assert max(latencies) < 2.0, max(latencies)
        # after the head timeout: silent connections are closed, trickling ones get 408 first
        assert answer(silent[0]) == b""
        assert answer(silent[-1]) == b""
        first = answer(trickle[0])
        assert first.startswith(b"HTTP/1.1 408 ") and b"connection: close" in first, first
    finally:
        stop.set()
        t.join()
        for s in silent + trickle:
            s.close()
    assert httpx.get(url + "/v2/health/live").status_code == 200
    assert server.stop() == 0, server.log()


def test_oversized_heads_long_request_lines_and_header_floods_are_refused(
    model_source: ModelSource, start_server: StartServer
) -> None:
    server = start_server(model_source.path("iris1"), "--key", str(model_source.pub))
    url = server.wait_ready()
    big_head = raw(url, b"GET /v2/health/live HTTP/1.1\r\nx-big: " + b"a" * 64 * 1024 + b"\r\n\r\n")
    assert big_head.startswith(b"HTTP/1.1 431 ") and b"32768 bytes" in big_head, big_head[:200]
    endless = raw(url, b"GET /v2/health/live HTTP/1.1\r\nx-endless: " + b"a" * 4 * 1024 * 1024)
    assert endless.startswith(b"HTTP/1.1 431 "), endless[:200]
    many = b"".join(b"x-h%d: 1\r\n" % i for i in range(101))
    flood = raw(url, b"GET /v2/health/live HTTP/1.1\r\n" + many + b"\r\n")
    assert flood.startswith(b"HTTP/1.1 431 ") and b"100 header fields" in flood, flood[:200]
    long_line = raw(url, b"GET /v2/" + b"a" * 9000 + b" HTTP/1.1\r\nhost: x\r\n\r\n")
    assert long_line.startswith(b"HTTP/1.1 414 "), long_line[:200]
    # a head just under the limits, and its body, still work
    ok = httpx.get(url + "/v2/health/live", headers={f"x-h{i}": "1" for i in range(90)})
    assert ok.status_code == 200
    assert server.stop() == 0, server.log()


def test_connection_flood_evicts_idle_connections_then_refuses_with_503(
    model_source: ModelSource, start_server: StartServer
) -> None:
    server = start_server(
        model_source.path("iris1"), "--key", str(model_source.pub), "--max-connections", "20", "--max-queue", "40"
    )
    url = server.wait_ready()
    idle = [socket.create_connection(address(url), timeout=30) for _ in range(20)]
    time.sleep(0.3)
    # at the cap, a new connection closes the oldest idle one instead of waiting behind it
    assert httpx.get(url + "/v2/health/live").status_code == 200
    assert answer(idle[0], timeout=10) == b""
    for s in idle:
        s.close()
    time.sleep(0.3)
    # 20 connections each in the middle of a request (the body is still coming): nothing idle to close
    busy = [socket.create_connection(address(url), timeout=30) for _ in range(20)]
    for s in busy:
        s.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{")
    time.sleep(0.5)
    refused = raw(url, b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n\r\n")
    assert refused.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in refused, refused[:300]
    for s in busy:
        s.close()
    time.sleep(0.3)
    assert httpx.get(url + "/v2/health/live").status_code == 200
    assert server.stop() == 0, server.log()
