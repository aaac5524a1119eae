"""The unmodified tritonclient.http client against a real server (binary by default)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.harness.server import ServerProcess
from tests.harness.serving import ModelSource, reference_probabilities

X = np.array([[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 2.0]], dtype=np.float32)


@pytest.fixture
def triton(server: ServerProcess) -> Iterator[httpclient.InferenceServerClient]:
    c = httpclient.InferenceServerClient(url=server.url.removeprefix("http://"), concurrency=2)
    yield c
    c.close()


def _features(binary: bool) -> httpclient.InferInput:
    inp = httpclient.InferInput("features", list(X.shape), "FP32")
    inp.set_data_from_numpy(X, binary_data=binary)
    return inp


def test_health_and_metadata(triton: httpclient.InferenceServerClient) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("iris")
    assert triton.is_model_ready("iris", "1.0.0")
    assert not triton.is_model_ready("nope")
    assert triton.get_server_metadata()["name"] == "mpkg"
    meta = triton.get_model_metadata("iris", "1.1.0")
    assert meta["inputs"][0] == {"name": "features", "datatype": "FP32", "shape": [-1, 4]}


@pytest.mark.parametrize("binary_in", [True, False])
@pytest.mark.parametrize("binary_out", [True, False])
@pytest.mark.parametrize("compression", [None, "gzip", "deflate"])
def test_infer(
    triton: httpclient.InferenceServerClient,
    model_source: ModelSource,
    binary_in: bool,
    binary_out: bool,
    compression: str | None,
) -> None:
    want = reference_probabilities(model_source, "iris1", X)
    result = triton.infer(
        "iris",
        [_features(binary_in)],
        model_version="1.0.0",
        request_id="t-1",
        outputs=[httpclient.InferRequestedOutput("probabilities", binary_data=binary_out)],
        request_compression_algorithm=compression,
    )
    np.testing.assert_allclose(result.as_numpy("probabilities"), want, rtol=1e-6)
    response = result.get_response()
    assert response["id"] == "t-1" and response["model_version"] == "1.0.0"


def test_infer_defaults_and_split(triton: httpclient.InferenceServerClient) -> None:
    # no outputs given: tritonclient asks for every output in binary
    result = triton.infer("iris", [_features(True)])
    assert result.as_numpy("probabilities").shape == (2, 3)
    assert result.get_response()["model_version"] in ("1.0.0", "1.1.0")


def test_bytes(triton: httpclient.InferenceServerClient) -> None:
    words = np.array(["alpha", "βeta", ""], dtype=object)
    inp = httpclient.InferInput("text", [3], "BYTES")
    inp.set_data_from_numpy(words)
    out = triton.infer("echo", [inp]).as_numpy("echo")
    assert [w.decode() for w in out] == ["alpha", "βeta", ""]


def test_errors_surface_as_exceptions(triton: httpclient.InferenceServerClient) -> None:
    with pytest.raises(InferenceServerException, match="not served here"):
        triton.infer("nope", [_features(True)])
    bad = httpclient.InferInput("features", [2, 4], "FP64")
    bad.set_data_from_numpy(X.astype(np.float64))
    with pytest.raises(InferenceServerException, match="FP32"):
        triton.infer("iris", [bad])
