"""Fast in-process tests: tensor codec, version choice and splits, metrics, TCP_NODELAY."""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pytest
from mpkg._internal.contract.contract import Contract
from mpkg._internal.load.model import Model, load
from mpkg.errors import UsageError
from mpkg.serve import metrics as metrics_module
from mpkg.serve.body import decompress
from mpkg.serve.cli import parse_size, register
from mpkg.serve.http import set_nodelay
from mpkg.serve.metrics import Metrics
from mpkg.serve.registry import ModelSet, version_key
from mpkg.serve.splits import Split, parse_split
from mpkg.serve.tensors import (
    RequestError,
    encode_infer_response,
    input_specs,
    parse_infer_request,
)
from mpkg.serve.types import ServableModel

from tests.harness.server import server_env
from tests.harness.serving import ModelSource

CONTRACT = Contract.from_json(
    {
        "inputs": [
            {"name": "x", "dtype": "float32", "shape": ["batch", 2]},
            {"name": "i8", "dtype": "int8", "shape": [-1]},
            {"name": "flag", "dtype": "bool", "shape": [-1]},
            {"name": "s", "dtype": "string", "shape": [-1]},
            {"name": "t", "dtype": "timestamp[us]", "shape": [-1]},
        ],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [-1]}],
    }
)
SPECS = input_specs(CONTRACT)


def parse(doc: object, *blobs: bytes) -> dict[str, np.ndarray]:
    head = orjson.dumps(doc)
    body = head + b"".join(blobs)
    return parse_infer_request(body, len(head) if blobs else None, SPECS, ("y",)).inputs


def refused(doc: object, *needles: str, blobs: tuple[bytes, ...] = ()) -> None:
    with pytest.raises(RequestError) as info:
        parse(doc, *blobs)
    assert info.value.status == 400
    for needle in needles:
        assert needle in info.value.message


def tensor(name: str, datatype: str, shape: list[int], data: object) -> dict[str, object]:
    return {"inputs": [{"name": name, "datatype": datatype, "shape": shape, "data": data}]}


def test_json_decoding_is_strict() -> None:
    out = parse(tensor("x", "FP32", [2, 2], [[1, 2], [3.5, 4]]))["x"]
    assert out.dtype == np.float32 and out.tolist() == [[1, 2], [3.5, 4]]
    assert parse(tensor("i8", "INT8", [3], [-128, 0, 127]))["i8"].dtype == np.int8
    refused(tensor("i8", "INT8", [1], [128]), "range")
    refused(tensor("i8", "INT8", [1], [1.5]), "INT8")
    refused(tensor("x", "FP32", [1, 2], ["1", "2"]), "strings")
    assert parse(tensor("flag", "BOOL", [2], [True, False]))["flag"].tolist() == [True, False]
    refused(tensor("flag", "BOOL", [1], [1]), "BOOL")
    assert parse(tensor("s", "BYTES", [2], [["a"], ["b"]]))["s"].tolist() == ["a", "b"]
    refused(tensor("s", "BYTES", [1], [1]), "string")
    refused(tensor("t", "INT64", [1], [1]), "Arrow IPC")
    refused(tensor("x", "FP32", [2, 2], [1, 2, 3]), "3 elements", "needs 4")
    refused(tensor("x", "FP32", [-1, 2], [1, 2]), "shape")
    refused(tensor("x", "FP32", [1, 2], 5), "list")
    empty = parse(tensor("x", "FP32", [0, 2], []))["x"]
    assert empty.shape == (0, 2) and empty.dtype == np.float32


