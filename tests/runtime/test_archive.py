"""Reading a .mpkg without extracting it: members, zero-copy access, stored bytes as they are."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mpkg._internal.format import layout
from mpkg._internal.format.archive import PackageFile, scan
from mpkg._internal.format.manifest import MANIFEST_NAME, SIGNATURES_NAME, Manifest
from mpkg._internal.trust.verify import payload_bytes
from mpkg.errors import FormatError


def test_members_offsets_and_zero_copy_weights(built) -> None:  # type: ignore[no-untyped-def]
    with PackageFile(built.signed["iris-mlp"]) as pkg:
        manifest = Manifest.from_bytes(pkg.manifest_bytes)
        names = [m.name for m in pkg.members]
        assert names == [f.member_name for f in manifest.files] + [MANIFEST_NAME, SIGNATURES_NAME]
        assert set(pkg.by_name) == set(names)
        assert pkg.members[0].header_offset == 0
        for a, b in zip(pkg.members, pkg.members[1:], strict=False):
            assert a.end == b.header_offset  # contiguous
        weights = pkg.by_name["model/model.onnx"]
        assert weights.data_offset % layout.BLOCK == 0  # mmap-able in place
        source = (built.sources["iris-mlp"] / "model.onnx").read_bytes()
        with pkg.mmap() as mm:
            assert mm[weights.data_offset : weights.data_offset + weights.size] == source
        assert pkg.read(weights) == source
        code = manifest.file("code/pipeline.py")
        assert code is not None and code.encoding == "identity"
        assert payload_bytes(pkg, code) == (built.sources["iris-mlp"] / "src" / "pipeline.py").read_bytes()
        assert pkg.size == os.path.getsize(built.signed["iris-mlp"]) and pkg.size % layout.RECORD == 0


def test_unsigned_package_has_no_signature_member(built) -> None:  # type: ignore[no-untyped-def]
    with PackageFile(built.unsigned["churn-tabular"]) as pkg:
        assert pkg.signatures_bytes is None and pkg.members[-1].name == MANIFEST_NAME


def _one_member(tmp: Path, name: str, stored: bytes) -> Path:
    body = layout.member_header(name, len(stored)) + stored + bytes(layout.padding(len(stored)))
    body += layout.member_header(MANIFEST_NAME, 2) + b"{}" + bytes(layout.padding(2))
    path = tmp / "one.mpkg"
    path.write_bytes(body + layout.end_of_archive(len(body)))
    return path


def test_every_member_is_its_file_stored_as_is(built) -> None:  # type: ignore[no-untyped-def]
    """Format v1 compresses nothing: each member is named by its path, starts on a block
    boundary and holds exactly the file's bytes (size and digest as in the manifest)."""
    from mpkg._internal.format.digests import hash_bytes

    for path in (*built.signed.values(), *built.unsigned.values()):
        with PackageFile(path) as pkg:
            manifest = Manifest.from_bytes(pkg.manifest_bytes)
            for entry in manifest.files:
                member = pkg.by_name[entry.path]
                assert entry.encoding == "identity" and member.data_offset % layout.BLOCK == 0
                data = pkg.read(member)
                assert (len(data), hash_bytes(data)) == (entry.size, entry.digest)
                assert payload_bytes(pkg, entry) == data


def test_a_zst_name_is_only_a_name(tmp_path: Path) -> None:
    """Bytes that look like a zstd frame, under a `.zst` name, are read back as stored."""
    stored = b"\x28\xb5\x2f\xfd" + bytes(range(256))
    with PackageFile(_one_member(tmp_path, "lineage/z.bin.zst", stored)) as pkg:
        assert pkg.read(pkg.by_name["lineage/z.bin.zst"]) == stored


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "is truncated"),
        (b"\0" * 100, "is truncated"),
        (b"\0" * 10240, "has no mpkg/manifest.json"),
        (b"x" * 10240, "malformed tar header"),
        (layout.member_header("a", 5) + b"abc", "is truncated inside member 'a'"),
    ],
)
def test_malformed_archives_raise_format_error(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / "bad.mpkg"
    path.write_bytes(data)
    with pytest.raises(FormatError, match=reason):
        PackageFile(path)


def test_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="cannot be opened"):
        PackageFile(tmp_path / "missing.mpkg")
    with pytest.raises(FormatError):
        PackageFile(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    """Opening a FIFO for reading blocks until a writer appears; the reader must refuse it instead.
    Run in a child so a regression shows as a failure, not a hung suite."""
    fifo = tmp_path / "pipe.mpkg"
    os.mkfifo(fifo)
    code = "import sys; import mpkg; r = mpkg.verify(sys.argv[1], mpkg.Policy.unsafe_allow_unsigned()); print(r.errors)"
    try:
        proc = subprocess.run([sys.executable, "-c", code, str(fifo)], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("verify blocked on a FIFO")
    assert "is not a regular file" in proc.stdout, proc.stdout + proc.stderr


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_scan_of_mutated_archive_only_raises_format_error(built, data: st.DataObject) -> None:  # type: ignore[no-untyped-def]
    """Random byte edits to a real package: the reader returns members or raises FormatError,
    never another exception (IndexError, ValueError, UnicodeError...)."""
    original = built.unsigned["churn-tabular"].read_bytes()
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(original) - 1), st.integers(0, 255)), max_size=4))
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(original))))
    mutated = bytearray(original)
    for pos, value in edits:
        mutated[pos] = value
    blob = bytes(mutated[:cut] if cut is not None else mutated)
    try:
        members = scan(io.BytesIO(blob), len(blob), "fuzz")  # type: ignore[arg-type]
    except FormatError as exc:
        assert all("\n" not in r for r in exc.reasons())
    else:
        assert all(m.end <= len(blob) for m in members)
