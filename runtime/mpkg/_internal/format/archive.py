"""Reading a .mpkg: walk the tar structure strictly, read members without extracting.

Nothing here trusts the archive. Every header is regenerated from (name, size)
and compared byte for byte, members must be contiguous, and the archive must end
exactly as the canonical writer ends it — so one flipped bit in any header,
padding or trailer, a truncation or appended bytes are all refused. Member data
is exposed as offsets into the file for zero-copy, memory-mapped access.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mpkg._internal.format import layout
from mpkg._internal.format.manifest import MANIFEST_NAME, MAX_FILES, MAX_MANIFEST_BYTES, SIGNATURES_NAME
from mpkg.errors import FormatError

MAX_PAX_BYTES = 64 * 1024
MAX_SIGNATURES_BYTES = 1024 * 1024
_MAX_DIGITS = 20  # PAX numbers: 2^64 has 20 decimal digits


@dataclass(frozen=True)
class Member:
    """One tar member: where its header and data are in the package."""

    name: str
    header_offset: int
    data_offset: int
    size: int

    @property
    def end(self) -> int:
        """The offset just past this member's padded data."""
        return self.data_offset + self.size + layout.padding(self.size)


def _octal(field: bytes, where: str) -> int:
    text = field.rstrip(b"\0 ").lstrip(b" ")
    if not text or not all(48 <= c <= 55 for c in text):
        raise FormatError("has a malformed tar header (numeric field)", where)
    return int(text, 8)


def _decimal(text: bytes, max_digits: int) -> int | None:
    """A PAX decimal number: 1 to ``max_digits`` ASCII digits, else None. ``int()`` alone
    would take Unicode digits ('²', Arabic-Indic) and spend quadratic time on thousands of digits."""
    if not 0 < len(text) <= max_digits or not all(48 <= c <= 57 for c in text):
        return None
    return int(text)


def _pax_records(data: bytes, where: str) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + _MAX_DIGITS + 1)
        length = _decimal(data[pos:space], _MAX_DIGITS) if space >= 0 else None
        if length is None:
            raise FormatError("has a malformed PAX header (record length)", where)
        record = data[space + 1 : pos + length]
        if length <= 0 or pos + length > len(data) or not record.endswith(b"\n") or b"=" not in record:
            raise FormatError("has a malformed PAX header", where)
        key, _, value = record[:-1].partition(b"=")
        try:
            records[key.decode("utf-8")] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("has a PAX header that is not UTF-8", where) from None
        pos += length
    return records


def scan(f: BinaryIO, file_size: int, where: str) -> list[Member]:
    """Walk every member; raise FormatError unless the layout is exactly canonical."""
    members: list[Member] = []
    pos = 0
    while True:
        if len(members) > MAX_FILES + 2:
            raise FormatError(f"has more than {MAX_FILES} members", where)
        if pos + layout.BLOCK > file_size:
            raise FormatError("is truncated (archive ends inside a header); re-download or rebuild it", where)
        f.seek(pos)
        block = f.read(layout.BLOCK)
        if block == b"\0" * layout.BLOCK:
            break
        at = f"{where} (member at byte {pos})"
        typeflag = block[156:157]
        if typeflag == b"x":
            pax_size = _octal(block[124:136], at)
            if pax_size > MAX_PAX_BYTES:
                raise FormatError("has an oversized PAX header", at)
            pax = f.read(pax_size)
            records = _pax_records(pax, at)
            f.seek(pos + layout.BLOCK + pax_size + layout.padding(pax_size))
            block = f.read(layout.BLOCK)
            name = records.get("path")
            size_text = records.get("size")
            if size_text is None:
                size = _octal(block[124:136], at)
            else:
                pax_number = _decimal(size_text.encode("utf-8"), _MAX_DIGITS)
                if pax_number is None:
                    raise FormatError("has a malformed PAX size (not 1-20 ASCII digits)", at)
                size = pax_number
            if name is None:
                name = block[:100].rstrip(b"\0").decode("ascii", "replace")
        elif typeflag == b"0":
            try:
                name = block[:100].rstrip(b"\0").decode("ascii")
            except UnicodeDecodeError:
                raise FormatError("has a non-ASCII name outside a PAX header", at) from None
            size = _octal(block[124:136], at)
        else:
            raise FormatError(
                f"holds a member of tar type {typeflag!r}; only regular files are allowed "
                "(links, devices and directories are refused)",
                at,
            )
        expected = layout.member_header(name, size)
        f.seek(pos)
        if f.read(len(expected)) != expected:
            raise FormatError(f"member {name!r} has a non-canonical tar header", where)
        member = Member(name, pos, pos + len(expected), size)
        if member.end > file_size:
            raise FormatError(f"is truncated inside member {name!r}; re-download or rebuild it", where)
        f.seek(member.data_offset + size)
        if f.read(layout.padding(size)) != b"\0" * layout.padding(size):
            raise FormatError(f"member {name!r} has non-zero padding", where)
        members.append(member)
        pos = member.end
    tail = layout.end_of_archive(pos)
    if file_size != pos + len(tail):
        raise FormatError(
            "has bytes after the end of the archive" if file_size > pos + len(tail) else "is truncated",
            where,
        )
    f.seek(pos)
    if f.read(len(tail)) != tail:
        raise FormatError("has a non-canonical end of archive (bytes after the end marker)", where)
    return members


class PackageFile:
    """An open .mpkg: its members and raw access to their bytes. Parses, does not verify."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.where = str(path)
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat below refuses it.
            self._f: BinaryIO = os.fdopen(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb")
        except OSError as exc:
            raise FormatError(f"cannot be opened ({exc.strerror})", self.where) from None
        try:
            st = os.fstat(self._f.fileno())
            import stat

            if not stat.S_ISREG(st.st_mode):
                raise FormatError("is not a regular file", self.where)
            self.size = st.st_size
            self.members = scan(self._f, self.size, self.where)
            self.by_name = {m.name: m for m in self.members}
            if len(self.by_name) != len(self.members):
                raise FormatError("holds two members with the same name", self.where)
            manifest = self.by_name.get(MANIFEST_NAME)
            if manifest is None:
                raise FormatError(f"has no {MANIFEST_NAME}; is this an .mpkg?", self.where)
            if manifest.size > MAX_MANIFEST_BYTES:
                raise FormatError(f"manifest is over {MAX_MANIFEST_BYTES} bytes", self.where)
            self.manifest_bytes = self.read(manifest)
            sig = self.by_name.get(SIGNATURES_NAME)
            if sig is not None and sig.size > MAX_SIGNATURES_BYTES:
                raise FormatError(f"{SIGNATURES_NAME} is over {MAX_SIGNATURES_BYTES} bytes", self.where)
            self.signatures_bytes = self.read(sig) if sig is not None else None
        except BaseException:
            self._f.close()
            raise

    def __enter__(self) -> PackageFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the package file."""
        self._f.close()

    @property
    def file(self) -> BinaryIO:
        """The one open file: verify, load and unpack read it, never the path again."""
        return self._f

    def read(self, member: Member) -> bytes:
        """A member's bytes (small members only; weights are memory-mapped)."""
        self._f.seek(member.data_offset)
        return self._f.read(member.size)

    def mmap(self) -> mmap.mmap:
        """A read-only map of the whole package, for zero-copy tensor access."""
        return mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_READ)