def test_binary_decoding_is_zero_copy_and_checked() -> None:
    x = np.arange(6, dtype="<f4")
    doc = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [3, 2], "parameters": {"binary_data_size": x.nbytes}}]}
    out = parse(doc, x.tobytes())["x"]
    assert out.shape == (3, 2) and not out.flags.owndata and out.tolist() == x.reshape(3, 2).tolist()
    bools = {"inputs": [{"name": "flag", "datatype": "BOOL", "shape": [2], "parameters": {"binary_data_size": 2}}]}
    assert parse(bools, b"\x01\x00")["flag"].tolist() == [True, False]
    refused(bools, "0 or 1", blobs=(b"\x02\x00",))
    refused(doc, "runs past", blobs=(x.tobytes()[:8],))
    refused({"inputs": [{**doc["inputs"][0], "data": [1]}]}, "both", blobs=(x.tobytes(),))
    strings = {"inputs": [{"name": "s", "datatype": "BYTES", "shape": [2], "parameters": {"binary_data_size": 11}}]}
    blob = b"\x03\x00\x00\x00abc" + b"\x00\x00\x00\x00"
    assert parse(strings, blob)["s"].tolist() == ["abc", ""]
    short = {"inputs": [{**strings["inputs"][0], "parameters": {"binary_data_size": 6}}]}
    refused(short, "runs past", blobs=(b"\x03\x00\x00\x00ab",))  # says 3 bytes, carries 2
    refused(short, "prefix", blobs=(b"\x01\x00\x00\x00a\x00",))  # 1 stray byte: no room for a length


def test_extra_inputs_are_skipped_with_their_binary_data_when_the_contract_ignores_them() -> None:
    """[contract] extra = "ignore": an input the contract does not name is dropped, and its binary
    data is stepped over so the next input's bytes are still its own; without it, refused."""
    x = np.arange(4, dtype="<f4")
    extra = {"name": "patient id", "datatype": "INT64", "shape": [2], "parameters": {"binary_data_size": 16}}
    known = {"name": "x", "datatype": "FP32", "shape": [2, 2], "parameters": {"binary_data_size": x.nbytes}}
    head = orjson.dumps({"inputs": [extra, known]})
    body = head + np.array([7, 8], "<i8").tobytes() + x.tobytes()
    got = parse_infer_request(body, len(head), SPECS, ("y",), ignore_extra=True).inputs
    assert list(got) == ["x"] and got["x"].tolist() == [[0, 1], [2, 3]]
    with pytest.raises(RequestError) as info:
        parse_infer_request(body, len(head), SPECS, ("y",))
    assert info.value.status == 400 and "input 'patient id' is not in the model's contract" in info.value.message
    twice = orjson.dumps({"inputs": [{**extra, "parameters": {}, "data": [1, 2]}] * 2})
    with pytest.raises(RequestError) as info:
        parse_infer_request(twice, None, SPECS, ("y",), ignore_extra=True)
    assert "is given twice" in info.value.message
    overrun = orjson.dumps({"inputs": [extra]})
    with pytest.raises(RequestError) as info:
        parse_infer_request(overrun + b"\0" * 8, len(overrun), SPECS, ("y",), ignore_extra=True)
    assert "runs past the end of the body" in info.value.message


def test_response_encoding() -> None:
    req = parse_infer_request(orjson.dumps(tensor("i8", "INT8", [1], [1])), None, SPECS, ("y",))
    y = np.array([[1.5, 2.5]], dtype=">f4")  # big-endian from a model still goes out little-endian
    body, n = encode_infer_response("m", "1", req, {"y": y})
    assert n is None and orjson.loads(body)["outputs"] == [
        {"name": "y", "datatype": "FP32", "shape": [1, 2], "data": [1.5, 2.5]}
    ]
    binreq = parse_infer_request(
        orjson.dumps({**tensor("i8", "INT8", [1], [1]), "parameters": {"binary_data_output": True}}),
        None,
        SPECS,
        ("y",),
    )
    body, n = encode_infer_response("m", "1", binreq, {"y": y})
    assert n is not None and np.frombuffer(body[n:], "<f4").tolist() == [1.5, 2.5]
    body, n = encode_infer_response("m", "1", binreq, {"y": np.array(["é", "b"], dtype=object)})
    assert n is not None and body[n:] == b"\x02\x00\x00\x00\xc3\xa9\x01\x00\x00\x00b"


