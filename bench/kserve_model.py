"""A KServe custom predictor around onnxruntime, written the way KServe's docs show it.

Run by bench/serve_bench.py inside bench/.venv-kserve (``kserve``, ``onnxruntime``,
``numpy``): ``python kserve_model.py MODEL.onnx NAME PORT``. It serves the Open Inference
Protocol (V2) REST API with KServe's own ``ModelServer`` (FastAPI on uvicorn), one
worker, gRPC off, so the benchmark sends it the same request bodies as ``mpkg serve``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import kserve
import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class OnnxModel(Model):  # type: ignore[misc]
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.session: Any = None
        self.load()

    def load(self) -> bool:
        self.session = ort.InferenceSession(self.path, providers=["CPUExecutionProvider"])
        self.ready = True
        return self.ready

    def predict(
        self,
        payload: InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        feeds = {i.name: i.as_numpy().astype(np.float32, copy=False) for i in payload.inputs}
        names = [o.name for o in self.session.get_outputs()]
        results = self.session.run(names, feeds)
        outputs = []
        for name, array in zip(names, results, strict=True):
            output = InferOutput(name=name, shape=list(array.shape), datatype=_v2(array))
            output.set_data_from_numpy(array, binary_data=False)
            outputs.append(output)
        return InferResponse(response_id=payload.id or "", model_name=self.name, infer_outputs=outputs)


def _v2(array: np.ndarray) -> str:
    return {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32"}[str(array.dtype)]


if __name__ == "__main__":
    path, name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    # KServe's default logging, minus its per-request latency trace lines (generous to the
    # baseline: mpkg writes one access line per request, and so does uvicorn here).
    kserve.logging.configure_logging()
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)
    ModelServer(http_port=port, enable_grpc=False, workers=1, enable_latency_logging=False).start(
        [OnnxModel(name, path)]
    )
