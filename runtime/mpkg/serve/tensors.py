"""Open Inference Protocol (KServe V2) tensor codec: JSON and binary tensor data.

Decoding is strict (no silent string-to-number coercion, no integer wrap-around)
because every malformed request must become a one-line 400, never a 500 or a
wrong answer. Binary inputs are decoded zero-copy with ``numpy.frombuffer``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from mpkg._internal.contract.contract import Contract, Field
from mpkg._internal.contract.dtypes import DTYPE_OF_NUMPY, NUMPY_DTYPE, storage_dtype

# Contract dtype -> V2 datatype.
V2_OF_DTYPE: dict[str, str] = {
    "bool": "BOOL",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "float16": "FP16",
    "bfloat16": "BF16",
    "float32": "FP32",
    "float64": "FP64",
    "string": "BYTES",
}
# V2 datatype -> little-endian numpy dtype (BYTES -> object); numpy (kind, itemsize) -> V2 datatype.
# Both derive from the dtype grammar's tables, so the codec and enforcement never disagree.
NUMPY_OF_V2: dict[str, np.dtype[Any]] = {V2_OF_DTYPE[d]: np.dtype(s) for d, s in NUMPY_DTYPE.items()}
_V2_OF_KIND_SIZE: dict[tuple[str, int], str] = {k: V2_OF_DTYPE[d] for k, d in DTYPE_OF_NUMPY.items()}
MAX_DIMS = 32
MAX_ELEMENTS = 2**31  # product of a shape's non-zero dims


MAX_MESSAGE = 1024  # characters of an error message: a refusal never echoes a huge value back
MAX_SHOWN = 64  # characters of a client's value quoted in a message


def shown(value: object) -> str:
    """``repr`` of a client's value, cut to a bounded prefix (never echo 60 MiB back)."""
    if isinstance(value, str | bytes) and len(value) > MAX_SHOWN:
        return f"{value[:MAX_SHOWN]!r}... ({len(value)} long)"
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else f"{text[:MAX_SHOWN]}... ({len(text)} characters)"


class RequestError(Exception):
    """A request the server refuses: carries the HTTP status, a one-line reason of bounded
    length, and any headers the answer needs (Retry-After on 503)."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + f"... ({len(message) - MAX_MESSAGE} more characters)"
        message = " ".join(message.split("\n"))
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def v2_datatype(dtype: str) -> str:
    """V2 datatype for a contract dtype; Arrow-only types are described by their storage."""
    storage = storage_dtype(dtype)  # dates and timestamps are integers underneath
    return V2_OF_DTYPE[storage] if storage else "BYTES"  # decimal128: only reachable through Arrow IPC


def v2_of_array(arr: np.ndarray) -> str:
    """The V2 datatype of an array, for answers."""
    kind = arr.dtype.kind
    if kind in "OUS":
        return "BYTES"
    v2 = _V2_OF_KIND_SIZE.get((kind, arr.dtype.itemsize))
    if v2 is None:
        raise TypeError(f"model returned an array of dtype {arr.dtype}, which V2 cannot carry")
    return v2


def v2_shape(shape: Sequence[int | str]) -> list[int]:
    """A contract shape as V2 metadata writes it (-1 for a named or free dim)."""
    return [d if isinstance(d, int) else -1 for d in shape]


def tensor_metadata(fields: Sequence[Field]) -> list[dict[str, Any]]:
    """The V2 metadata of contract fields (``GET /v2/models/{m}``)."""
    return [{"name": f.name, "datatype": v2_datatype(f.dtype), "shape": v2_shape(f.shape)} for f in fields]


@dataclass(frozen=True)
class RequestedOutput:
    """An output a V2 request asks for, and whether as binary data."""

    name: str
    binary: bool | None  # None: use the request-level binary_data_output


@dataclass(frozen=True)
class InferRequest:
    """A decoded V2 inference request: inputs by name and the outputs asked for."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: tuple[RequestedOutput, ...] | None  # None: every output the model returns
    binary_default: bool


@dataclass(frozen=True)
class InputSpec:
    """Precomputed per contract input: what datatype the server accepts for it."""

    name: str
    v2: str
    dtype: np.dtype[Any] | None  # None: not decodable from V2 (bfloat16, Arrow-only types)
    contract_dtype: str


