"""The one dtype grammar: which dtypes a contract may name, and how they cast and map.

Every module that reads a dtype string (the contract parser, enforcement, the V2 codec,
`mpkg diff`) asks this module, so a dtype the parser accepts is one the rest understands.

Safe widening casts: a cast ``src -> dst`` is safe when every value of ``src`` is
represented exactly in ``dst``. The runtime may apply exactly these casts to caller data,
so a package whose input dtype widens along this table still accepts everything it
accepted before (spec/semver.md), and an output that widens may hand consumers values
they cannot hold. ``bool`` and ``string`` never cast; ``int64``/``uint64`` do not cast to
``float64`` (53-bit mantissa); ``int16`` does not cast to ``float16`` (11-bit mantissa).
"""

from __future__ import annotations

import re

# Numeric/tensor dtypes, spelled as in the spec (and as numpy spells them, bar bfloat16/string).
TENSOR_DTYPES = (
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "bfloat16",
    "float32",
    "float64",
    "string",
)
# Arrow-only column types for tabular contracts (spec/format.md §6). \Z, not $: "x\n" is no dtype.
_DATE_UNIT = {"date32": "D", "date64": "ms"}
_TIMESTAMP = re.compile(r"timestamp\[(s|ms|us|ns)(?:, tz=([A-Za-z0-9_/+\-:]+))?\]\Z", re.ASCII)
_DECIMAL = re.compile(r"decimal128\(([1-9]|[1-3][0-9]),(0|[1-9]|[1-3][0-9])\)\Z", re.ASCII)


def is_valid_dtype(dtype: str) -> bool:
    """True for a dtype a contract may name; the parser refuses every other spelling."""
    return dtype in TENSOR_DTYPES or dtype in _DATE_UNIT or bool(_TIMESTAMP.match(dtype) or _DECIMAL.match(dtype))


def timestamp_spec(dtype: str) -> tuple[str, str | None] | None:
    """(unit, time zone or None) of a ``timestamp[...]`` dtype, else None."""
    m = _TIMESTAMP.match(dtype)
    return (m.group(1), m.group(2)) if m else None


def datetime_unit(dtype: str) -> str | None:
    """numpy datetime64 unit for a date/timestamp dtype, else None: these travel as datetime64."""
    if dtype in _DATE_UNIT:
        return _DATE_UNIT[dtype]
    spec = timestamp_spec(dtype)
    return spec[0] if spec else None


def decimal_spec(dtype: str) -> tuple[int, int] | None:
    """(precision, scale) of a ``decimal128(p,s)`` dtype, else None: decimals travel as Decimal objects."""
    m = _DECIMAL.match(dtype)
    return (int(m.group(1)), int(m.group(2))) if m else None


def storage_dtype(dtype: str) -> str | None:
    """The tensor dtype a dtype's values are stored as (dates and timestamps are integers),
    or None for decimals, which have no fixed-width tensor form."""
    if dtype in TENSOR_DTYPES:
        return dtype
    if dtype == "date32":
        return "int32"
    return "int64" if datetime_unit(dtype) is not None else None


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
# Integer dtype -> width in bits; float dtype -> mantissa bits (the integers it holds exactly).
INT_BITS: dict[str, int] = {
    "int8": 8,
    "int16": 16,
    "int32": 32,
    "int64": 64,
    "uint8": 8,
    "uint16": 16,
    "uint32": 32,
    "uint64": 64,
}
FLOAT_MANTISSA: dict[str, int] = {"float16": 11, "float32": 24, "float64": 53}
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
    "FLOAT_MANTISSA",
    "INT_BITS",
    "NUMPY_DTYPE",
    "NUMPY_OF_ONNX_ELEM",
    "SAFETENSORS_DTYPE",
    "SAFE_CASTS",
    "TENSOR_DTYPES",
    "can_cast",
    "datetime_unit",
    "decimal_spec",
    "is_safe_cast",
    "is_valid_dtype",
    "storage_dtype",
    "timestamp_spec",
]
