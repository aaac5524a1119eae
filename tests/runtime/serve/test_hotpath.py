"""The serving hot path's shortcuts keep their promises: batched access log, one write per
response, and the fast enum and dtype paths of contract enforcement."""

from __future__ import annotations

import asyncio
import io
import socket

import numpy as np
import pytest
from mpkg._internal.contract.contract import Contract
from mpkg._internal.contract.enforce import check_outputs
from mpkg.errors import ContractError
from mpkg.serve.http import CoalescingTransport
from mpkg.serve.logs import Log

# --- access log -----------------------------------------------------------------------------


class CountingStream(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


def test_access_lines_on_a_loop_are_written_together_at_the_end_of_the_turn() -> None:
    stream = CountingStream()
    log = Log("text", stream)

    async def main() -> tuple[str, str]:
        for i in range(5):
            log.access("POST", f"/v2/models/m/infer/{i}", 200, 0.001, "m", "1", "sha256:ab", f"r{i}")
        during = stream.getvalue()
        await asyncio.sleep(0)  # let the loop finish its turn
        await asyncio.sleep(0)
        return during, stream.getvalue()

    during, after = asyncio.run(main())
    assert during == ""
    lines = after.splitlines()
    assert [ln.split()[2] for ln in lines] == [f"/v2/models/m/infer/{i}" for i in range(5)]
    assert all(ln.endswith(f" id=r{i}") and "digest=sha256:ab" in ln for i, ln in enumerate(lines))
    assert stream.writes == 1


def test_events_flush_queued_access_lines_first_and_no_loop_means_write_now() -> None:
    stream = CountingStream()
    log = Log("json", stream)

    async def main() -> None:
        log.access("GET", "/v2", 200, 0.0)
        log.event("info", "after the request")

    asyncio.run(main())
    kinds = [ln.split('"kind":"')[1].split('"')[0] for ln in stream.getvalue().splitlines()]
    assert kinds == ["request", "event"]
    log.access("GET", "/v2/health/live", 200, 0.0)  # no running loop here
    assert stream.getvalue().splitlines()[-1].count("/v2/health/live") == 1


# --- one write per response -----------------------------------------------------------------


def test_response_head_and_body_reach_the_socket_in_one_write() -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n"

    async def main() -> tuple[list[bytes], bytes]:
        writes: list[bytes] = []
        done = asyncio.Event()

        class Server(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                assert isinstance(transport, asyncio.Transport)
                real_write = transport.write

                def counted(data: bytes | bytearray | memoryview) -> None:
                    writes.append(bytes(data))
                    real_write(data)

                transport.write = counted  # type: ignore[method-assign]
                self.t = CoalescingTransport(transport, asyncio.get_running_loop())

            def data_received(self, data: bytes) -> None:
                self.t.write(head)  # a response's head, then its body, as uvicorn writes them
                self.t.write(b"hello")
                self.t.write(b"HTTP/1.1 204 No Content\r\n\r\n")  # a head with no body after it
                self.t.close()
                done.set()

        loop = asyncio.get_running_loop()
        server = await loop.create_server(Server, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\n\r\n")
        await done.wait()
        received = await reader.read()
        writer.close()
        server.close()
        await server.wait_closed()
        return writes, received

    writes, received = asyncio.run(main())
    assert writes == [head + b"hello", b"HTTP/1.1 204 No Content\r\n\r\n"]
    assert received == head + b"hello" + b"HTTP/1.1 204 No Content\r\n\r\n"


def test_a_held_head_is_released_at_the_end_of_the_loop_turn() -> None:
    async def main() -> bytes:
        a, b = socket.socketpair()
        loop = asyncio.get_running_loop()
        transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, a)
        t = CoalescingTransport(transport, loop)
        t.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        b.setblocking(False)
        data = await loop.sock_recv(b, 1024)
        transport.close()
        b.close()
        return data

    assert asyncio.run(main()).startswith(b"HTTP/1.1 200 OK\r\n")


# --- enforcement fast paths -----------------------------------------------------------------

OUT = Contract.from_json(
    {
        "inputs": [{"name": "x", "dtype": "float32", "shape": [-1]}],
        "outputs": [
            {"name": "label", "dtype": "int64", "shape": ["batch"], "enum": [0, 1, 2]},
            {"name": "score", "dtype": "float32", "shape": ["batch"], "enum": [0.5, 1.5]},
            {"name": "many", "dtype": "int32", "shape": ["batch"], "enum": list(range(0, 40, 3))},
        ],
    }
)


def outputs(label: list[int], score: list[float], many: list[int]) -> dict[str, np.ndarray]:
    return {
        "label": np.array(label, dtype=np.int64),
        "score": np.array(score, dtype=np.float32),
        "many": np.array(many, dtype=np.int32),
    }


@pytest.mark.parametrize("n", [1, 128, 129, 1000])  # the Python set path and the numpy paths
def test_enum_checks_agree_on_every_path(n: int) -> None:
    good = outputs([i % 3 for i in range(n)], [0.5] * n, [3 * (i % 13) for i in range(n)])
    checked = check_outputs(OUT, good)
    assert checked["label"] is good["label"]  # already int64: passed through, not copied
    bad = outputs([i % 3 for i in range(n - 1)] + [7], [0.5] * (n - 1) + [np.nan], [1] + [0] * (n - 1))
    with pytest.raises(ContractError) as info:
        check_outputs(OUT, bad)
    reasons = " | ".join(info.value.reasons())
    assert f"value 7 at flat index {n - 1} is not one of [0, 1, 2]" in reasons
    assert "null/NaN" in reasons  # NaN is a null, refused in a non-nullable field before the enum
    assert "value 1 at flat index 0 is not one of" in reasons
