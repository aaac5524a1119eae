"""A strict, dependency-free safetensors header parser.

Stricter than the safetensors library on purpose: duplicate JSON keys, unknown entry
keys, leading whitespace and non-finite numbers are refused, so every reader of a
package sees the same tensors (no parser differential). Imports nothing outside the
standard library and :mod:`mpkg.errors`, so the runtime can reuse it for mmap loading.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from mpkg.errors import FormatError, MpkgError, Problem

MAX_HEADER = 100 * 1024 * 1024  # the safetensors library's own limit

# dtype -> size in bits of one element (sub-byte float formats pack several per byte).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8,
    "U8": 8,
    "I8": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}
# safetensors dtype -> contract dtype, where the contract has one.
CONTRACT_DTYPE: dict[str, str] = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "I16": "int16",
    "U16": "uint16",
    "F16": "float16",
    "BF16": "bfloat16",
    "I32": "int32",
    "U32": "uint32",
    "F32": "float32",
    "F64": "float64",
    "I64": "int64",
    "U64": "uint64",
}
_U64 = 2**64 - 1
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a safetensors header."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # offsets relative to the start of the data section
    end: int

    @property
    def nbytes(self) -> int:
        """The tensor's size in bytes."""
        return self.end - self.begin


@dataclass(frozen=True)
class SafetensorsInfo:
    """A checked safetensors header: tensors tile the data section exactly."""

    header_len: int
    tensors: tuple[TensorInfo, ...]  # in data order (by begin offset, then name)
    metadata: Mapping[str, str]

    @property
    def data_start(self) -> int:
        """File offset of the data section."""
        return 8 + self.header_len

    def tensor(self, name: str) -> TensorInfo | None:
        """The tensor named ``name``, or None."""
        return next((t for t in self.tensors if t.name == name), None)


