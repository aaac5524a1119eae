"""Concurrent mixed load: valid, malformed and oversized requests; never a 5xx."""

from __future__ import annotations

import gzip
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import orjson

from tests.harness.server import ServerProcess
from tests.harness.serving import MAX_BODY

VALID = orjson.dumps(
    {"inputs": [{"name": "features", "datatype": "FP32", "shape": [2, 4], "data": [[1, 2, 3, 4], [5, 6, 7, 8]]}]}
)
CASES: list[tuple[str, bytes, dict[str, str], set[int]]] = [
    ("/v2/models/iris/infer", VALID, {"Content-Type": "application/json"}, {200}),
    ("/v2/models/iris/versions/1.1.0/infer", VALID, {}, {200}),
    ("/v2/models/iris/infer", b'{"inputs": [{"name": "features"', {}, {400}),
    ("/v2/models/iris/infer", b"\x00\xff" * 64, {}, {400}),
    ("/v2/models/iris/infer", VALID.replace(b"FP32", b"INT8"), {}, {400}),
    ("/v2/models/iris/infer", b" " * (MAX_BODY + 10), {}, {413}),
    ("/v2/models/iris/infer", gzip.compress(b"[" * (MAX_BODY * 2)), {"Content-Encoding": "gzip"}, {413}),
    ("/v2/models/iris/infer", gzip.compress(VALID), {"Content-Encoding": "gzip"}, {200}),
    ("/v2/models/missing/infer", VALID, {}, {404}),
    ("/v2/models/iris/infer", VALID, {"Content-Type": "text/html"}, {415}),
    ("/v2/models/tab/infer", b"\x01\x02", {"Content-Type": "application/vnd.apache.arrow.stream"}, {400}),
]


def test_concurrent_mixed_load(server: ServerProcess) -> None:
    threads, per_thread = 16, 22

    def worker(t: int) -> Counter[int]:
        seen: Counter[int] = Counter()
        with httpx.Client(base_url=server.url, timeout=60) as c:
            for i in range(per_thread):
                path, body, headers, allowed = CASES[(t + i) % len(CASES)]
                try:
                    r = c.post(path, content=body, headers=headers)
                except httpx.TransportError:
                    # only acceptable when the server cut an oversized upload short
                    assert len(body) > MAX_BODY, path
                    seen[-1] += 1
                    continue
                assert r.status_code in allowed, (path, r.status_code, r.text)
                seen[r.status_code] += 1
        return seen

    with ThreadPoolExecutor(threads) as pool:
        totals = sum(pool.map(worker, range(threads)), Counter())
    assert not [code for code in totals if code >= 500], totals
    assert totals[200] > 0 and totals[400] > 0 and totals[413] > 0
    assert sum(totals.values()) == threads * per_thread
    assert httpx.get(server.url + "/v2/health/ready").status_code == 200
    assert httpx.post(server.url + "/v2/models/iris/infer", content=VALID).status_code == 200
