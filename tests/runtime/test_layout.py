"""The canonical tar layout (spec/format.md §3): byte-exact headers, PAX, end of archive.

Header bytes are part of the format: the pinned hashes below change only with a new
format version. Standard tools must read what mpkg writes (tar -t lists, tar -x extracts).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mpkg._internal.format import layout
from mpkg._internal.format.archive import scan


def _archive(members: list[tuple[str, bytes]]) -> bytes:
    body = b"".join(layout.member_header(n, len(d)) + d + bytes(layout.padding(len(d))) for n, d in members)
    return body + layout.end_of_archive(len(body))


def test_ustar_header_fields() -> None:
    header = layout.member_header("model/model.onnx", 1141)
    assert len(header) == layout.BLOCK
    info = tarfile.TarInfo.frombuf(header, "utf-8", "strict")  # also checks the checksum
    fields = (info.name, info.size, info.mode, info.uid, info.gid, info.mtime)
    assert fields == ("model/model.onnx", 1141, 0o644, 0, 0, 0)
    assert info.type == tarfile.REGTYPE and info.linkname == "" and info.uname == "" and info.gname == ""
    assert header[257:265] == b"ustar\x0000"
    assert header[148:156] == f"{sum(header[:148]) + 8 * 32 + sum(header[156:]):06o}".encode() + b"\0 "


def test_header_written_from_the_spec_text() -> None:
    """§3.3 spelled out field by field, independently of layout.py."""
    h = bytearray(512)
    h[0:16] = b"model/model.onnx"
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = b"%011o\0" % 1141
    h[136:148] = b"00000000000\0"
    h[156:157] = b"0"
    h[257:265] = b"ustar\x0000"
    h[329:337] = b"0000000\0"
    h[337:345] = b"0000000\0"
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    assert layout.member_header("model/model.onnx", 1141) == bytes(h)


# sha256 of header bytes: any change here is a new format version (spec §3.3, §11).
PINNED = {
    ("model/model.onnx", 1141): "4926d9b96070a8486a5ad106b2f9f289f1c371d3cee4e7fcb978bae68d787849",
    ("card/MODEL_CARD.md.zst", 0): "032b56d33a26e167cb6dac31996bbea2bc580c30aaed7e7296e22357dcf22a3c",
    ("lineage/données.csv.zst", 10): "b42779fdd69c3bcb7d7bfbc8d13f936650e39b3ebe0166d40899bd3a489b6c0a",
    ("code/" + "x" * 120 + ".py.zst", 5): "431a939eb3b98a8fde5cbf78d77e6563046d051eaded6bb299b7fd48a6f8b1f7",
    ("model/huge.bin", 8**11): "9a93e74e66f0e8f6e94b6d2b3ee6db31fe7b16ba654b8c93864a1e93ff07ed2b",
}


@pytest.mark.parametrize(("name", "size"), sorted(PINNED))
def test_header_bytes_are_pinned(name: str, size: int) -> None:
    assert hashlib.sha256(layout.member_header(name, size)).hexdigest() == PINNED[(name, size)]


@pytest.mark.parametrize(
    ("name", "size", "pax_records"),
    [
        ("a" * 100, 1, []),
        ("a" * 101, 1, ["path"]),
        ("lineage/é.txt", 1, ["path"]),
        ("model/w.bin", 8**11 - 1, []),
        ("model/w.bin", 8**11, ["size"]),
        ("lineage/" + "é" * 60, 8**11 + 5, ["path", "size"]),
    ],
)
def test_pax_header_only_when_needed(name: str, size: int, pax_records: list[str]) -> None:
    header = layout.member_header(name, size)
    assert layout.needs_pax(name, size) == bool(pax_records)
    assert len(header) % layout.BLOCK == 0
    if not pax_records:
        assert len(header) == layout.BLOCK
        return
    pax = tarfile.TarInfo.frombuf(header[: layout.BLOCK], "utf-8", "strict")
    assert pax.type == tarfile.XHDTYPE and pax.name == layout.PAX_NAME
    records = header[layout.BLOCK : layout.BLOCK + pax.size].decode()
    assert [r.split(" ", 1)[1].split("=", 1)[0] for r in records.splitlines()] == pax_records
    for record in records.splitlines(keepends=True):
        assert int(record.split(" ", 1)[0]) == len(record.encode())
    ustar = tarfile.TarInfo.frombuf(header[-layout.BLOCK :], "utf-8", "strict")
    assert ustar.size == (0 if "size" in pax_records else size)
    assert ustar.name == (name[:100] if name.isascii() else "@PaxPath")


@pytest.mark.parametrize("length", [1, 7, 8, 9, 90, 91, 92, 93, 994, 995, 996, 997])
def test_pax_record_length_crosses_digit_boundaries(length: int) -> None:
    """The record's length field counts its own digits; check around 9->10 and 99->100."""
    name = "lineage/é" + "x" * length
    header = layout.member_header(name, 1)
    pax = tarfile.TarInfo.frombuf(header[: layout.BLOCK], "utf-8", "strict")
    record = header[layout.BLOCK : layout.BLOCK + pax.size]
    assert int(record.split(b" ", 1)[0]) == len(record) and record.endswith(b"\n")
    assert record.split(b"=", 1)[1][:-1].decode() == name


@pytest.mark.parametrize("offset", [0, 512, 9216, 9728, 10240, 123 * 512])
def test_end_of_archive_pads_to_whole_records(offset: int) -> None:
    tail = layout.end_of_archive(offset)
    assert set(tail) == {0} and len(tail) >= 2 * layout.BLOCK and (offset + len(tail)) % layout.RECORD == 0
    assert len(tail) < 2 * layout.BLOCK + layout.RECORD


def test_python_tarfile_reads_names_sizes_and_bytes() -> None:
    members = [("card/x.md.zst", b"abc"), ("lineage/é/ü.txt", b"\0" * 513), ("code/" + "d/" * 60 + "m.py", b"x")]
    with tarfile.open(fileobj=io.BytesIO(_archive(members)), mode="r:") as tar:
        got = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]  # type: ignore[union-attr]
    assert got == members


@pytest.mark.skipif(shutil.which("tar") is None, reason="no system tar")
def test_system_tar_lists_and_extracts_a_built_package(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pkg = built.signed["iris-mlp"]
    listing = subprocess.run(["tar", "-tvf", str(pkg)], capture_output=True, text=True, check=True).stdout
    lines = listing.splitlines()
    assert all(line.startswith("-rw-r--r-- 0/0") for line in lines), listing
    assert [line.split()[-1] for line in lines][-2:] == ["mpkg/manifest.json", "mpkg/signatures.json"]
    subprocess.run(["tar", "-xf", str(pkg), "-C", str(tmp_path)], check=True)
    assert (tmp_path / "model" / "model.onnx").read_bytes() == (built.sources["iris-mlp"] / "model.onnx").read_bytes()


_names = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1, max_size=300
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_names, st.binary(max_size=1100)), max_size=5, unique_by=lambda m: m[0]))
def test_scan_reads_back_exactly_what_layout_wrote(members: list[tuple[str, bytes]]) -> None:
    """For any names and sizes, the strict reader finds the same members at the same offsets."""
    data = _archive(members)
    found = scan(io.BytesIO(data), len(data), "prop.mpkg")  # type: ignore[arg-type]
    assert [(m.name, data[m.data_offset : m.data_offset + m.size]) for m in found] == members
    assert all(m.data_offset % layout.BLOCK == 0 for m in found)