def input_specs(contract: Contract) -> dict[str, InputSpec]:
    """How to decode each contract input from a V2 request, computed once per model."""
    out = {}
    for f in contract.inputs:
        v2 = v2_datatype(f.dtype)
        decodable = f.dtype in V2_OF_DTYPE and v2 != "BF16"
        out[f.name] = InputSpec(f.name, v2, NUMPY_OF_V2[v2] if decodable else None, f.dtype)
    return out


def _bad(message: str) -> RequestError:
    return RequestError(400, message)


def parse_infer_request(
    body: bytes | bytearray,
    header_length: int | None,
    specs: Mapping[str, InputSpec],
    output_names: Sequence[str],
    ignore_extra: bool = False,
) -> InferRequest:
    """Decode a V2 infer request (JSON header plus optional binary tensor data).

    With ``ignore_extra`` (the contract's ``extra = "ignore"``) an input the contract does not
    name is skipped, its binary data included, instead of refused."""
    if header_length is None:
        header_bytes: bytes | bytearray | memoryview = body
    else:
        if not 0 < header_length <= len(body):
            raise _bad(
                f"Inference-Header-Content-Length {header_length} is outside the body "
                f"({len(body)} bytes); send the JSON header length in bytes"
            )
        header_bytes = memoryview(body)[:header_length]
    try:
        doc = orjson.loads(header_bytes)
    except orjson.JSONDecodeError as exc:
        raise _bad(f"request body is not valid JSON ({exc}); send a V2 inference request") from None
    if not isinstance(doc, dict):
        raise _bad("request body must be a JSON object with 'inputs'")
    req_id = doc.get("id")
    if req_id is not None and not isinstance(req_id, str):
        raise _bad("'id' must be a string")
    params = doc.get("parameters") or {}
    if not isinstance(params, dict):
        raise _bad("'parameters' must be an object")
    binary_default = params.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise _bad("parameters.binary_data_output must be true or false")
    raw_inputs = doc.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise _bad("'inputs' must be a non-empty list of tensors")

    inputs: dict[str, np.ndarray] = {}
    skipped: set[str] = set()
    offset = header_length if header_length is not None else len(body)
    for i, raw in enumerate(raw_inputs):
        if not isinstance(raw, dict):
            raise _bad(f"inputs[{i}] must be an object with name, datatype, shape and data")
        name = raw.get("name")
        if not isinstance(name, str):
            raise _bad(f"inputs[{i}].name must be a string")
        spec = specs.get(name)
        if spec is None and not ignore_extra:
            raise _bad(f"input {shown(name)} is not in the model's contract; expected {sorted(specs)}")
        if name in inputs or name in skipped:
            raise _bad(f"input {shown(name)} is given twice")
        if spec is None:
            skipped.add(name)
            offset += _extra_binary_size(raw, name, offset, header_length, len(body))
            continue
        datatype = raw.get("datatype")
        if datatype != spec.v2:
            raise _bad(f"input {name!r}: datatype {shown(datatype)} does not match the contract; send {spec.v2}")
        if spec.dtype is None:
            raise _bad(
                f"input {name!r} has contract dtype {spec.contract_dtype}, which V2 JSON cannot "
                "carry; send an Arrow IPC stream (application/vnd.apache.arrow.stream)"
            )
        shape = _shape(raw.get("shape"), name)
        count = 1
        for d in shape:
            count *= d
        in_params = raw.get("parameters") or {}
        if not isinstance(in_params, dict):
            raise _bad(f"inputs[{i}].parameters must be an object")
        size = in_params.get("binary_data_size")
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise _bad(f"input {name!r}: parameters.binary_data_size must be an integer >= 0")
            if "data" in raw:
                raise _bad(f"input {name!r} has both 'data' and binary_data_size; send one")
            if header_length is None:
                raise _bad(
                    f"input {name!r} uses binary_data_size but the request has no "
                    "Inference-Header-Content-Length header"
                )
            if offset + size > len(body):
                raise _bad(
                    f"input {name!r}: binary_data_size {size} runs past the end of the body; "
                    "check the sizes and the Inference-Header-Content-Length header"
                )
            inputs[name] = _from_binary(body, offset, size, spec, shape, count)
            offset += size
        else:
            if "data" not in raw:
                raise _bad(f"input {name!r} has neither 'data' nor parameters.binary_data_size")
            inputs[name] = _from_json(raw["data"], spec, shape, count)
    if offset != len(body):
        raise _bad(
            f"request body has {len(body) - offset} bytes after the last binary tensor; "
            "check binary_data_size and Inference-Header-Content-Length"
        )
    return InferRequest(req_id, inputs, _requested_outputs(doc.get("outputs"), output_names), binary_default)


