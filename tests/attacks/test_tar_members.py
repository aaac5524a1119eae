"""Hostile tar members: traversal, links, devices, directories, PAX smuggling, duplicates.

Each package here is valid except for the attack (signed by a trusted key, canonical
headers everywhere else), so the refusal is for the attack itself. Verify must refuse
with one-line reasons; unpack must refuse and write nothing anywhere.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
from mpkg._internal.format import canonical, layout
from mpkg._internal.format.manifest import MANIFEST_NAME, SIGNATURES_NAME

from tests.attacks.checks import Keys, refused, unpack_refused
from tests.attacks.craft import (
    File,
    archive,
    base_files,
    envelope,
    manifest_doc,
    member,
    package,
    pax_header,
    pax_record,
    ustar,
    write,
)


def _signed_with_extra(keys: Keys, extra: list[bytes], at: int = 0) -> bytes:
    """A valid signed package with raw ``extra`` chunks inserted before member ``at``."""
    files = base_files()
    manifest = canonical.dumps(manifest_doc(files))
    chunks = [member(f.member, f.stored) for f in files]
    chunks[at:at] = extra
    chunks += [member(MANIFEST_NAME, manifest), member(SIGNATURES_NAME, envelope(manifest, [keys.a.key]))]
    return archive(chunks)


def test_control_valid_crafted_package_verifies_and_unpacks(tmp_path: Path, keys: Keys) -> None:
    """The baseline every attack below departs from by one thing."""
    from mpkg._internal.trust.verify import Policy, verify
    from mpkg._internal.unpack import unpack

    pkg = write(tmp_path / "ok.mpkg", package(keys=[keys.a.key]))
    assert verify(pkg, [keys.a.pub]).ok
    unpack(pkg, tmp_path / "out", Policy.from_paths([keys.a.pub]))
    assert (tmp_path / "out" / "model" / "w.safetensors").read_bytes() == base_files()[2].data


@pytest.mark.parametrize("name", ["../../escape.txt", "model/../../../escape.txt", "../../../../escape.txt"])
def test_tar_slip_cve_2007_4559(tmp_path: Path, keys: Keys, name: str) -> None:
    """A member named with '..' (CVE-2007-4559): not in the manifest, so never extracted."""
    pkg = write(tmp_path / "slip.mpkg", _signed_with_extra(keys, [member(name, b"pwned\n")]))
    refused(pkg, f"files not listed in the manifest: {name}", keys=(keys.a.pub,))
    unpack_refused(pkg, tmp_path, "not listed in the manifest", keys=(keys.a.pub,))
    assert not list(tmp_path.rglob("escape.txt"))


def test_tar_slip_listed_in_manifest(tmp_path: Path, keys: Keys) -> None:
    """The same traversal declared in the manifest itself is refused as a package path."""
    files = [*base_files(), File("lineage/../../../escape.txt", b"pwned\n", "lineage")]
    files.sort(key=lambda f: f.path.encode())
    pkg = write(tmp_path / "slip.mpkg", package(files, keys=[keys.a.key]))
    refused(pkg, "has an empty, '.' or '..' component", keys=(keys.a.pub,))
    unpack_refused(pkg, tmp_path, "'..' component", keys=(keys.a.pub,))


def test_absolute_path_member(tmp_path: Path, keys: Keys) -> None:
    escape = tmp_path / "escape.txt"
    pkg = write(tmp_path / "abs.mpkg", _signed_with_extra(keys, [member(str(escape), b"pwned\n")]))
    refused(pkg, "files not listed in the manifest", keys=(keys.a.pub,))
    unpack_refused(pkg, tmp_path, keys=(keys.a.pub,))
    assert not escape.exists()
    files = [*base_files(), File("/etc/mpkg-escape", b"x", "lineage")]
    files.sort(key=lambda f: f.path.encode())
    pkg = write(tmp_path / "abs2.mpkg", package(files, keys=[keys.a.key]))
    refused(pkg, "is absolute", keys=(keys.a.pub,))


@pytest.mark.parametrize(
    ("typeflag", "what"),
    [
        (b"2", "symlink"),
        (b"1", "hardlink"),
        (b"3", "char device"),
        (b"4", "block device"),
        (b"6", "fifo"),
        (b"5", "directory"),
        (b"7", "contiguous"),
        (b"L", "GNU long name"),
        (b"K", "GNU long link"),
        (b"g", "PAX global header"),
        (b"\0", "old-style regular file"),
    ],
)
def test_non_regular_member_types(tmp_path: Path, keys: Keys, typeflag: bytes, what: str) -> None:
    header = ustar(b"model/link", 0, typeflag, linkname=b"/etc/passwd" if typeflag in b"12" else b"")
    pkg = write(tmp_path / "t.mpkg", _signed_with_extra(keys, [header]))
    refused(pkg, f"holds a member of tar type {typeflag!r}", keys=(keys.a.pub,))
    unpack_refused(pkg, tmp_path, "only regular files are allowed", keys=(keys.a.pub,))


def test_symlink_member(tmp_path: Path, keys: Keys) -> None:
    """A symlink named like a listed file, pointing outside (the classic link-then-write attack)."""
    info = tarfile.TarInfo("model/w.safetensors")
    info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
    pkg = write(tmp_path / "sym.mpkg", _signed_with_extra(keys, [info.tobuf(tarfile.USTAR_FORMAT)], at=2))
    refused(pkg, "holds a member of tar type b'2'", keys=(keys.a.pub,))
    unpack_refused(pkg, tmp_path, keys=(keys.a.pub,))


def test_hardlink_member(tmp_path: Path, keys: Keys) -> None:
    info = tarfile.TarInfo("model/w.safetensors")
    info.type, info.linkname = tarfile.LNKTYPE, "../../../../etc/passwd"
    pkg = write(tmp_path / "hard.mpkg", _signed_with_extra(keys, [info.tobuf(tarfile.USTAR_FORMAT)], at=2))
    refused(pkg, "holds a member of tar type b'1'", keys=(keys.a.pub,))
    unpack_refused(pkg, tmp_path, keys=(keys.a.pub,))


def test_device_member(tmp_path: Path, keys: Keys) -> None:
    info = tarfile.TarInfo("model/w.safetensors")
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3  # /dev/null's numbers
    pkg = write(tmp_path / "dev.mpkg", _signed_with_extra(keys, [info.tobuf(tarfile.USTAR_FORMAT)], at=2))
    refused(pkg, "holds a member of tar type b'3'", keys=(keys.a.pub,))
    unpack_refused(pkg, tmp_path, keys=(keys.a.pub,))


def test_directory_member(tmp_path: Path, keys: Keys) -> None:
    info = tarfile.TarInfo("model/")
    info.type, info.mode = tarfile.DIRTYPE, 0o777
    pkg = write(tmp_path / "dir.mpkg", _signed_with_extra(keys, [info.tobuf(tarfile.USTAR_FORMAT)], at=2))
    refused(pkg, "holds a member of tar type b'5'", keys=(keys.a.pub,))
    unpack_refused(pkg, tmp_path, keys=(keys.a.pub,))


@pytest.mark.parametrize(
    "records",
    [
        [("path", "model/w.safetensors"), ("linkpath", "/etc/passwd")],
        [("uid", "0"), ("path", "model/w.safetensors")],
        [("path", "model/w.safetensors"), ("mtime", "1700000000")],
        [("path", "../../escape.txt")],
        [("size", "4")],
    ],
    ids=["linkpath", "uid", "mtime", "path-traversal", "size-lie"],
)
def test_pax_header_smuggling(tmp_path: Path, keys: Keys, records: list[tuple[str, str]]) -> None:
    """A PAX header in front of a listed member carrying extra records (linkpath, uid, ...)
    or overriding its name/size: the header is not the canonical one for (name, size)."""
    files = base_files()
    manifest = canonical.dumps(manifest_doc(files))
    chunks = [member(f.member, f.stored) for f in files]
    weights = files[2]
    pax = pax_header(b"".join(pax_record(k, v) for k, v in records))
    chunks[2] = pax + member(weights.member, weights.stored)
    chunks += [member(MANIFEST_NAME, manifest), member(SIGNATURES_NAME, envelope(manifest, [keys.a.key]))]
    pkg = write(tmp_path / "pax.mpkg", archive(chunks))
    result = refused(pkg, keys=(keys.a.pub,))
    assert any("non-canonical tar header" in e or "truncated" in e for e in result.errors), result.errors
    unpack_refused(pkg, tmp_path, keys=(keys.a.pub,))
    assert not list(tmp_path.rglob("escape.txt"))


def test_pax_header_smuggling_on_a_legitimate_pax_member(tmp_path: Path, keys: Keys) -> None:
    """A non-ASCII name needs a PAX header; one with an extra record is still refused."""
    f = File("lineage/données.txt", b"data\n", "lineage")
    files = sorted([*base_files(), f], key=lambda x: x.path.encode())
    manifest = canonical.dumps(manifest_doc(files))
    chunks = []
    for x in files:
        if x is f:
            records = pax_record("path", x.member) + pax_record("linkpath", "/etc/passwd")
            chunks.append(
                pax_header(records)
                + ustar(b"@PaxPath", len(x.stored))
                + x.stored
                + b"\0" * layout.padding(len(x.stored))
            )
        else:
            chunks.append(member(x.member, x.stored))
    chunks += [member(MANIFEST_NAME, manifest), member(SIGNATURES_NAME, envelope(manifest, [keys.a.key]))]
    pkg = write(tmp_path / "pax.mpkg", archive(chunks))
    refused(pkg, "non-canonical tar header", keys=(keys.a.pub,))
    # ...while the canonical PAX form of the same package verifies
    good = write(tmp_path / "good.mpkg", package(files, keys=[keys.a.key]))
    from mpkg._internal.trust.verify import verify

    assert verify(good, [keys.a.pub]).ok


def test_oversized_pax_header(tmp_path: Path, keys: Keys) -> None:
    pax = pax_header(pax_record("comment", "x" * 70_000))
    pkg = write(tmp_path / "bigpax.mpkg", _signed_with_extra(keys, [pax + member("lineage/x", b"")]))
    refused(pkg, "oversized PAX header", keys=(keys.a.pub,))


@pytest.mark.parametrize("body", [b"99 path=x\n", b"abc path=x\n", b"0 path=x\n", b"12 pathx\n\n\n", b"8 p=\xff\xfe\n"])
def test_malformed_pax_header(tmp_path: Path, keys: Keys, body: bytes) -> None:
    pkg = write(tmp_path / "badpax.mpkg", _signed_with_extra(keys, [pax_header(body) + member("lineage/x", b"")]))
    refused(pkg, "PAX header", keys=(keys.a.pub,))


def test_duplicate_member_names(tmp_path: Path, keys: Keys) -> None:
    """The same member twice (tar extractors let the last one win)."""
    weights = base_files()[2]
    pkg = write(tmp_path / "dup.mpkg", _signed_with_extra(keys, [member(weights.member, b"evil")], at=3))
    refused(pkg, "holds two members with the same name", keys=(keys.a.pub,))
    unpack_refused(pkg, tmp_path, keys=(keys.a.pub,))


def test_non_ascii_name_outside_pax(tmp_path: Path, keys: Keys) -> None:
    pkg = write(tmp_path / "na.mpkg", _signed_with_extra(keys, [ustar("lineage/é".encode(), 0)]))
    refused(pkg, "non-ASCII name outside a PAX header", keys=(keys.a.pub,))


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [("mode", {"mode": 0o4755}), ("uid", {"uid": 1000}), ("mtime", {"mtime": 1}), ("magic", {"magic": b"ustar  \0"})],
)
def test_non_canonical_header_field(tmp_path: Path, keys: Keys, field: str, kwargs: dict[str, object]) -> None:
    """A listed member whose header differs from the canonical one in one field (setuid bit, owner...)."""
    files = base_files()
    manifest = canonical.dumps(manifest_doc(files))
    chunks = [member(f.member, f.stored) for f in files]
    w = files[2]
    chunks[2] = ustar(w.member.encode(), len(w.stored), **kwargs) + w.stored + b"\0" * layout.padding(len(w.stored))  # type: ignore[arg-type]
    chunks += [member(MANIFEST_NAME, manifest), member(SIGNATURES_NAME, envelope(manifest, [keys.a.key]))]
    pkg = write(tmp_path / f"{field}.mpkg", archive(chunks))
    refused(pkg, "non-canonical tar header", keys=(keys.a.pub,))
    unpack_refused(pkg, tmp_path, keys=(keys.a.pub,))


def test_non_zero_padding(tmp_path: Path, keys: Keys) -> None:
    """Hidden bytes in a member's padding (a covert channel the digest would not cover)."""
    files = base_files()
    manifest = canonical.dumps(manifest_doc(files))
    chunks = [member(f.member, f.stored) for f in files]
    chunks[2] = chunks[2][:-1] + b"!"
    chunks += [member(MANIFEST_NAME, manifest), member(SIGNATURES_NAME, envelope(manifest, [keys.a.key]))]
    pkg = write(tmp_path / "pad.mpkg", archive(chunks))
    refused(pkg, "non-zero padding", keys=(keys.a.pub,))
