"""Process lifecycle with real subprocesses: startup, refusals, workers, SIGTERM drain."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
from mpkg_builder.signing import keygen

from tests.harness.server import ServerProcess, server_env
from tests.harness.serving import ModelSource
from tests.runtime.serve.servepkgs import GATE_ENV, OFFSET_ENV, RELEASE_ENV, STARTED_ENV

StartServer = Callable[..., ServerProcess]
VALID = orjson.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": [[1, 2, 3, 4]]}]})


def wait_for(path: Path, proc: ServerProcess) -> None:
    deadline = time.monotonic() + 120
    while not path.exists():
        assert proc.proc.poll() is None, proc.log()
        assert time.monotonic() < deadline, f"{path} never appeared:\n{proc.log()}"
        time.sleep(0.01)


def test_sigterm_drains_in_flight_then_exits_0(
    model_source: ModelSource, start_server: StartServer, tmp_path: Path
) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    # the smoke test runs the package code too: let it through, then arm
    release.touch()
    server = start_server(
        model_source.path("slow"),
        "--key",
        str(model_source.pub),
        env=server_env(**{STARTED_ENV: str(started), RELEASE_ENV: str(release)}),
    )
    url = server.wait_ready()
    started.unlink()
    release.unlink()

    result: dict[str, object] = {}

    def slow_request() -> None:
        r = httpx.post(url + "/v2/models/slow/infer", content=VALID, timeout=120)
        result["status"], result["body"] = r.status_code, r.json()

    t = threading.Thread(target=slow_request)
    t.start()
    wait_for(started, server)  # the request is inside package code now
    server.proc.send_signal(signal.SIGTERM)
    # readiness flips and new inferences are refused while the old one is in flight
    deadline = time.monotonic() + 120
    while httpx.get(url + "/v2/health/ready", timeout=30).status_code != 503:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.01)
    assert httpx.get(url + "/v2/health/ready", timeout=30).json() == {"ready": False}
    assert httpx.get(url + "/v2/health/live", timeout=30).status_code == 200
    refused = httpx.post(url + "/v2/models/slow/infer", content=VALID, timeout=30)
    assert refused.status_code == 503 and "draining" in refused.json()["error"]
    assert server.proc.poll() is None  # still waiting for the in-flight request
    release.touch()
    t.join(timeout=120)
    assert result["status"] == 200, result
    assert server.wait_exit() == 0, server.log()


def test_readiness_is_503_while_loading(model_source: ModelSource, start_server: StartServer, tmp_path: Path) -> None:
    gate = tmp_path / "gate"  # the package's code module blocks at import until it exists
    server = start_server(
        model_source.path("gated"), "--key", str(model_source.pub), env=server_env(**{GATE_ENV: str(gate)})
    )
    url = server.wait_listening()
    assert httpx.get(url + "/v2/health/live").json() == {"live": True}
    assert httpx.get(url + "/v2/health/ready").status_code == 503
    r = httpx.post(url + "/v2/models/gated/infer", content=VALID)
    assert r.status_code == 503 and "loading" in r.json()["error"]
    assert server.proc.poll() is None
    gate.touch()
    server.wait_ready()
    assert httpx.post(url + "/v2/models/gated/infer", content=VALID).status_code == 200
    assert server.stop() == 0


def test_smoke_test_failure_refuses_to_start(model_source: ModelSource, start_server: StartServer) -> None:
    good, bad = model_source.path("iris1"), model_source.path("broken")
    # the package's postprocess adds this offset: 0 when the example was recorded, 1 now
    server = start_server(good, bad, "--key", str(model_source.pub), env=server_env(**{OFFSET_ENV: "1"}))
    assert server.wait_exit() == 1
    log = server.log()
    errors = [ln for ln in log.splitlines() if "smoke test failed" in ln]
    assert len(errors) == 1 and bad in errors[0] and "probabilities" in errors[0], log
    assert "Traceback" not in log
    # the same package, served where the offset is still 0, starts fine
    ok = start_server(bad, "--key", str(model_source.pub))
    ok.wait_ready()
    assert ok.stop() == 0, ok.log()


def test_signatures_are_enforced(model_source: ModelSource, start_server: StartServer, tmp_path: Path) -> None:
    unsigned = model_source.path("tab_unsigned")
    refused = start_server(unsigned, "--key", str(model_source.pub))
    assert refused.wait_exit() == 1
    lines = [ln for ln in refused.log().splitlines() if unsigned in ln]
    assert len(lines) == 1 and "cannot serve" in lines[0], refused.log()
    # a signed package with a key that did not sign it
    stranger = keygen(tmp_path / "stranger")
    signed = model_source.path("tab")
    wrong = start_server(signed, "--key", str(stranger.public_path))
    assert wrong.wait_exit() == 1
    assert any(signed in ln and "cannot serve" in ln for ln in wrong.log().splitlines()), wrong.log()
    assert "Traceback" not in refused.log() + wrong.log()
    # --allow-unsigned serves the unsigned package
    server = start_server(unsigned, "--allow-unsigned")
    url = server.wait_ready()
    r = httpx.post(
        url + "/v2/models/tab/infer",
        json={
            "inputs": [
                {"name": "a", "datatype": "FP32", "shape": [1], "data": [3]},
                {"name": "b", "datatype": "FP32", "shape": [1], "data": [1]},
            ]
        },
    )
    assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [7.0], r.text
    assert server.stop() == 0, server.log()


def test_split_naming_unloaded_version_is_usage_error(model_source: ModelSource, start_server: StartServer) -> None:
    server = start_server(
        model_source.path("iris1"), "--key", str(model_source.pub), "--split", "iris=1.0.0:50,2.0.0:50"
    )
    assert server.wait_exit() == 2
    assert "2.0.0" in server.log() and "--split" in server.log()


@pytest.mark.parametrize(
    "bad",
    [
        ["--split", "iris=1.0.0:0"],
        ["--split", "iris"],
        ["--workers", "0"],
        ["--max-body-bytes", "lots"],
        ["--log-format", "xml"],
        ["--port", "70000"],
    ],
)
def test_bad_flags_exit_2(model_source: ModelSource, start_server: StartServer, bad: list[str]) -> None:
    server = start_server(model_source.path("iris1"), *bad)
    assert server.wait_exit() == 2
    log = server.log()
    # the CLI's one-line usage error names the flag and points at --help
    assert bad[0] in log and "--help" in log and "Traceback" not in log, log


def test_two_workers_share_socket_metrics_and_json_logs(model_source: ModelSource, start_server: StartServer) -> None:
    server = start_server(
        model_source.path("iris1"), "--key", str(model_source.pub), "--workers", "2", "--log-format", "json"
    )
    url = server.wait_ready()
    # wait until both workers are up (each loads the packages itself)
    deadline = time.monotonic() + 120
    while server.log().count('"msg":"ready"') < 2:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.02)

    def request_records() -> list[dict[str, object]]:
        records = [json.loads(ln) for ln in server.log().splitlines() if ln.startswith("{")]
        return [r for r in records if r.get("kind") == "request" and str(r.get("id", "")).startswith("w")]

    # a fresh connection per request; continue until both workers have answered some
    n = 0
    while n < 20 or len({r["pid"] for r in request_records()}) < 2:
        assert n < 3000, "the kernel never gave the second worker a connection"
        body = orjson.dumps({"id": f"w{n}", **orjson.loads(VALID)})
        assert httpx.post(url + "/v2/models/iris/infer", content=body).status_code == 200
        n += 1
    for _ in range(6):  # whichever worker answers the scrape sees both workers' counts
        text = httpx.get(url + "/metrics").text
        line = next(
            ln for ln in text.splitlines() if ln.startswith("mpkg_inference_requests_total{") and 'code="200"' in ln
        )
        assert float(line.rsplit(" ", 1)[1]) == n
    requests = request_records()
    assert len(requests) == n
    assert all(
        r["status"] == 200 and str(r["digest"]).startswith("sha256:") and float(r["latency_ms"]) > 0 for r in requests
    )  # type: ignore[arg-type]
    assert server.stop() == 0, server.log()


def test_without_pyarrow_arrow_requests_get_415(
    model_source: ModelSource, start_server: StartServer, tmp_path: Path
) -> None:
    shim = tmp_path / "shim" / "pyarrow"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('pyarrow is hidden for this test')\n")
    server = start_server(model_source.path("tab"), "--key", str(model_source.pub), env=server_env([str(shim.parent)]))
    url = server.wait_ready()
    r = httpx.post(
        url + "/v2/models/tab/infer",
        content=b"\xff\xff\xff\xff",
        headers={"Content-Type": "application/vnd.apache.arrow.stream"},
    )
    assert r.status_code == 415 and "pyarrow" in r.json()["error"]
    ok = httpx.post(
        url + "/v2/models/tab/infer",
        json={
            "inputs": [
                {"name": "a", "datatype": "FP32", "shape": [2], "data": [1, 2]},
                {"name": "b", "datatype": "FP32", "shape": [2], "data": [0, 0]},
            ]
        },
    )
    assert ok.json()["outputs"][0]["data"] == [2.0, 4.0]
    assert server.stop() == 0


def test_unversioned_requests_pick_the_highest_semver_not_pep440(
    model_source: ModelSource, start_server: StartServer
) -> None:
    # PEP 440 reads 1.0.0-1 as a post-release above 1.0.0; in SemVer it is a pre-release below it
    server = start_server(model_source.path("iris_pre"), model_source.path("iris1"), "--key", str(model_source.pub))
    url = server.wait_ready()
    assert httpx.get(url + "/v2/models/iris").json()["versions"] == ["1.0.0-1", "1.0.0"]
    r = httpx.post(url + "/v2/models/iris/infer", content=VALID)
    assert r.status_code == 200 and r.json()["model_version"] == "1.0.0", r.text
    assert server.stop() == 0, server.log()


def test_serve_honours_mpkg_keys(model_source: ModelSource, start_server: StartServer) -> None:
    signed = model_source.path("iris1")
    server = start_server(signed, env=server_env(MPKG_KEYS=str(model_source.pub)))
    url = server.wait_ready()
    assert httpx.post(url + "/v2/models/iris/infer", content=VALID).status_code == 200
    assert server.stop() == 0, server.log()
    refused = start_server(signed)  # no key from flags or the environment: fail closed
    assert refused.wait_exit() == 1 and "cannot serve" in refused.log(), refused.log()
