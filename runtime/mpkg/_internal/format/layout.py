"""The canonical archive layout: byte-exact tar headers and the end of archive.

The writer and the verifier share these functions, so "canonical" means one
thing: the verifier regenerates every header from (name, size) and compares
bytes. Headers are encoded here, not by :mod:`tarfile`, so that the bytes never
change with the Python version (spec/format.md §3).
"""

from __future__ import annotations

BLOCK = 512
RECORD = 20 * BLOCK  # the archive is padded to whole 10 KiB records, as tar writes them
END_BLOCKS = 2
MTIME = 0
MODE = 0o644
_USTAR_MAX_SIZE = 8**11 - 1
PAX_NAME = "././@PaxHeader"


def padding(size: int, unit: int = BLOCK) -> int:
    """Bytes of zero padding after ``size`` bytes, to the next block."""
    return -size % unit


def _octal(value: int, width: int) -> bytes:
    return f"{value:0{width - 1}o}".encode("ascii") + b"\0"


def _ustar(name: bytes, size: int, typeflag: bytes) -> bytes:
    header = bytearray(BLOCK)
    header[0 : len(name)] = name
    header[100:108] = _octal(MODE, 8)
    header[108:116] = _octal(0, 8)
    header[116:124] = _octal(0, 8)
    header[124:136] = _octal(size, 12)
    header[136:148] = _octal(MTIME, 12)
    header[148:156] = b" " * 8
    header[156:157] = typeflag
    header[257:265] = b"ustar\x0000"
    header[329:337] = _octal(0, 8)
    header[337:345] = _octal(0, 8)
    checksum = sum(header)
    header[148:156] = f"{checksum:06o}".encode("ascii") + b"\0 "
    return bytes(header)


def _pax_record(key: str, value: str) -> bytes:
    body = f" {key}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode("ascii") + body


def needs_pax(name: str, size: int) -> bool:
    """Whether a member needs a PAX header: non-ASCII or long name, or over ustar's size."""
    encoded = name.encode("utf-8")
    return not name.isascii() or len(encoded) > 100 or size > _USTAR_MAX_SIZE


def member_header(name: str, size: int) -> bytes:
    """The exact header bytes (PAX extended header if needed, then ustar) for a regular file."""
    if not needs_pax(name, size):
        return _ustar(name.encode("ascii"), size, b"0")
    records = b""
    if not name.isascii() or len(name.encode("utf-8")) > 100:
        records += _pax_record("path", name)
    if size > _USTAR_MAX_SIZE:
        records += _pax_record("size", str(size))
    pax = _ustar(PAX_NAME.encode("ascii"), len(records), b"x") + records + b"\0" * padding(len(records))
    short = name.encode("utf-8")[:100] if name.isascii() else b"@PaxPath"
    return pax + _ustar(short, size if size <= _USTAR_MAX_SIZE else 0, b"0")


def end_of_archive(offset: int) -> bytes:
    """Two zero blocks, then zeros up to the next whole record."""
    tail = END_BLOCKS * BLOCK
    return b"\0" * (tail + padding(offset + tail, RECORD))
