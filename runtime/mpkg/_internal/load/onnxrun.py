"""Running an ONNX graph with onnxruntime over the package's mapped bytes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mpkg._internal.contract.dtypes import DTYPE_OF_NUMPY, DTYPE_OF_ONNX, NUMPY_DTYPE, NUMPY_OF_ONNX_ELEM
from mpkg._internal.contract.enforce import is_masked
from mpkg._internal.load.parts import OnnxModel
from mpkg._internal.load.weights import onnx_external_tensors
from mpkg.errors import FormatError, MpkgError, Problem


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
        self.inputs = {i.name: (DTYPE_OF_ONNX.get(i.type, i.type), list(i.shape)) for i in self.session.get_inputs()}
        # What a well-formed feed looks like, precomputed: the per-call check is a few compares.
        self._expect = [
            (
                name,
                np.dtype(NUMPY_DTYPE[dtype]) if dtype in NUMPY_DTYPE and dtype != "string" else None,
                len(dims),
                tuple((i, d) for i, d in enumerate(dims) if isinstance(d, int)),
            )
            for name, (dtype, dims) in self.inputs.items()
        ]
        self.input_names = list(self.inputs)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.where = where

    def run(self, feeds: Mapping[str, Any], boundary: str = "contract → graph inputs") -> dict[str, Any]:
        """The graph's outputs by name. A feed the graph cannot take is refused naming ``boundary``
        (what produced the feeds), the input and what the graph takes; a refusal by onnxruntime
        is one MpkgError line."""
        arrays = {k: np.ma.getdata(v) if is_masked(v) else v for k, v in feeds.items()}
        if not self._feeds_fit(arrays):
            reasons = self._feed_problems(arrays)
            if reasons:
                raise MpkgError([Problem(f"{self.where}: {boundary}", r) for r in reasons])
        try:
            results = self.session.run(None, arrays)
        except Exception as exc:  # onnxruntime's InvalidArgument, Fail, ...
            raise MpkgError(f"onnxruntime failed: {exc}", self.where) from None
        return dict(zip(self.output_names, results, strict=True))

    def _feeds_fit(self, feeds: Mapping[str, Any]) -> bool:
        """The fast path: every graph input given with its dtype, rank and fixed dims, nothing else."""
        if len(feeds) != len(self._expect):
            return False
        for name, dtype, rank, fixed in self._expect:
            value = feeds.get(name)
            if not isinstance(value, np.ndarray) or value.ndim != rank:
                return False
            if (value.dtype != dtype) if dtype is not None else value.dtype.kind not in "OUS":
                return False
            shape = value.shape
            for i, d in fixed:
                if shape[i] != d:
                    return False
        return True

    def _feed_problems(self, feeds: Mapping[str, Any]) -> list[str]:
        """Names, dtypes, ranks and fixed dims of numpy feeds against the graph's inputs."""
        reasons = [
            f"{name!r} is not a graph input; the graph takes {self.input_names}"
            for name in feeds
            if name not in self.inputs
        ]
        for name, (dtype, dims) in self.inputs.items():
            value = feeds.get(name)
            if value is None:
                reasons.append(f"graph input {name!r} ({dtype} {dims}) was not given")
                continue
            if not isinstance(value, np.ndarray):
                continue  # onnxruntime converts what it can, and says what it cannot
            kind = value.dtype.kind
            got = "string" if kind in "OUS" else DTYPE_OF_NUMPY.get((kind, value.dtype.itemsize))
            fixed_ok = value.ndim == len(dims) and all(
                not isinstance(d, int) or d == n for d, n in zip(dims, value.shape, strict=True)
            )
            if (got != dtype and dtype in NUMPY_DTYPE) or not fixed_ok:  # bfloat16: onnxruntime decides
                shown = got or str(value.dtype)
                reasons.append(f"{name!r} is {shown} {list(value.shape)}; the graph takes {dtype} {dims}")
        return reasons


__all__ = ["OnnxRunner"]
