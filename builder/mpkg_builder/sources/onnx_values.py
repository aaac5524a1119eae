"""ONNX values in one byte layout, whichever protobuf field a converter stored them in.

Converters differ in where they put equal values (``raw_data`` or ``float_data``, a tensor or a
list attribute); hashing these layouts makes equal values hash alike (spec/semver.md §4.1).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from onnx import AttributeProto, TensorProto, TypeProto, numpy_helper


def type_json(t: TypeProto) -> Any:
    """An ONNX type as JSON, so structure digests do not depend on protobuf encoding."""
    kind = t.WhichOneof("value")
    if kind == "tensor_type" or kind == "sparse_tensor_type":
        tt = getattr(t, kind)
        dims = None
        if tt.HasField("shape"):
            dims = [int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim]
        return [kind, int(tt.elem_type), dims]
    if kind == "sequence_type":
        return [kind, type_json(t.sequence_type.elem_type)]
    if kind == "optional_type":
        return [kind, type_json(t.optional_type.elem_type)]
    if kind == "map_type":
        return [kind, int(t.map_type.key_type), type_json(t.map_type.value_type)]
    return [kind]


def tensor_chunks(t: TensorProto) -> list[bytes]:
    """A tensor's values in one layout, whichever field the converter stored them in.

    Chunks (a small header, then the data) are fed to a hasher one by one: a large
    initializer is never copied into a concatenation.
    """
    head = json.dumps([int(t.data_type), [int(d) for d in t.dims]]).encode("utf-8")
    if t.data_location == TensorProto.EXTERNAL:
        return [head, b"external"]  # the external file's own digest covers its bytes
    if t.data_type == TensorProto.STRING:
        return [head, *(len(s).to_bytes(8, "little") + s for s in t.string_data)]
    if t.HasField("raw_data"):  # tested without reading it: each read copies the bytes
        return [head, t.raw_data]
    return [head, np.ascontiguousarray(numpy_helper.to_array(t)).tobytes()]


def attribute_bytes(a: AttributeProto) -> list[bytes]:
    """An attribute's value as byte chunks (little-endian numbers, length-prefixed strings)."""
    kind = a.type
    if kind == AttributeProto.FLOAT:
        return [np.float32(a.f).tobytes()]
    if kind == AttributeProto.INT:
        return [np.int64(a.i).tobytes()]
    if kind == AttributeProto.STRING:
        return [a.s]
    if kind == AttributeProto.FLOATS:
        return [np.asarray(a.floats, dtype="<f4").tobytes()]
    if kind == AttributeProto.INTS:
        return [np.asarray(a.ints, dtype="<i8").tobytes()]
    if kind == AttributeProto.STRINGS:
        return [len(s).to_bytes(8, "little") + s for s in a.strings]
    if kind == AttributeProto.TENSOR:
        return tensor_chunks(a.t)
    if kind == AttributeProto.TENSORS:
        return [c for t in a.tensors for c in tensor_chunks(t)]
    if kind == AttributeProto.SPARSE_TENSOR:
        return [*tensor_chunks(a.sparse_tensor.values), *tensor_chunks(a.sparse_tensor.indices)]
    if kind == AttributeProto.SPARSE_TENSORS:
        return [c for s in a.sparse_tensors for x in (s.values, s.indices) for c in tensor_chunks(x)]
    return [a.SerializeToString(deterministic=True)]


__all__ = ["attribute_bytes", "tensor_chunks", "type_json"]