def _extra_binary_size(raw: Mapping[str, Any], name: str, offset: int, header_length: int | None, total: int) -> int:
    """The bytes an ignored input's binary data takes in the body (0 when it is JSON data)."""
    params = raw.get("parameters") or {}
    size = params.get("binary_data_size") if isinstance(params, dict) else None
    if size is None:
        return 0
    if isinstance(size, bool) or not isinstance(size, int) or size < 0 or header_length is None:
        raise _bad(f"input {shown(name)}: parameters.binary_data_size must be an integer >= 0 with a header length")
    if offset + size > total:
        raise _bad(f"input {shown(name)}: binary_data_size {size} runs past the end of the body")
    return size


def _shape(raw: object, name: str) -> tuple[int, ...]:
    if (
        not isinstance(raw, list)
        or len(raw) > MAX_DIMS
        or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**40 for d in raw)
    ):
        raise _bad(f"input {name!r}: shape must be a list of at most {MAX_DIMS} sizes >= 0")
    extent = 1  # the size the shape claims once its zero dims are ignored: an empty tensor with
    for d in raw:  # huge other dims must not reach code that sizes buffers from them
        extent *= d or 1
    if extent > MAX_ELEMENTS:
        raise _bad(f"input {name!r}: shape {shown(raw)} has dims multiplying to over {MAX_ELEMENTS} elements")
    return tuple(raw)


def _from_binary(
    body: bytes | bytearray, offset: int, size: int, spec: InputSpec, shape: tuple[int, ...], count: int
) -> np.ndarray:
    assert spec.dtype is not None
    if spec.v2 == "BYTES":
        items = _split_bytes(body, offset, size, spec.name)
        if len(items) != count:
            raise _bad(f"input {spec.name!r}: {len(items)} BYTES elements but shape {list(shape)} needs {count}")
        return _bytes_array(items, spec.name).reshape(shape)
    expected = count * spec.dtype.itemsize
    if size != expected:
        raise _bad(
            f"input {spec.name!r}: binary_data_size is {size} bytes but shape {list(shape)} "
            f"of {spec.v2} needs {expected}"
        )
    arr = np.frombuffer(body, dtype=spec.dtype, count=count, offset=offset)
    if spec.v2 == "BOOL" and count and int(arr.view(np.uint8).max()) > 1:
        raise _bad(f"input {spec.name!r}: BOOL bytes must be 0 or 1")
    return arr.reshape(shape)


def _split_bytes(body: bytes | bytearray, offset: int, size: int, name: str) -> list[bytes | bytearray]:
    end = offset + size
    items = []
    pos = offset
    while pos < end:
        if pos + 4 > end:
            raise _bad(f"input {name!r}: truncated BYTES element length prefix")
        n = int.from_bytes(body[pos : pos + 4], "little")
        pos += 4
        if pos + n > end:
            raise _bad(f"input {name!r}: BYTES element of {n} bytes runs past binary_data_size")
        items.append(body[pos : pos + n])
        pos += n
    return items


def _bytes_array(items: Sequence[bytes | bytearray], name: str) -> np.ndarray:
    arr = np.empty(len(items), dtype=object)
    try:
        for j, b in enumerate(items):
            arr[j] = b.decode("utf-8")
    except UnicodeDecodeError:
        raise _bad(f"input {name!r}: BYTES element {j} is not UTF-8; the contract dtype is string") from None
    return arr


_INT_KINDS = "iu"
_FLOAT_KINDS = "iuf"


