"""Open Inference Protocol over a real server subprocess, with httpx."""

from __future__ import annotations

import gzip
import io
import time
import zlib
from collections.abc import Mapping
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from tests.harness.server import ServerProcess
from tests.harness.serving import MAX_BODY, ModelSource, manifest_digest
from tests.harness.serving import reference_probabilities as expected
from tests.runtime.serve.servepkgs import CRASH_MESSAGE

X = [[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 2.0], [3.0, 0.0, -2.0, 1.5]]


def infer_doc(x: Any = X, shape: list[int] | None = None, **extra: object) -> dict[str, Any]:
    shape = list(np.shape(x)) if shape is None else shape
    doc: dict[str, Any] = {"inputs": [{"name": "features", "datatype": "FP32", "shape": shape, "data": x}]}
    doc.update(extra)
    return doc


def binary_body(header: Mapping[str, Any], *blobs: bytes) -> tuple[bytes, dict[str, str]]:
    head = orjson.dumps(header)
    return head + b"".join(blobs), {
        "Inference-Header-Content-Length": str(len(head)),
        "Content-Type": "application/octet-stream",
    }


def split_binary(resp: httpx.Response) -> tuple[dict[str, Any], bytes]:
    n = int(resp.headers["inference-header-content-length"])
    return orjson.loads(resp.content[:n]), resp.content[n:]


def assert_error(resp: httpx.Response, status: int, *needles: str) -> str:
    assert resp.status_code == status, resp.text
    doc = resp.json()
    assert set(doc) == {"error"}
    message = doc["error"]
    assert isinstance(message, str) and "\n" not in message and message
    for needle in needles:
        assert needle in message, message
    return message


# --- health and metadata -------------------------------------------------------------