def test_decompress_limits() -> None:
    data = b"x" * 1000
    assert decompress(zlib.compress(data), b"deflate", 1000) == data
    raw = zlib.compressobj(wbits=-15)
    assert decompress(raw.compress(data) + raw.flush(), b"deflate", 1000) == data
    with pytest.raises(RequestError) as info:
        decompress(zlib.compress(data), b"deflate", 999)
    assert info.value.status == 413
    with pytest.raises(RequestError) as info:
        decompress(b"garbage", b"gzip", 1000)
    assert info.value.status == 400


def test_split_parsing() -> None:
    assert parse_split("fraud=1.0.0:90,1.1.0:10") == Split("fraud", (("1.0.0", 90), ("1.1.0", 10)))
    for bad in ("fraud", "fraud=1.0.0", "fraud=1.0.0:-1", "fraud=1.0.0:x", "fraud=1.0.0:1,1.0.0:2", "=1:1"):
        with pytest.raises(UsageError):
            parse_split(bad)


def test_version_order() -> None:
    versions = ["1.10.0", "1.9.0", "2.0.0-rc.1", "weird"]
    assert sorted(versions, key=version_key) == ["weird", "1.9.0", "1.10.0", "2.0.0-rc.1"]


@pytest.fixture(scope="module")
def models(model_source: ModelSource) -> Iterator[list[Model]]:
    loaded = [load(model_source.path(k), [model_source.pub]) for k in ("iris1", "iris2", "tab")]
    yield loaded
    for m in loaded:
        m.close()


def test_model_set_versions_and_seeded_split(models: list[Model]) -> None:
    plain = ModelSet(models)
    assert plain.resolve("iris", None).version == "1.1.0"  # highest, no split
    assert plain.resolve("iris", "1.0.0").version == "1.0.0"
    with pytest.raises(RequestError) as info:
        plain.resolve("iris", "7")
    assert info.value.status == 404
    split = Split("iris", (("1.0.0", 3), ("1.1.0", 1)))
    a = ModelSet(models, [split], seed=42)
    b = ModelSet(models, [split], seed=42)
    seq_a = [a.resolve("iris", None).version for _ in range(2000)]
    seq_b = [b.resolve("iris", None).version for _ in range(2000)]
    assert seq_a == seq_b  # seeded: reproducible
    assert abs(seq_a.count("1.0.0") / 2000 - 0.75) < 0.05
    assert a.metadata_entry("iris", None).version == "1.1.0"  # metadata never draws
    with pytest.raises(UsageError, match="not loaded"):
        ModelSet(models, [Split("iris", (("1.0.0", 1), ("3.0.0", 1)))])
    with pytest.raises(UsageError, match="not among"):
        ModelSet(models, [Split("nope", (("1.0.0", 1),))])
    with pytest.raises(UsageError, match="two packages"):
        ModelSet([models[0], models[0]])


def test_real_models_are_servable(models: list[Model]) -> None:
    assert all(isinstance(m, ServableModel) for m in models)
    arrow = {(e.name, e.version): e.arrow for e in ModelSet(models).entries}
    assert arrow == {("iris", "1.0.0"): False, ("iris", "1.1.0"): False, ("tab", "1.0.0"): True}


def test_metrics_aggregate_across_workers(tmp_path: Path) -> None:
    path = str(tmp_path / "metrics")
    labels = ['model="m",version="1",digest="sha256:00"']
    w0, w1 = Metrics(labels, path, 0, 2), Metrics(labels, path, 1, 2)
    w0.observe_inference(0, 200, 0.0004)
    w1.observe_inference(0, 200, 0.003)
    w1.observe_inference(0, 400, 20.0)
    w0.observe_http(404)
    for m in (w0, w1):
        text = m.render().decode()
        assert f'mpkg_inference_requests_total{{{labels[0]},code="200"}} 2' in text
        assert f"mpkg_inference_errors_total{{{labels[0]}}} 1" in text
        assert f'mpkg_inference_request_duration_seconds_bucket{{{labels[0]},le="0.0005"}} 1' in text
        assert f'mpkg_inference_request_duration_seconds_bucket{{{labels[0]},le="0.005"}} 2' in text
        assert f'mpkg_inference_request_duration_seconds_bucket{{{labels[0]},le="10.0"}} 2' in text
        assert f'mpkg_inference_request_duration_seconds_bucket{{{labels[0]},le="+Inf"}} 3' in text
        assert 'mpkg_http_requests_total{code="404"} 1' in text


