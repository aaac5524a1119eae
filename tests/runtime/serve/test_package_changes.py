"""What a served package can be made to do (issue 9 §2-3), against real ``mpkg serve``
subprocesses: its file overwritten or truncated under the running server, and
its code reaching another package's model (with and without ``--isolate``)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest

from tests.harness.server import ServerProcess, server_env
from tests.harness.serving import ModelSource
from tests.harness.serving import reference_probabilities as expected
from tests.runtime.serve.servepkgs import SNOOP_ENV

StartServer = Callable[..., ServerProcess]
X = [[0.1, 0.2, 0.3, 0.4]]
BODY = orjson.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": X}]})


def change(path: Path, how: str) -> None:
    if how == "overwritten":
        with open(path, "r+b") as f:  # bytes inside the package, in place
            f.seek(3000)
            f.write(b"\xff" * 64)
    else:
        os.truncate(path, 1024)


@pytest.mark.parametrize("how", ["overwritten", "truncated"])  # replaced: a swap (test_swap.py)
def test_package_file_changed_under_the_server_stops_its_model(
    model_source: ModelSource, start_server: StartServer, tmp_path: Path, how: str
) -> None:
    served = tmp_path / "iris.mpkg"
    shutil.copyfile(model_source.path("iris1"), served)
    server = start_server(str(served), model_source.path("iris2"), "--key", str(model_source.pub))
    url = server.wait_ready()
    reference = expected(model_source, "iris1", X)
    answers: list[tuple[int, object]] = []
    stop = threading.Event()

    def keep_asking() -> None:  # requests in flight while the file changes
        with httpx.Client(base_url=url, timeout=30) as c:
            while not stop.is_set():
                r = c.post("/v2/models/iris/versions/1.0.0/infer", content=BODY)
                answers.append((r.status_code, r.json()))

    t = threading.Thread(target=keep_asking)
    t.start()
    time.sleep(0.3)
    changed_at = time.monotonic()
    change(served, how)
    with httpx.Client(base_url=url, timeout=30) as c:
        while c.get("/v2/models/iris/versions/1.0.0/ready").status_code != 503:
            assert time.monotonic() - changed_at < 1.0, "the change was not noticed within a second"
            time.sleep(0.01)
        stop.set()
        t.join()
        r = c.post("/v2/models/iris/versions/1.0.0/infer", content=BODY)
        assert r.status_code == 503 and "stopped answering" in r.json()["error"], r.text
        assert c.get("/v2/health/ready").status_code == 503  # the server no longer serves all it promised
        assert c.get("/v2/health/live").status_code == 200  # ... and is alive
        assert c.post("/v2/models/iris/versions/1.1.0/infer", content=BODY).status_code == 200
    assert server.proc.poll() is None  # no SIGBUS
    for status, doc in answers:  # never an answer computed from changed bytes
        assert status in (200, 503), doc
        if status == 200:
            data = doc["outputs"][0]["data"]  # type: ignore[index]
            np.testing.assert_allclose(np.reshape(data, (1, 3)), reference, rtol=1e-5)
    lines = [ln for ln in server.log().splitlines() if "stopped answering" in ln and "ERROR" in ln]
    assert len(lines) == 1 and str(served) in lines[0], server.log()
    assert server.stop() == 0, server.log()


@pytest.mark.parametrize("isolate", [False, True])
def test_package_code_reaching_another_model_through_gc(
    model_source: ModelSource, start_server: StartServer, tmp_path: Path, isolate: bool
) -> None:
    report = tmp_path / "snooped"
    args = [model_source.path("iris1"), model_source.path("snoop"), "--key", str(model_source.pub)]
    server = start_server(*args, *(["--isolate"] if isolate else []), env=server_env(**{SNOOP_ENV: str(report)}))
    url = server.wait_ready()
    assert httpx.post(url + "/v2/models/snoop/infer", content=BODY).status_code == 200
    iris = httpx.post(url + "/v2/models/iris/infer", content=BODY).json()["outputs"][0]["data"]
    if isolate:  # its own process: nothing of the other package to find or change
        assert report.read_text() == ""
        np.testing.assert_allclose(np.reshape(iris, (1, 3)), expected(model_source, "iris1", X), rtol=1e-5)
    else:  # one process: the documented risk (spec/runtime.md §8), and why --isolate exists
        assert report.read_text() == "iris"
        assert iris == [0.0, 0.0, 0.0]
    assert server.stop() == 0, server.log()