def test_health(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    r = client.get("/v2/health/ready")
    assert (r.status_code, r.json()) == (200, {"ready": True})


def test_server_metadata_lists_models(client: httpx.Client, model_source: ModelSource) -> None:
    doc = client.get("/v2").json()
    assert doc["name"] == "mpkg"
    assert isinstance(doc["version"], str) and doc["version"]
    assert "binary_tensor_data" in doc["extensions"]
    served = {(m["name"], m["version"]) for m in doc["models"]}
    assert served == {("iris", "1.0.0"), ("iris", "1.1.0"), ("tab", "1.0.0"), ("echo", "1.0.0"), ("crashy", "2.0.0")}
    digests = {m["name"] + m["version"]: m["digest"] for m in doc["models"]}
    for key, name_version in (
        ("iris1", "iris1.0.0"),
        ("iris2", "iris1.1.0"),
        ("tab", "tab1.0.0"),
        ("echo", "echo1.0.0"),
        ("crashy", "crashy2.0.0"),
    ):
        assert digests[name_version] == manifest_digest(model_source.path(key)) == model_source.digests[key]
    assert len(set(digests.values())) == 5


def test_model_metadata(client: httpx.Client, model_source: ModelSource) -> None:
    doc = client.get("/v2/models/iris").json()
    assert doc["name"] == "iris"
    assert doc["versions"] == ["1.0.0", "1.1.0"]
    assert doc["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]
    assert doc["outputs"] == [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}]
    assert doc["digest"] == manifest_digest(model_source.path("iris2"))  # highest
    v1 = client.get("/v2/models/iris/versions/1.0.0").json()
    assert v1["digest"] == manifest_digest(model_source.path("iris1"))
    echo = client.get("/v2/models/echo").json()
    assert echo["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]


def test_model_ready(client: httpx.Client) -> None:
    assert client.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": True}
    assert client.get("/v2/models/iris/versions/1.1.0/ready").json() == {"name": "iris", "ready": True}
    assert_error(client.get("/v2/models/iris/versions/9.9.9/ready"), 404, "9.9.9")


# --- inference: JSON ---------------------------------------------------------------


def test_infer_json_flat_and_nested(client: httpx.Client, model_source: ModelSource) -> None:
    want = expected(model_source, "iris1", X)
    nested = client.post("/v2/models/iris/versions/1.0.0/infer", json=infer_doc(id="req-1"))
    assert nested.status_code == 200, nested.text
    doc = nested.json()
    assert doc["id"] == "req-1"
    assert doc["model_name"] == "iris" and doc["model_version"] == "1.0.0"
    (out,) = doc["outputs"]
    assert out["name"] == "probabilities" and out["datatype"] == "FP32" and out["shape"] == [3, 3]
    np.testing.assert_allclose(np.reshape(out["data"], (3, 3)), want, rtol=1e-6)
    flat = infer_doc()
    flat["inputs"][0]["data"] = np.ravel(X).tolist()
    doc2 = client.post("/v2/models/iris/versions/1.0.0/infer", json=flat).json()
    assert doc2["outputs"][0]["data"] == out["data"]
    assert "id" not in doc2


def test_versions_answer_differently(client: httpx.Client, model_source: ModelSource) -> None:
    for key, version in (("iris1", "1.0.0"), ("iris2", "1.1.0")):
        doc = client.post(f"/v2/models/iris/versions/{version}/infer", json=infer_doc()).json()
        assert doc["model_version"] == version
        np.testing.assert_allclose(
            np.reshape(doc["outputs"][0]["data"], (3, 3)), expected(model_source, key, X), rtol=1e-6
        )


def test_outputs_filter_and_binary_output(client: httpx.Client, model_source: ModelSource) -> None:
    want = expected(model_source, "iris1", X)
    doc = infer_doc(outputs=[{"name": "probabilities", "parameters": {"binary_data": True}}])
    r = client.post("/v2/models/iris/versions/1.0.0/infer", json=doc)
    assert r.status_code == 200, r.text
    header, blob = split_binary(r)
    (out,) = header["outputs"]
    assert out["parameters"] == {"binary_data_size": len(blob)} and "data" not in out
    np.testing.assert_array_equal(np.frombuffer(blob, "<f4").reshape(3, 3), want)
    # request-level default, overridden per output
    doc = infer_doc(
        parameters={"binary_data_output": True},
        outputs=[{"name": "probabilities", "parameters": {"binary_data": False}}],
    )
    r = client.post("/v2/models/iris/versions/1.0.0/infer", json=doc)
    assert "inference-header-content-length" not in r.headers
    assert "data" in r.json()["outputs"][0]
    r = client.post("/v2/models/iris/versions/1.0.0/infer", json=infer_doc(parameters={"binary_data_output": True}))
    header, blob = split_binary(r)
    np.testing.assert_array_equal(np.frombuffer(blob, "<f4").reshape(3, 3), want)
    assert_error(client.post("/v2/models/iris/infer", json=infer_doc(outputs=[{"name": "nope"}])), 400, "nope")


def test_binary_input(client: httpx.Client, model_source: ModelSource) -> None:
    x = np.asarray(X, dtype="<f4")
    header = {
        "inputs": [
            {"name": "features", "datatype": "FP32", "shape": [3, 4], "parameters": {"binary_data_size": x.nbytes}}
        ]
    }
    body, headers = binary_body(header, x.tobytes())
    r = client.post("/v2/models/iris/versions/1.0.0/infer", content=body, headers=headers)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(
        np.reshape(r.json()["outputs"][0]["data"], (3, 3)), expected(model_source, "iris1", X), rtol=1e-6
    )
    # wrong size, trailing bytes, header length past the body
    bad, headers = binary_body(
        {"inputs": [{**header["inputs"][0], "parameters": {"binary_data_size": 40}}]}, x.tobytes()[:40]
    )
    assert_error(client.post("/v2/models/iris/infer", content=bad, headers=headers), 400, "features", "48")
    extra, headers = binary_body(header, x.tobytes(), b"junk")
    assert_error(client.post("/v2/models/iris/infer", content=extra, headers=headers), 400, "after")
    headers["Inference-Header-Content-Length"] = str(len(extra) + 5)
    assert_error(
        client.post("/v2/models/iris/infer", content=extra, headers=headers), 400, "Inference-Header-Content-Length"
    )


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_body(client: httpx.Client, model_source: ModelSource, encoding: str) -> None:
    raw = orjson.dumps(infer_doc())
    body = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    r = client.post(
        "/v2/models/iris/versions/1.0.0/infer",
        content=body,
        headers={"Content-Encoding": encoding, "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(
        np.reshape(r.json()["outputs"][0]["data"], (3, 3)), expected(model_source, "iris1", X), rtol=1e-6
    )
    assert_error(
        client.post("/v2/models/iris/infer", content=body[: len(body) // 2], headers={"Content-Encoding": encoding}),
        400,
    )


def test_bytes_json_and_binary(client: httpx.Client) -> None:
    words = ["hello", "wörld", ""]
    r = client.post(
        "/v2/models/echo/infer", json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [3], "data": words}]}
    )
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert (out["datatype"], out["shape"], out["data"]) == ("BYTES", [3], words)
    blob = b"".join(len(w.encode()).to_bytes(4, "little") + w.encode() for w in words)
    body, headers = binary_body(
        {
            "inputs": [
                {"name": "text", "datatype": "BYTES", "shape": [3], "parameters": {"binary_data_size": len(blob)}}
            ],
            "parameters": {"binary_data_output": True},
        },
        blob,
    )
    r = client.post("/v2/models/echo/infer", content=body, headers=headers)
    _, data = split_binary(r)
    assert data == blob
    bad = (5).to_bytes(4, "little") + b"\xff\xfe\xfd\xfc\xfb"
    body, headers = binary_body(
        {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": len(bad)}}]},
        bad,
    )
    assert_error(client.post("/v2/models/echo/infer", content=body, headers=headers), 400, "UTF-8")


# --- Arrow IPC --------------------------------------------------------------------


def arrow_bytes(table: object) -> bytes:
    import pyarrow as pa

    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:  # type: ignore[attr-defined]
        w.write(table)
    return sink.getvalue()


def test_arrow_ipc(client: httpx.Client) -> None:
    import pyarrow as pa

    table = pa.table({"a": pa.array([1.0, 2.0, -3.0], pa.float32()), "b": pa.array([0.5, 1.0, 1.0], pa.float32())})
    r = client.post(
        "/v2/models/tab/infer",
        content=arrow_bytes(table),
        headers={"Content-Type": "application/vnd.apache.arrow.stream"},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/vnd.apache.arrow.stream"
    assert r.headers["model-version"] == "1.0.0"
    out = pa.ipc.open_stream(r.content).read_all()
    assert out.column("score").to_pylist() == [2.5, 5.0, -5.0]
    wrong = pa.table({"a": pa.array(["x"]), "b": pa.array([1.0], pa.float32())})
    assert_error(
        client.post(
            "/v2/models/tab/infer",
            content=arrow_bytes(wrong),
            headers={"Content-Type": "application/vnd.apache.arrow.stream"},
        ),
        400,
        "a",
    )
    assert_error(
        client.post(
            "/v2/models/tab/infer",
            content=b"not arrow at all",
            headers={"Content-Type": "application/vnd.apache.arrow.stream"},
        ),
        400,
        "Arrow",
    )
    assert_error(
        client.post(
            "/v2/models/iris/infer",
            content=arrow_bytes(table),
            headers={"Content-Type": "application/vnd.apache.arrow.stream"},
        ),
        415,
        "tabular",
    )


# --- refusals ---------------------------------------------------------------------


def test_400_malformed_and_contract(client: httpx.Client) -> None:
    url = "/v2/models/iris/infer"
    assert_error(client.post(url, content=b"{not json", headers={"Content-Type": "application/json"}), 400, "JSON")
    assert_error(client.post(url, json=[1, 2]), 400, "object")
    assert_error(client.post(url, json={"inputs": []}), 400, "inputs")
    assert_error(
        client.post(
            url, json={"inputs": [{"name": "wrong", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
        ),
        400,
        "wrong",
    )
    doc = infer_doc()
    doc["inputs"][0]["datatype"] = "FP64"
    assert_error(client.post(url, json=doc), 400, "features", "FP32")
    doc = infer_doc()
    doc["inputs"][0]["shape"] = [3, 5]
    assert_error(client.post(url, json=doc), 400, "features", "15")
    assert_error(client.post(url, json=infer_doc([["a", "b", "c", "d"]])), 400, "features")
    assert_error(client.post(url, json=infer_doc([[1, 2, 3], [4, 5]], shape=[2, 4])), 400, "features")
    # passes the codec, violates the contract's fixed dim: the model's own check names the field
    assert_error(client.post(url, json=infer_doc([[1.0, 2.0, 3.0]])), 400, "features", "dim 1")
    assert_error(
        client.post(url, json={"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4]}]}), 400, "data"
    )
    assert_error(client.post(url, json=infer_doc(id=5)), 400, "id")


def test_404(client: httpx.Client) -> None:
    assert_error(client.post("/v2/models/nope/infer", json=infer_doc()), 404, "nope")
    assert_error(client.post("/v2/models/iris/versions/3.0.0/infer", json=infer_doc()), 404, "3.0.0")
    assert_error(client.get("/v2/models/nope"), 404, "nope")
    assert_error(client.get("/v2/models/iris/config"), 404)
    assert_error(client.get("/nothing/here"), 404)


def test_405(client: httpx.Client) -> None:
    r = client.get("/v2/models/iris/infer")
    assert_error(r, 405, "POST")
    assert r.headers["allow"] == "POST"
    assert_error(client.post("/v2/health/ready"), 405)
    assert_error(client.put("/v2/models/iris"), 405)
    assert_error(client.post("/metrics"), 405)


def test_413_content_length_streamed_and_bomb(client: httpx.Client, server: ServerProcess) -> None:
    big = b" " * (MAX_BODY + 1)
    assert_error(
        client.post("/v2/models/iris/infer", content=big, headers={"Content-Type": "application/json"}), 413, "limit"
    )

    def chunks() -> object:  # no Content-Length: the streamed byte count must catch it
        for _ in range(8):
            yield b" " * (MAX_BODY // 4)

    assert_error(
        client.post(
            "/v2/models/iris/infer",
            content=chunks(),  # type: ignore[arg-type]
            headers={"Content-Type": "application/json"},
        ),
        413,
        "limit",
    )
    bomb = gzip.compress(b" " * (MAX_BODY * 8))
    assert len(bomb) < MAX_BODY
    assert_error(
        client.post("/v2/models/iris/infer", content=bomb, headers={"Content-Encoding": "gzip"}), 413, "decompressed"
    )
    assert client.get("/v2/health/live").status_code == 200


def test_415(client: httpx.Client) -> None:
    assert_error(
        client.post("/v2/models/iris/infer", content=orjson.dumps(infer_doc()), headers={"Content-Type": "text/csv"}),
        415,
        "text/csv",
    )
    assert_error(
        client.post(
            "/v2/models/iris/infer",
            content=orjson.dumps(infer_doc()),
            headers={"Content-Type": "application/json", "Content-Encoding": "br"},
        ),
        415,
        "br",
    )


def test_500_is_generic_and_logged(client: httpx.Client, server: ServerProcess) -> None:
    r = client.post("/v2/models/crashy/infer", json=infer_doc([[13.0, 0, 0, 0]]))
    message = assert_error(r, 500, "internal error")
    assert "on purpose" not in message  # package internals stay in the log
    ok = client.post("/v2/models/crashy/infer", json=infer_doc([[12.0, 0, 0, 0]]))
    assert ok.status_code == 200
    log = server.log()
    assert CRASH_MESSAGE in log and "Traceback" in log
    assert "pipeline.py" in log  # the traceback reaches into the package's own code module


# --- splits, metrics, logs --------------------------------------------------------


def test_split_distribution(client: httpx.Client) -> None:
    counts = {"1.0.0": 0, "1.1.0": 0}
    n = 400
    for _ in range(n):
        doc = client.post("/v2/models/iris/infer", json=infer_doc()).json()
        counts[doc["model_version"]] += 1
    # weights 70:30; 400 draws -> sd ~0.023, so +-0.1 is >4 sd
    assert abs(counts["1.0.0"] / n - 0.7) < 0.1, counts
    assert counts["1.0.0"] + counts["1.1.0"] == n


def test_metrics(client: httpx.Client) -> None:
    def value(text: str, prefix: str) -> float:
        lines = [ln for ln in text.splitlines() if ln.startswith(prefix)]
        assert len(lines) == 1, (prefix, lines)
        return float(lines[0].rsplit(" ", 1)[1])

    digest = client.get("/v2/models/tab").json()["digest"]
    labels = f'model="tab",version="1.0.0",digest="{digest}"'
    before = client.get("/metrics")
    assert before.headers["content-type"].startswith("text/plain; version=0.0.4")
    ok0 = value(before.text, f'mpkg_inference_requests_total{{{labels},code="200"}}')
    count0 = value(before.text, f"mpkg_inference_request_duration_seconds_count{{{labels}}}")
    err0 = value(before.text, f"mpkg_inference_errors_total{{{labels}}}")
    for _ in range(3):
        client.post(
            "/v2/models/tab/infer",
            json={
                "inputs": [
                    {"name": "a", "datatype": "FP32", "shape": [1], "data": [1]},
                    {"name": "b", "datatype": "FP32", "shape": [1], "data": [1]},
                ]
            },
        )
    client.post("/v2/models/tab/infer", json={"inputs": []})
    after = client.get("/metrics").text
    assert value(after, f'mpkg_inference_requests_total{{{labels},code="200"}}') == ok0 + 3
    assert value(after, f'mpkg_inference_requests_total{{{labels},code="400"}}') >= 1
    assert value(after, f"mpkg_inference_errors_total{{{labels}}}") == err0 + 1
    assert value(after, f"mpkg_inference_request_duration_seconds_count{{{labels}}}") == count0 + 4
    assert value(after, f'mpkg_inference_request_duration_seconds_bucket{{{labels},le="+Inf"}}') == count0 + 4
    assert value(after, f"mpkg_inference_request_duration_seconds_sum{{{labels}}}") > 0
    assert "# TYPE mpkg_inference_request_duration_seconds histogram" in after


def test_access_log_line_per_request(client: httpx.Client, server: ServerProcess) -> None:
    rid = "log-probe-7f3a"
    r = client.post("/v2/models/iris/versions/1.1.0/infer", json=infer_doc(id=rid))
    digest = client.get("/v2/models/iris/versions/1.1.0").json()["digest"]
    lines = [ln for ln in server.log().splitlines() if rid in ln]
    assert len(lines) == 1, lines
    assert f"POST /v2/models/iris/versions/1.1.0/infer {r.status_code}" in lines[0]
    assert f"digest={digest}" in lines[0] and "ms" in lines[0]


# --- hostile values (issue 9) ---------------------------------------------------------------


def test_empty_tensor_with_huge_dims_is_a_400(client: httpx.Client) -> None:
    for shape in ([0, 2**39, 2**39], [2**39, 0]):
        r = client.post("/v2/models/iris/infer", json=infer_doc([], shape=shape))
        assert_error(r, 400, "features", "elements")


def test_a_400_echoes_only_a_bounded_prefix_of_a_bad_value(client: httpx.Client) -> None:
    huge = "x" * (600 * 1024)
    doc = {"inputs": [{"name": huge, "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
    message = assert_error(client.post("/v2/models/iris/infer", json=doc), 400, "is not in the model's contract")
    assert len(message) < 2048, len(message)
    doc = infer_doc([[1, 2, 3, 4]])
    doc["inputs"][0]["datatype"] = "FP" * 100_000
    assert len(assert_error(client.post("/v2/models/iris/infer", json=doc), 400, "datatype")) < 2048


def test_control_characters_in_a_path_cannot_forge_access_log_lines(
    client: httpx.Client, server: ServerProcess
) -> None:
    forged = "2026-01-01T00:00:00.000Z GET /v2/health/live 200 0.100ms"
    target = "/v2/x%0A" + forged.replace(" ", "%20") + "%0D%0A%1B[31m"
    assert client.get(target).status_code == 404
    deadline = time.monotonic() + 30
    while "/v2/x\\x0a" not in server.log():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.02)
    lines = server.log().splitlines()
    assert not any(ln.startswith("2026-01-01T00:00:00.000Z") for ln in lines)
    line = next(ln for ln in lines if "/v2/x\\x0a" in ln)
    assert "\x1b" not in line and "\\x0d\\x0a\\x1b" in line and line.split()[2].startswith("/v2/x\\x0a2026")