def _from_json(data: object, spec: InputSpec, shape: tuple[int, ...], count: int) -> np.ndarray:
    assert spec.dtype is not None
    name = spec.name
    if not isinstance(data, list):
        raise _bad(f"input {name!r}: 'data' must be a list (flat or nested, row-major)")
    if spec.v2 == "BYTES":
        flat = _flatten(data)
        if len(flat) != count:
            raise _bad(f"input {name!r}: {len(flat)} elements but shape {list(shape)} needs {count}")
        arr = np.empty(count, dtype=object)
        for j, v in enumerate(flat):
            if not isinstance(v, str):
                raise _bad(f"input {name!r}: BYTES element {j} must be a string")
            arr[j] = v
        return arr.reshape(shape)
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError, OverflowError):
        raise _bad(f"input {name!r}: 'data' is ragged or not numeric; send {count} {spec.v2} values") from None
    if arr.size != count:
        raise _bad(f"input {name!r}: {arr.size} elements but shape {list(shape)} needs {count}")
    if count == 0:
        return np.zeros(shape, dtype=spec.dtype)
    kind = arr.dtype.kind
    target = spec.dtype
    if spec.v2 == "BOOL":
        ok = kind == "b"
    elif target.kind in _INT_KINDS:
        ok = kind in _INT_KINDS
        if ok:
            info = np.iinfo(target)
            if int(arr.min()) < info.min or int(arr.max()) > info.max:
                raise _bad(f"input {name!r}: values out of range for {spec.v2}")
    else:
        ok = kind in _FLOAT_KINDS
    if not ok:
        raise _bad(f"input {name!r}: 'data' must hold {spec.v2} values (got {_kind_name(kind)})")
    return arr.astype(target, copy=False).reshape(shape)


def _kind_name(kind: str) -> str:
    return {"b": "booleans", "i": "integers", "u": "integers", "f": "floats", "U": "strings"}.get(
        kind, "mixed or non-numeric values"
    )


def _flatten(data: list[Any]) -> list[Any]:
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _requested_outputs(raw: object, output_names: Sequence[str]) -> tuple[RequestedOutput, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise _bad("'outputs' must be a list of {name, parameters}")
    out = []
    seen = set()
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise _bad(f"outputs[{i}] must be an object with a string 'name'")
        name = item["name"]
        if name not in output_names:
            raise _bad(f"output {shown(name)} is not in the model's contract; expected {sorted(output_names)}")
        if name in seen:
            raise _bad(f"output {name!r} is requested twice")
        seen.add(name)
        p = item.get("parameters") or {}
        if not isinstance(p, dict):
            raise _bad(f"outputs[{i}].parameters must be an object")
        binary = p.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise _bad(f"output {name!r}: parameters.binary_data must be true or false")
        out.append(RequestedOutput(name, binary))
    return tuple(out)


def encode_infer_response(
    model_name: str,
    model_version: str,
    request: InferRequest,
    results: Mapping[str, np.ndarray],
) -> tuple[bytes, int | None]:
    """Return (body, json_header_length or None when the body is pure JSON)."""
    if request.outputs is None:
        wanted = [(name, request.binary_default) for name in results]
    else:
        wanted = [(o.name, request.binary_default if o.binary is None else o.binary) for o in request.outputs]
    outputs = []
    blobs: list[bytes | memoryview] = []
    for name, binary in wanted:
        if name not in results:
            raise TypeError(f"model did not return output {name!r} promised by its contract")
        arr = np.asarray(results[name])
        v2 = v2_of_array(arr)
        entry: dict[str, Any] = {"name": name, "datatype": v2, "shape": list(arr.shape)}
        if binary:
            blob = _bytes_blob(arr) if v2 == "BYTES" else _numeric_blob(arr)
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif v2 == "BYTES":
            entry["data"] = [_as_text(v) for v in arr.ravel().tolist()]
        else:
            entry["data"] = np.ascontiguousarray(arr.ravel()).astype(arr.dtype.newbyteorder("="), copy=False)
        outputs.append(entry)
    doc: dict[str, Any] = {"model_name": model_name, "model_version": model_version, "outputs": outputs}
    if request.id is not None:
        doc["id"] = request.id
    header = orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


def _numeric_blob(arr: np.ndarray) -> memoryview:
    little = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    return memoryview(np.ascontiguousarray(little).view(np.uint8).reshape(-1).data)


def _bytes_blob(arr: np.ndarray) -> bytes:
    parts = []
    for v in arr.ravel().tolist():
        b = v if isinstance(v, bytes) else str(v).encode("utf-8")
        parts.append(len(b).to_bytes(4, "little"))
        parts.append(b)
    return b"".join(parts)


def _as_text(v: object) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
