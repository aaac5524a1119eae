"""Safe widening casts: the one table shared by contract enforcement and `mpkg diff`.

A cast ``src -> dst`` is safe when every value of ``src`` is represented exactly in
``dst``. The runtime may apply exactly these casts to caller data, so a package whose
input dtype widens along this table still accepts everything it accepted before
(spec/semver.md), and an output that widens may hand consumers values they cannot hold.
``bool`` and ``string`` never cast; ``int64``/``uint64`` do not cast to ``float64``
(53-bit mantissa); ``int16`` does not cast to ``float16`` (11-bit mantissa).
"""

from __future__ import annotations

# Direct edges; SAFE_CASTS is their transitive closure (so the table stays readable).
_EDGES: dict[str, tuple[str, ...]] = {
    "int8": ("int16", "float16"),
    "int16": ("int32", "float32"),
    "int32": ("int64", "float64"),
    "uint8": ("uint16", "int16", "float16"),
    "uint16": ("uint32", "int32", "float32"),
    "uint32": ("uint64", "int64", "float64"),
    "float16": ("float32",),
    "bfloat16": ("float32",),
    "float32": ("float64",),
}


def _closure(edges: dict[str, tuple[str, ...]]) -> frozenset[tuple[str, str]]:
    pairs: set[tuple[str, str]] = set()
    for src in edges:
        stack, seen = list(edges[src]), set()
        while stack:
            dst = stack.pop()
            if dst in seen:
                continue
            seen.add(dst)
            pairs.add((src, dst))
            stack.extend(edges.get(dst, ()))
    return frozenset(pairs)


SAFE_CASTS: frozenset[tuple[str, str]] = _closure(_EDGES)


def is_safe_cast(src: str, dst: str) -> bool:
    """True if every ``src`` value is exactly a ``dst`` value (identity excluded)."""
    return (src, dst) in SAFE_CASTS


def can_cast(src: str, dst: str) -> bool:
    """True if data of dtype ``src`` may be given where ``dst`` is expected (identity included)."""
    return src == dst or (src, dst) in SAFE_CASTS


# Contract dtype -> numpy dtype string (little-endian). ``bfloat16`` has no numpy dtype: its
# raw bits are exposed as ``<u2`` (see mpkg._internal.load.weights); ``string`` is an object array of str.
NUMPY_DTYPE: dict[str, str] = {
    "bool": "|b1",
    "int8": "|i1",
    "int16": "<i2",
    "int32": "<i4",
    "int64": "<i8",
    "uint8": "|u1",
    "uint16": "<u2",
    "uint32": "<u4",
    "uint64": "<u8",
    "float16": "<f2",
    "float32": "<f4",
    "float64": "<f8",
    "string": "|O",
}
# numpy (kind, itemsize) -> contract dtype.
DTYPE_OF_NUMPY: dict[tuple[str, int], str] = {
    ("b", 1): "bool",
    ("i", 1): "int8",
    ("i", 2): "int16",
    ("i", 4): "int32",
    ("i", 8): "int64",
    ("u", 1): "uint8",
    ("u", 2): "uint16",
    ("u", 4): "uint32",
    ("u", 8): "uint64",
    ("f", 2): "float16",
    ("f", 4): "float32",
    ("f", 8): "float64",
}
# ONNX Runtime type strings -> contract dtype.
DTYPE_OF_ONNX: dict[str, str] = {
    "tensor(bool)": "bool",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(float16)": "float16",
    "tensor(bfloat16)": "bfloat16",
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(string)": "string",
}
# safetensors dtype -> (contract dtype or "" if none, numpy dtype string the bytes are viewed as).
# Formats numpy lacks are exposed as raw bits of the same width (bf16 -> <u2, fp8 -> u1).
SAFETENSORS_DTYPE: dict[str, tuple[str, str]] = {
    "BOOL": ("bool", "|b1"),
    "U8": ("uint8", "|u1"),
    "I8": ("int8", "|i1"),
    "I16": ("int16", "<i2"),
    "U16": ("uint16", "<u2"),
    "F16": ("float16", "<f2"),
    "BF16": ("bfloat16", "<u2"),
    "I32": ("int32", "<i4"),
    "U32": ("uint32", "<u4"),
    "F32": ("float32", "<f4"),
    "F64": ("float64", "<f8"),
    "I64": ("int64", "<i8"),
    "U64": ("uint64", "<u8"),
    "C64": ("", "<c8"),
    "F8_E5M2": ("", "|u1"),
    "F8_E4M3": ("", "|u1"),
    "F8_E8M0": ("", "|u1"),
    "F8_E4M3FNUZ": ("", "|u1"),
    "F8_E5M2FNUZ": ("", "|u1"),
}
# ONNX TensorProto.DataType -> numpy dtype string, for external initializers mapped zero-copy.
NUMPY_OF_ONNX_ELEM: dict[int, str] = {
    1: "<f4",
    2: "|u1",
    3: "|i1",
    4: "<u2",
    5: "<i2",
    6: "<i4",
    7: "<i8",
    9: "|b1",
    10: "<f2",
    11: "<f8",
    12: "<u4",
    13: "<u8",
}


__all__ = [
    "DTYPE_OF_NUMPY",
    "DTYPE_OF_ONNX",
    "NUMPY_DTYPE",
    "NUMPY_OF_ONNX_ELEM",
    "SAFETENSORS_DTYPE",
    "SAFE_CASTS",
    "can_cast",
    "is_safe_cast",
]
