"""Running an ONNX graph with onnxruntime over the package's mapped bytes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mpkg._internal.contract.dtypes import NUMPY_OF_ONNX_ELEM
from mpkg._internal.contract.enforce import is_masked
from mpkg._internal.load.parts import OnnxModel
from mpkg._internal.load.weights import onnx_external_tensors
from mpkg.errors import FormatError, MpkgError


class OnnxRunner:
    """An onnxruntime session. External initializers are handed to onnxruntime as OrtValues
    over the mapped bytes (``add_external_initializers``: no copy by mpkg); anything that
    cannot be mapped that way is given as in-memory files, which onnxruntime copies."""

    def __init__(self, onnx: OnnxModel, where: str) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.mapped: list[str] = []
        self._keep: list[object] = []
        values = []
        external = onnx_external_tensors(onnx.model) if onnx.external else []
        for t in external:
            buf = onnx.external.get(t.location)
            dtype_str = NUMPY_OF_ONNX_ELEM.get(t.elem_type)
            if buf is None or dtype_str is None:
                continue
            dtype = np.dtype(dtype_str)
            count = math.prod(t.dims)
            nbytes = count * dtype.itemsize
            if (t.length not in (-1, nbytes)) or t.offset < 0 or t.offset + nbytes > len(buf):
                continue
            arr = np.frombuffer(buf, dtype=dtype, count=count, offset=t.offset).reshape(t.dims)
            if arr.ctypes.data % max(dtype.alignment, 1):
                continue
            self.mapped.append(t.name)
            self._keep.append(arr)
            values.append(ort.OrtValue.ortvalue_from_numpy(arr))
        if self.mapped:
            options.add_external_initializers(self.mapped, values)
        self._keep.append(values)
        if onnx.external and (not external or len(self.mapped) < len(external)):
            names = list(onnx.external)
            buffers = [onnx.external[n] for n in names]
            options.add_external_initializers_from_files_in_memory(names, buffers, [len(b) for b in buffers])
        try:
            self.session = ort.InferenceSession(onnx.model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise FormatError(f"onnxruntime cannot load the model: {exc}", where) from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.where = where

    def run(self, feeds: Mapping[str, Any]) -> dict[str, Any]:
        """The graph's outputs by name; a refusal by onnxruntime is one MpkgError line."""
        unknown = [n for n in feeds if n not in self.input_names]
        if unknown:
            raise MpkgError(
                f"the ONNX graph has no input {unknown[0]!r}; its inputs are {self.input_names}",
                self.where,
            )
        arrays = {k: np.ma.getdata(v) if is_masked(v) else v for k, v in feeds.items()}
        try:
            results = self.session.run(None, arrays)
        except Exception as exc:  # onnxruntime's InvalidArgument, Fail, ...
            raise MpkgError(f"onnxruntime failed: {exc}", self.where) from None
        return dict(zip(self.output_names, results, strict=True))


__all__ = ["OnnxRunner"]
