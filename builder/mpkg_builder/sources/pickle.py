"""Recognise, by content, files whose loading can run code (pickles and their containers).

Extensions lie: a pickle renamed ``weights.safetensors`` still runs code in whoever
calls ``torch.load`` on it later. Files that are provably safetensors are cleared
first so that a header length which happens to start with ``0x80 0x02`` is not
mistaken for a pickle protocol marker.
"""

from __future__ import annotations

import ast
import bz2
import gzip
import io
import json
import lzma
import pickletools
import struct
import zipfile
import zlib
from pathlib import Path

_READ = 1 << 20  # bytes of a file (or of a decompressed stream) inspected
_MAX_OPS = 4096  # pickle opcodes walked before deciding

# Opcodes that import or call: a stream that reaches one of these runs code when loaded.
_IMPORTING = frozenset({"GLOBAL", "STACK_GLOBAL"})
_CALLING = frozenset({"REDUCE", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD"})
_PROTO0_FIRST = frozenset(
    b"(.0123FIJKLMNPQRSTUVXabcdeghijlopqrstu}])"
    + b"\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98"
)


def sniff_code_executing(path: Path) -> str | None:
    """A reason when ``path`` holds a format whose loading can execute code, else None."""
    with path.open("rb") as fh:
        head = fh.read(_READ)
        size = fh.seek(0, io.SEEK_END)
    return sniff_bytes(head, size, path)


def sniff_bytes(head: bytes, size: int, path: Path | None = None) -> str | None:
    """Like :func:`sniff_code_executing` on the first bytes of a file of ``size`` bytes."""
    if _is_safetensors(head, size):
        return None
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip_reason(path)
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return (
            "is a 7z archive, which cannot be inspected and may hold pickles; pack the weights as safetensors or ONNX"
        )
    if head.startswith(b"Rar!\x1a\x07"):
        return (
            "is a RAR archive, which cannot be inspected and may hold pickles; pack the weights as safetensors or ONNX"
        )
    if len(head) > 262 and head[257:262] == b"ustar":
        return "is a tar archive, which may hold pickles; unpack it and name the files"
    if head.startswith(b"\x93NUMPY"):
        return _npy_reason(head)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        if path is not None and _file_contains(path, (b"Lambda", b"lambda")):
            return (
                "is an HDF5 (Keras .h5) file with a Lambda layer, which holds marshalled Python "
                "bytecode; export to ONNX or safetensors"
            )
        return None
    if head.startswith(b"\x7fELF") or head[:4] in (
        b"\xcf\xfa\xed\xfe",
        b"\xce\xfa\xed\xfe",
        b"\xca\xfe\xba\xbe",
    ):
        return "is a native executable or shared library; packages carry no native code"
    if head.startswith(b"MZ") and _is_pe(head):
        return "is a Windows executable or DLL; packages carry no native code"
    if _is_pyc(head):
        return "is compiled Python bytecode (.pyc); ship the .py source instead"
    for magic, _opener, label in (
        (b"\x1f\x8b", gzip.decompress, "gzip"),
        (b"BZh", bz2.decompress, "bzip2"),
        (b"\xfd7zXZ\x00", lzma.decompress, "xz"),
    ):
        if head.startswith(magic):
            inner = _decompress_prefix(head, label)
            if inner is not None and _pickle_reason(inner):
                return (
                    f"is a {label}-compressed pickle (e.g. joblib); pickles run code when loaded: "
                    "save the weights as safetensors or ONNX"
                )
            return None
    if head.startswith(b"ZF0x"):  # joblib's legacy zlib container
        return (
            "is a joblib zlib container holding a pickle; pickles run code when loaded: save the "
            "weights as safetensors or ONNX"
        )
    if head[:1] == b"\x78" and len(head) > 1 and (head[0] * 256 + head[1]) % 31 == 0:
        inner = _decompress_prefix(head, "zlib")
        if inner is not None and _pickle_reason(inner):
            return "is a zlib-compressed pickle; pickles run code when loaded: save the weights as safetensors or ONNX"
    reason = _pickle_reason(head)
    if reason:
        return f"{reason}; pickles run code when loaded: save the weights as safetensors or ONNX"
    return None


def _is_safetensors(head: bytes, size: int) -> bool:
    """A plausible safetensors header: length fits the file and the JSON parses to an object."""
    if len(head) < 10:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    if not 2 <= n <= size - 8 or head[8:9] != b"{" or n > len(head) - 8:
        return False
    try:
        doc = json.loads(head[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return isinstance(doc, dict)


def _zip_reason(path: Path | None) -> str:
    kind = "a zip archive"
    if path is not None:
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError, ValueError):
            names = []
        if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
            kind = "a TorchScript archive (zip with pickles and code)"
        elif any(n.endswith("data.pkl") for n in names):
            kind = "a PyTorch checkpoint (zip holding data.pkl)"
        elif names and all(n.endswith(".npy") for n in names):
            kind = "a numpy .npz archive (may hold object arrays, loaded via pickle)"
        elif any(n.endswith(".pkl") or n.endswith(".pickle") for n in names):
            kind = "a zip archive holding pickles"
        elif "config.json" in names and any(n.endswith(".weights.h5") for n in names):
            kind = "a Keras .keras archive (may deserialise Lambda layers)"
    return f"is {kind}; archives can hide pickles: save the weights as safetensors or ONNX"


def _npy_reason(head: bytes) -> str | None:
    try:
        major = head[6]
        if major == 1:
            (hlen,) = struct.unpack("<H", head[8:10])
            start = 10
        else:
            (hlen,) = struct.unpack("<I", head[8:12])
            start = 12
        header = ast.literal_eval(head[start : start + hlen].decode("latin-1"))
        descr = header["descr"]
    except (
        ValueError,
        SyntaxError,
        KeyError,
        TypeError,
        IndexError,
        struct.error,
        MemoryError,
        RecursionError,
    ):
        return "is a numpy .npy file with an unreadable header; save the weights as safetensors"
    if "O" in repr(descr):
        return "is a numpy .npy file with object dtype, which loads via pickle; save numeric arrays as safetensors"
    return None


def _is_pe(head: bytes) -> bool:
    if len(head) < 0x40:
        return False
    (off,) = struct.unpack("<I", head[0x3C:0x40])
    return off + 4 <= len(head) and head[off : off + 4] == b"PE\x00\x00"


def _is_pyc(head: bytes) -> bool:
    if len(head) < 16 or head[2:4] != b"\r\n":
        return False
    number = int.from_bytes(head[:2], "little")
    return 3000 <= number < 4000  # CPython 3.x magic numbers


def _decompress_prefix(head: bytes, label: str) -> bytes | None:
    try:
        if label == "gzip":
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            return d.decompress(head, _READ)
        if label == "zlib":
            return zlib.decompressobj().decompress(head, _READ)
        if label == "bzip2":
            return bz2.BZ2Decompressor().decompress(head, _READ)
        return lzma.LZMADecompressor().decompress(head, _READ)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return None


def _pickle_reason(data: bytes) -> str | None:
    """Walk pickle opcodes without executing them; decide whether ``data`` is a pickle.

    Protocol 2+ streams open with PROTO; protocol 0/1 streams are accepted as pickles when
    they reach STOP, or when they import a global and then call it (which pickle.load would
    execute before failing on any trailing garbage).
    """
    if not data:
        return None
    framed = data[0] == 0x80 and len(data) > 1 and 2 <= data[1] <= 5
    if not framed and data[0] not in _PROTO0_FIRST:
        return None
    imported = marked = False
    count = 0
    try:
        for op, _arg, _pos in pickletools.genops(io.BytesIO(data)):
            count += 1
            if op.name in _IMPORTING:
                imported = True
            if op.name == "MARK":
                marked = True
            # INST imports and calls at once; as a first opcode it is just text starting 'i'.
            if (imported and op.name in _CALLING) or (marked and op.name == "INST"):
                return "is a pickle that imports and calls Python objects"
            if op.name == "STOP":
                if count < 2:  # a lone '.' is punctuation, not a pickle
                    return None
                return f"is a Python pickle (protocol {data[1]})" if framed else "is a Python pickle (protocol 0/1)"
            if count >= _MAX_OPS:
                break
    except (ValueError, EOFError, UnicodeDecodeError, struct.error, OverflowError, MemoryError):
        pass
    if framed and count >= 3:
        return f"is a Python pickle (protocol {data[1]})"
    return None


def _file_contains(path: Path, needles: tuple[bytes, ...]) -> bool:
    overlap = max(len(n) for n in needles) - 1
    tail = b""
    with path.open("rb") as fh:
        while chunk := fh.read(_READ):
            window = tail + chunk
            if any(n in window for n in needles):
                return True
            tail = window[-overlap:]
    return False
