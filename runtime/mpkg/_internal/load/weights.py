"""Weights memory-mapped straight from the package: no extraction, no copy.

A safetensors member is stored uncompressed and 512-byte aligned in the .mpkg, so each
tensor is ``np.frombuffer(mm, dtype, count, offset)`` over one read-only map of the
package: the arrays are read-only, share memory with the map, and only the pages the
model touches are ever read. The header was checked strictly at build and is covered by
the file digest, yet offsets are still bounds-checked here (never trust an offset).

bfloat16 (and the fp8 formats) have no numpy dtype. They are exposed *as their raw bits*
(``uint16`` for bfloat16, ``uint8`` for fp8), still zero-copy; :meth:`TensorMap.dtype`
tells the real type and :func:`bfloat16_to_float32` upcasts a tensor on demand (a copy).
"""

from __future__ import annotations

import math
import mmap
import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mpkg._internal.contract.dtypes import SAFETENSORS_DTYPE
from mpkg._internal.format.safetensors import TensorInfo, parse_header
from mpkg.errors import FormatError, MpkgError, SourceError

Array = np.ndarray[Any, Any]
MAX_HEADER = 100 * 1024 * 1024


class TensorMap(Mapping[str, Array]):
    """Read-only mapping of tensor name to a read-only, memory-mapped numpy array."""

    def __init__(
        self,
        arrays: Mapping[str, Array],
        dtypes: Mapping[str, str],
        keepalive: Sequence[object] = (),
    ) -> None:
        self._arrays = dict(arrays)
        self._dtypes = dict(dtypes)
        self._keepalive = tuple(keepalive)

    def __getitem__(self, name: str) -> Array:
        return self._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        return f"TensorMap({len(self)} tensors)"

    def dtype(self, name: str) -> str:
        """The safetensors dtype of ``name`` (e.g. "BF16"); the array may only view its bits."""
        return self._dtypes[name]

    @property
    def nbytes(self) -> int:
        """Bytes mapped for all tensors, for the memory report."""
        return sum(a.nbytes for a in self._arrays.values())

    @staticmethod
    def merge(maps: Sequence[TensorMap], where: str = "model.files") -> TensorMap:
        """Shards as one mapping; a tensor name in two shards is refused (which would win?)."""
        arrays: dict[str, Array] = {}
        dtypes: dict[str, str] = {}
        keep: list[object] = []
        for m in maps:
            for name in m:
                if name in arrays:
                    raise FormatError(f"tensor {name!r} appears in more than one weights file", where)
                arrays[name] = m[name]
                dtypes[name] = m.dtype(name)
            keep.extend(m._keepalive)
        return TensorMap(arrays, dtypes, keep)


def _parse_header(header: bytes, data_len: int, where: str) -> tuple[TensorInfo, ...]:
    """TensorInfos from the header, parsed as strictly as the builder parsed it."""
    return parse_header(header, data_len, where, FormatError).tensors


def tensors_from_infos(
    buffer: mmap.mmap, data_start: int, data_len: int, infos: Sequence[TensorInfo], where: str
) -> TensorMap:
    """Zero-copy arrays for ``infos`` over ``buffer[data_start : data_start + data_len]``."""
    arrays: dict[str, Array] = {}
    dtypes: dict[str, str] = {}
    if data_start < 0 or data_start + data_len > len(buffer):
        raise FormatError("data section lies outside the file", where)
    for t in infos:
        at = f"{where}: tensor {t.name!r}"
        known = SAFETENSORS_DTYPE.get(t.dtype)
        if not (0 <= t.begin <= t.end <= data_len):
            raise FormatError(
                f"data_offsets [{t.begin}, {t.end}] lie outside the {data_len}-byte data section",
                at,
            )
        if any(d < 0 for d in t.shape):
            raise FormatError("has a negative dimension", at)
        nbytes = t.end - t.begin
        shape: tuple[int, ...]
        if known is None:  # sub-byte formats (F4, F6_*): raw bytes
            dtype, shape = np.dtype("u1"), (nbytes,)
        else:
            dtype, shape = np.dtype(known[1]), t.shape
            if math.prod(shape) * dtype.itemsize != nbytes:
                raise FormatError(
                    f"shape {list(shape)} of {t.dtype} needs "
                    f"{math.prod(shape) * dtype.itemsize} bytes, "
                    f"data_offsets give {nbytes}",
                    at,
                )
        count = nbytes // dtype.itemsize
        arr = np.frombuffer(buffer, dtype=dtype, count=count, offset=data_start + t.begin).reshape(shape)
        arrays[t.name] = arr
        dtypes[t.name] = t.dtype
    return TensorMap(arrays, dtypes, (buffer,))


