"""The canonical archive writer: what it writes is what the manifest says, in canonical form."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from typing import BinaryIO

import pytest
from mpkg._internal.format import layout
from mpkg._internal.format.archive import scan
from mpkg._internal.format.digests import WINDOW, hash_bytes
from mpkg._internal.format.manifest import MANIFEST_NAME, SIGNATURES_NAME, FileEntry
from mpkg.errors import SourceError
from mpkg_builder.writer import CHUNK, ArchiveWriter


def test_entries_describe_the_bytes_written(tmp_path: Path) -> None:
    weights = random.Random(3).randbytes(CHUNK + 12345)  # more than one streaming chunk
    (tmp_path / "w.bin").write_bytes(weights)
    buf = io.BytesIO()
    advanced: list[int] = []
    writer = ArchiveWriter(buf, advanced.append)
    card = writer.add_bytes("card/MODEL_CARD.md", b"# card\n", "card")
    w = writer.add_file("model/w.bin", tmp_path / "w.bin", "weights")
    writer.finish(b"{}", b"[]")
    data = buf.getvalue()
    assert writer.offset == len(data) and len(data) % layout.RECORD == 0
    assert (card.path, card.size, card.encoding, card.member_name) == ("card/MODEL_CARD.md", 7, "identity", card.path)
    assert card.digest == hash_bytes(b"# card\n")
    assert (w.size, w.digest, w.encoding, w.role) == (len(weights), hash_bytes(weights), "identity", "weights")
    assert sum(advanced) == 7 + len(weights)
    members = scan(io.BytesIO(data), len(data), "w")  # type: ignore[arg-type]
    assert [m.name for m in members] == ["card/MODEL_CARD.md", "model/w.bin", MANIFEST_NAME, SIGNATURES_NAME]
    for m, content in zip(members, (b"# card\n", weights), strict=False):  # stored as is, block-aligned
        assert m.data_offset % layout.BLOCK == 0 and data[m.data_offset : m.data_offset + m.size] == content


def test_files_must_come_in_sorted_order(tmp_path: Path) -> None:
    writer = ArchiveWriter(io.BytesIO())
    writer.add_bytes("lineage/b", b"", "lineage")
    for path in ("lineage/a", "lineage/b", "card/x"):
        with pytest.raises(ValueError, match="sorted order"):
            writer.add_bytes(path, b"", "lineage")


def test_source_that_shrinks_while_packed(tmp_path: Path) -> None:
    """A source file truncated between stat and read: refused, not silently short."""
    src = tmp_path / "w.bin"
    src.write_bytes(bytes(CHUNK * 2))

    class Shrinking(io.BytesIO):
        def write(self, data: bytes) -> int:  # type: ignore[override]
            if len(data) == CHUNK and src.stat().st_size:
                src.write_bytes(b"")  # the file shrinks after the first chunk was copied
            return super().write(data)

    with pytest.raises(SourceError, match="changed size while being packed"):
        ArchiveWriter(Shrinking()).add_file("model/w.bin", src, "weights")


def test_pax_names_round_trip(tmp_path: Path) -> None:
    buf = io.BytesIO()
    writer = ArchiveWriter(buf)
    long_name = "lineage/" + "d" * 90 + "/données.csv"
    writer.add_bytes(long_name, b"x", "lineage")
    writer.finish(b"{}")
    data = buf.getvalue()
    names = [m.name for m in scan(io.BytesIO(data), len(data), "p")]  # type: ignore[arg-type]
    assert names == [long_name, MANIFEST_NAME]


# The writer has two copy paths: onto a regular file opened read-write it copies in the kernel
# (copy_file_range) and hashes each window of WINDOW bytes back from the package; onto anything
# else (BytesIO, pipes) it reads, hashes and writes through one CHUNK buffer. Progress is reported
# per window or per chunk, which is how these tests see which path ran.


def _pack(out: BinaryIO, src: Path, progress: list[int]) -> list[FileEntry]:
    writer = ArchiveWriter(out, progress.append)
    entries = [
        writer.add_bytes("card/MODEL_CARD.md", b"# card\n", "card"),
        writer.add_file("model/w.bin", src, "weights"),
    ]
    writer.finish(b"{}")
    return entries


def test_kernel_copy_and_buffered_copy_write_the_same_package(tmp_path: Path) -> None:
    """A source over one hash window (70 MiB of non-constant data): both paths write identical
    bytes and identical entries, and the digest is the source's."""
    rng = random.Random(11)
    block = rng.randbytes(1 << 20)
    size = WINDOW + (6 << 20) + 123  # crosses a window boundary, ends mid-block
    src = tmp_path / "w.bin"
    with open(src, "wb") as f:  # 1 MiB of random data, rotated differently for every MiB
        for _ in range(size >> 20):
            k = rng.randrange(1 << 20)
            f.write(block[k:] + block[:k])
        f.write(rng.randbytes(size & ((1 << 20) - 1)))
    prefix = b"p" * 1000  # the writer need not start at offset 0 of its file
    direct_progress: list[int] = []
    with open(tmp_path / "k.mpkg", "w+b") as out:
        out.write(prefix)
        direct = _pack(out, src, direct_progress)
    buffered_progress: list[int] = []
    buf = io.BytesIO()
    buffered = _pack(buf, src, buffered_progress)
    assert direct_progress == [7, WINDOW, size - WINDOW]  # kernel copy, one step per window
    assert buffered_progress[1:] == [CHUNK] * (size // CHUNK) + [size % CHUNK]  # buffered, per chunk
    assert (tmp_path / "k.mpkg").read_bytes() == prefix + buf.getvalue()
    assert direct == buffered
    assert direct[1].digest == hash_bytes(src.read_bytes()) and direct[1].size == size


@pytest.mark.parametrize("kernel", [True, False], ids=["kernel-copy", "buffered"])
def test_source_that_grows_while_packed(tmp_path: Path, kernel: bool) -> None:
    """Bytes appended to the source after its size was taken (here: at the first progress report,
    once the copy is under way) make the build fail rather than pack a prefix of the file."""
    src = tmp_path / "w.bin"
    src.write_bytes(random.Random(5).randbytes(3 * CHUNK))
    grown: list[int] = []

    def grow(n: int) -> None:
        if not grown:
            with open(src, "ab") as f:
                f.write(b"late bytes")
        grown.append(n)

    out: BinaryIO = open(tmp_path / "k.mpkg", "w+b") if kernel else io.BytesIO()  # noqa: SIM115
    with out, pytest.raises(SourceError, match="grew while being packed"):
        ArchiveWriter(out, grow).add_file("model/w.bin", src, "weights")
    assert grown == ([3 * CHUNK] if kernel else [CHUNK] * 3)  # the path under test ran


def test_source_that_shrinks_during_the_kernel_copy(tmp_path: Path) -> None:
    """Truncated after the first window was copied: the next copy finds no bytes and the
    build fails instead of writing a short member with a stale header."""
    src = tmp_path / "w.bin"
    with open(src, "wb") as f:
        f.truncate(WINDOW + CHUNK)  # sparse: cheap to create
    seen: list[int] = []

    def shrink(n: int) -> None:
        seen.append(n)
        os.truncate(src, WINDOW // 2)

    with open(tmp_path / "k.mpkg", "w+b") as out, pytest.raises(SourceError, match="changed size while being packed"):
        ArchiveWriter(out, shrink).add_file("model/w.bin", src, "weights")
    assert seen == [WINDOW]