class _DuplicateKey(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _DuplicateKey(k)
        out[k] = v
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def parse_safetensors(path: Path, where: str | None = None, error: type[MpkgError] = FormatError) -> SafetensorsInfo:
    """Parse and check the header of the safetensors file at ``path``."""
    where = where if where is not None else path.name
    with path.open("rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(0)
        return read_header(fh, size, where, error)


def read_header(fh: BinaryIO, file_size: int, where: str, error: type[MpkgError] = FormatError) -> SafetensorsInfo:
    """Parse the header from an open binary file positioned at offset 0."""
    prefix = fh.read(8)
    if len(prefix) < 8:
        raise error("is shorter than the 8-byte safetensors header length; not a safetensors file", where)
    (n,) = struct.unpack("<Q", prefix)
    if n > MAX_HEADER:
        raise error(f"header length {n} exceeds the {MAX_HEADER}-byte limit; not a safetensors file", where)
    if n > file_size - 8:
        raise error(
            f"header length {n} runs past the end of the {file_size}-byte file; the file is "
            "truncated or not safetensors",
            where,
        )
    return parse_header(fh.read(n), file_size - 8 - n, where, error)


def parse_header(header: bytes, data_len: int, where: str, error: type[MpkgError] = FormatError) -> SafetensorsInfo:
    """Check a header (the JSON bytes) against a data section of ``data_len`` bytes."""
    if not header.startswith(b"{"):
        raise error("header must start with '{' (a JSON object); not a safetensors file", where)
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError:
        raise error("header is not UTF-8; not a safetensors file", where) from None
    body = text.rstrip(" ")
    try:
        doc = json.loads(body, object_pairs_hook=_pairs, parse_constant=_no_constants)
    except _DuplicateKey as exc:
        raise error(
            f"duplicate tensor name {exc.args[0]!r} in the header (readers disagree on which wins); rename one",
            where,
        ) from None
    except (ValueError, RecursionError) as exc:
        raise error(f"header is not valid JSON ({exc}); not a safetensors file", where) from None
    if not isinstance(doc, dict):
        raise error("header must be a JSON object of tensors", where)

    problems: list[Problem] = []
    metadata: dict[str, str] = {}
    raw_meta = doc.pop("__metadata__", None)
    if raw_meta is not None:
        if not isinstance(raw_meta, dict) or not all(isinstance(v, str) for v in raw_meta.values()):
            problems.append(Problem(f"{where}: __metadata__", "must be an object of string values"))
        else:
            metadata = dict(raw_meta)
    tensors: list[TensorInfo] = []
    for name, entry in doc.items():
        info = _entry(name, entry, f"{where}: tensor {name!r}", problems)
        if info is not None:
            tensors.append(info)
    tensors.sort(key=lambda t: (t.begin, t.end, t.name))
    cursor = 0
    for t in tensors:
        if t.begin < cursor:
            problems.append(
                Problem(
                    f"{where}: tensor {t.name!r}",
                    f"data_offsets [{t.begin}, {t.end}] overlap the previous tensor (ends at {cursor})",
                )
            )
        elif t.begin > cursor:
            problems.append(
                Problem(
                    f"{where}: tensor {t.name!r}",
                    f"gap of {t.begin - cursor} bytes before data_offsets [{t.begin}, {t.end}]; "
                    "tensors must cover the data section with no holes",
                )
            )
        if t.end > data_len:
            problems.append(
                Problem(
                    f"{where}: tensor {t.name!r}",
                    f"data_offsets [{t.begin}, {t.end}] run past the {data_len}-byte data "
                    "section; the file is truncated",
                )
            )
        cursor = max(cursor, t.end)
    if cursor != data_len and not any(t.end > data_len for t in tensors):
        problems.append(
            Problem(
                where,
                f"tensors cover {cursor} bytes but the data section holds {data_len}; the file "
                "has trailing or missing bytes",
            )
        )
    if problems:
        raise error(problems)
    return SafetensorsInfo(header_len=len(header), tensors=tuple(tensors), metadata=metadata)


def _uint(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _U64


def _entry(name: str, entry: object, where: str, problems: list[Problem]) -> TensorInfo | None:
    if not name:
        problems.append(Problem(where, "tensor name is empty"))
        return None
    if not isinstance(entry, dict):
        problems.append(Problem(where, "must be an object with dtype, shape and data_offsets"))
        return None
    before = len(problems)
    extra = sorted(set(entry) - _ENTRY_KEYS)
    if extra:
        problems.append(Problem(where, f"unknown keys {extra}; only dtype, shape and data_offsets are allowed"))
    missing = sorted(_ENTRY_KEYS - set(entry))
    if missing:
        problems.append(Problem(where, f"missing {', '.join(missing)}"))
        return None
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPE_BITS:
        problems.append(Problem(where, f"dtype {dtype!r} is not a safetensors dtype ({', '.join(DTYPE_BITS)})"))
    if not isinstance(shape, list) or not all(_uint(d) for d in shape):
        problems.append(Problem(where, f"shape {shape!r} must be a list of non-negative integers"))
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_uint(o) for o in offsets):
        problems.append(Problem(where, f"data_offsets {offsets!r} must be [begin, end] non-negative integers"))
    elif offsets[1] < offsets[0]:
        problems.append(Problem(where, f"data_offsets {offsets!r} end before they begin"))
    if len(problems) != before:
        return None
    begin, end = offsets
    count = math.prod(shape)
    bits = count * DTYPE_BITS[dtype]
    if bits % 8:
        problems.append(Problem(where, f"{count} elements of {dtype} do not fill whole bytes"))
        return None
    if end - begin != bits // 8:
        problems.append(
            Problem(
                where,
                f"data_offsets span {end - begin} bytes but shape {shape} of {dtype} needs {bits // 8}",
            )
        )
        return None
    return TensorInfo(name=name, dtype=dtype, shape=tuple(shape), begin=begin, end=end)