def map_safetensors(mm: mmap.mmap, data_offset: int, size: int, where: str) -> TensorMap:
    """Tensors of the safetensors file stored at ``mm[data_offset : data_offset + size]``."""
    if size < 8 or data_offset < 0 or data_offset + size > len(mm):
        raise FormatError("is too short for a safetensors file", where)
    (n,) = struct.unpack_from("<Q", mm, data_offset)
    if n > MAX_HEADER or 8 + n > size:
        raise FormatError(f"safetensors header length {n} does not fit in the {size}-byte file", where)
    header = mm[data_offset + 8 : data_offset + 8 + n]
    data_len = size - 8 - n
    infos = _parse_header(header, data_len, where)
    return tensors_from_infos(mm, data_offset + 8 + n, data_len, infos, where)


def open_safetensors(paths: Sequence[str | os.PathLike[str]]) -> TensorMap:
    """Map safetensors files from disk (the builder runs the model from source with this)."""
    maps = []
    for path in paths:
        where = str(path)
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size == 0:
                    raise SourceError("is empty; not a safetensors file", where)
                mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise SourceError(f"cannot be read ({exc.strerror})", where) from None
        try:
            maps.append(map_safetensors(mm, 0, size, Path(path).name))
        except MpkgError as exc:
            raise SourceError(exc.problems) from None
    return TensorMap.merge(maps, "model.files")


def bfloat16_to_float32(bits: Array) -> Array:
    """A bfloat16 tensor given as its uint16 bits, as float32 (exact; makes a copy)."""
    if bits.dtype != np.uint16:
        raise TypeError(f"expected the uint16 bits of a bfloat16 tensor, got {bits.dtype}")
    out: Array = (bits.astype(np.uint32) << 16).view(np.float32)
    return out


# --- ONNX external data, mapped zero-copy ---------------------------------------------------


@dataclass(frozen=True)
class ExternalTensor:
    """An ONNX initializer whose bytes live in an external data file."""

    name: str
    elem_type: int  # TensorProto.DataType
    dims: tuple[int, ...]
    location: str
    offset: int
    length: int  # -1: to the end of the file


class _ProtoError(Exception):
    pass


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _ProtoError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview, pos: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value or start, end) for each field of one message."""
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield number, wire, value, pos
        elif wire == 1 or wire == 5:
            pos += 8 if wire == 1 else 4
            yield number, wire, 0, pos
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise _ProtoError("truncated field")
            yield number, wire, pos, pos + length
            pos += length
        else:
            raise _ProtoError(f"unsupported wire type {wire}")
    if pos != end:
        raise _ProtoError("message overruns its length")


def _tensor(buf: memoryview, start: int, end: int) -> ExternalTensor | None:
    name, elem, dims, location, external = "", 0, [], False, {}
    for number, wire, a, b in _fields(buf, start, end):
        if number == 1 and wire == 0:
            dims.append(a)
        elif number == 1 and wire == 2:
            pos = a
            while pos < b:
                d, pos = _varint(buf, pos, b)
                dims.append(d)
        elif number == 2 and wire == 0:
            elem = a
        elif number == 8 and wire == 2:
            name = bytes(buf[a:b]).decode("utf-8", "replace")
        elif number == 14 and wire == 0:
            location = a == 1
        elif number == 13 and wire == 2:
            kv = {n: bytes(buf[x:y]).decode("utf-8", "replace") for n, w, x, y in _fields(buf, a, b) if w == 2}
            external[kv.get(1, "")] = kv.get(2, "")
    if not location or "location" not in external:
        return None
    try:
        offset = int(external.get("offset", "0"))
        length = int(external.get("length", "-1"))
    except ValueError:
        return None
    return ExternalTensor(name, elem, tuple(dims), external["location"], offset, length)


def onnx_external_tensors(model: bytes | memoryview) -> list[ExternalTensor]:
    """The main graph's initializers stored as external data, read from the ModelProto wire
    format directly (the runtime does not depend on the onnx package). An unreadable proto
    gives []: onnxruntime then reads the external files itself, which still works."""
    buf = memoryview(model)
    try:
        graphs = [(a, b) for n, w, a, b in _fields(buf, 0, len(buf)) if n == 7 and w == 2]
        out = []
        for g_start, g_end in graphs:
            for n, w, a, b in _fields(buf, g_start, g_end):
                if n == 5 and w == 2:
                    t = _tensor(buf, a, b)
                    if t is not None:
                        out.append(t)
        return out
    except _ProtoError:
        return []


__all__ = [
    "ExternalTensor",
    "TensorInfo",
    "TensorMap",
    "bfloat16_to_float32",
    "map_safetensors",
    "onnx_external_tensors",
    "open_safetensors",
    "tensors_from_infos",
]