def test_nodelay_is_set_even_when_socket_proto_is_lost() -> None:
    async def main() -> int:
        seen: list[int] = []
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        # a socket rebuilt from an fd reports proto 0, as in a worker process (uvicorn #3149)
        shared = socket.socket(fileno=socket.dup(listener.fileno()))
        listener.close()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)  # as if asyncio skipped it
                set_nodelay(transport)
                seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        loop = asyncio.get_running_loop()
        server = await loop.create_server(Probe, sock=shared)
        port = shared.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        while not seen:
            await asyncio.sleep(0.01)
        writer.close()
        server.close()
        await server.wait_closed()
        return seen[0]

    assert asyncio.run(main()) != 0


def test_cli_parsing() -> None:
    assert parse_size("64MiB") == 64 * 1024 * 1024 and parse_size("1000") == 1000
    assert parse_size("2kb") == 2000
    for bad in ("0", "-1", "lots", "1TiB"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "serve",
            "a.mpkg",
            "b.mpkg",
            "--key",
            "k.pub",
            "--split",
            "m=1:1,2:3",
            "--workers",
            "3",
            "--max-body-bytes",
            "1MiB",
            "--log-format",
            "json",
        ]
    )
    assert args.packages == ["a.mpkg", "b.mpkg"] and args.key == ["k.pub"]
    assert args.split == [Split("m", (("1", 1), ("2", 3)))]
    assert (args.workers, args.max_body_bytes, args.log_format, args.port) == (3, 1024 * 1024, "json", 8080)
    assert args.handler.__name__ == "handle"


def test_cli_module_import_is_cheap() -> None:
    """The top-level CLI imports every command's register(); serving deps load only on use."""
    code = (
        "import sys, mpkg.serve.cli, mpkg.serve; "
        "print(sorted(m for m in ('uvicorn', 'orjson', 'httptools', 'uvloop') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=server_env(), check=True)
    assert out.stdout.strip() == "[]"


def test_metrics_slots_follow_swaps_across_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "SPARE_SLOTS", 1)
    path = str(tmp_path / "metrics")
    a, b, c = (f'model="m",version="{v}",digest="sha256:0{v}"' for v in "abc")
    w0, w1 = Metrics([a], path, 0, 2, ["m"]), Metrics([a], path, 1, 2, ["m"])
    assert w0.initial == w1.initial == (0,)
    assert w0.slot(b) == 1 and w1.slot(b) == 1  # one table for every worker
    for w in (w0, w1):
        w.set_answering(0, False)
        w.set_answering(1, True)
        w.count("swaps", "m")
    w0.observe_inference(1, 200, 0.001)
    text = w1.render().decode()
    assert f"mpkg_model_serving{{{b}}} 2" in text and f"mpkg_model_serving{{{a}}}" not in text
    assert 'mpkg_model_swaps_total{model="m"} 2' in text and "mpkg_models_loaded 1" in text
    assert f'mpkg_inference_requests_total{{{b},code="200"}} 1' in text
    assert w0.slot(a) == 0  # swapped back: its own series again
    # every slot used: the first one no worker answers with is zeroed and reused
    w0.observe_inference(0, 200, 0.001)
    assert w0.slot(c) == 0
    text = w0.render().decode()
    assert f'mpkg_inference_requests_total{{{c},code="200"}} 0' in text and a not in text
