"""Hostile manifests: colliding paths, oversized or malformed JSON, duplicate keys, unknown versions.

The manifests are signed by a trusted key, so the refusal comes from the manifest rules,
not from a signature mismatch.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest
from mpkg._internal.format import canonical
from mpkg._internal.format.manifest import MANIFEST_NAME, MAX_MANIFEST_BYTES
from mpkg._internal.trust.verify import verify

from tests.attacks.checks import Keys, refused, unpack_refused
from tests.attacks.craft import File, archive, base_files, manifest_doc, member, members_of, package, write


def _with(*extra: File) -> list[File]:
    return sorted([*base_files(), *extra], key=lambda f: f.path.encode())


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("lineage/Data.csv", "lineage/data.csv"),
        ("lineage/STRASSE.txt", "lineage/straße.txt"),
        ("lineage/\u03c3.txt", "lineage/\u03c2.txt"),
    ],  # sigma and final sigma fold together
    ids=["ascii-case", "sharp-s", "final-sigma"],
)
def test_duplicate_member_casefold(tmp_path: Path, keys: Keys, a: str, b: str) -> None:
    """Two paths that are one file on a case-insensitive file system (macOS, Windows)."""
    files = _with(File(a, b"1", "lineage"), File(b, b"2", "lineage"))
    pkg = write(tmp_path / "fold.mpkg", package(files, keys=[keys.a.key]))
    refused(pkg, "collides with", keys=(keys.a.pub,))
    unpack_refused(pkg, tmp_path, "collides with", keys=(keys.a.pub,))


def test_duplicate_member_unicode_nfc_nfd(tmp_path: Path, keys: Keys) -> None:
    """An NFD path is refused outright (one spelling per path), and NFC paths that meet after
    compatibility folding (ligature fi vs 'fi', 'É' vs 'é') collide."""
    nfd = unicodedata.normalize("NFD", "lineage/café.txt")
    pkg = write(tmp_path / "nfd.mpkg", package(_with(File(nfd, b"1", "lineage")), keys=[keys.a.key]))
    refused(pkg, "is not in Unicode NFC form", keys=(keys.a.pub,))
    unpack_refused(pkg, tmp_path, "NFC", keys=(keys.a.pub,))
    for a, b in (("lineage/\ufb01le.txt", "lineage/file.txt"), ("lineage/É.txt", "lineage/é.txt")):
        files = _with(File(a, b"1", "lineage"), File(b, b"2", "lineage"))
        refused(write(tmp_path / "nfkc.mpkg", package(files, keys=[keys.a.key])), "collides with", keys=(keys.a.pub,))


def test_zst_suffix_is_just_a_name(tmp_path: Path, keys: Keys) -> None:
    """v0 stored 'x' as member 'x.zst', so a file named 'x.zst' could shadow it. In v1 the member
    name is the path: both files verify and each member holds its own bytes."""
    files = _with(File("lineage/x", b"1", "lineage"), File("lineage/x.zst", b"2", "lineage"))
    pkg = write(tmp_path / "shadow.mpkg", package(files, keys=[keys.a.key]))
    assert verify(pkg, [keys.a.pub]).ok
    stored = dict(members_of(pkg))
    assert (stored["lineage/x"], stored["lineage/x.zst"]) == (b"1", b"2")


def test_file_and_directory_with_the_same_path(tmp_path: Path, keys: Keys) -> None:
    """'lineage/a' a file and 'lineage/a/b' beneath it: verify passes (distinct names) but unpack
    must refuse cleanly rather than write through or beside the file."""
    files = _with(File("lineage/a", b"1", "lineage"), File("lineage/a/b", b"2", "lineage"))
    pkg = write(tmp_path / "fd.mpkg", package(files, keys=[keys.a.key]))
    unpack_refused(pkg, tmp_path, "non-directory", keys=(keys.a.pub,))


@pytest.mark.parametrize(
    "path",
    [
        "lineage/a\\b",
        "lineage/a\nb",
        "lineage//b",
        "lineage/./b",
        "lineage/",
        "lineage/" + "x" * 256,
        "lineage/" + "x/" * 600 + "y",
        "model/w.safetensors/../../x",
        "mpkg/manifest.json",
        "other/x",
    ],
)
def test_unsafe_package_paths(tmp_path: Path, keys: Keys, path: str) -> None:
    pkg = write(tmp_path / "p.mpkg", package(_with(File(path, b"1", "lineage")), keys=[keys.a.key]))
    if path == MANIFEST_NAME:  # its member is a second mpkg/manifest.json: refused by the layout first
        refused(pkg, "holds two members with the same name", keys=(keys.a.pub,))
        return
    result = refused(pkg, "files[", keys=(keys.a.pub,))
    assert any(".path" in e for e in result.errors), result.errors


def test_oversized_manifest(tmp_path: Path) -> None:
    """A manifest just over 16 MiB is refused from its header, before it is parsed."""
    files = base_files()
    chunks = [member(f.member, f.stored) for f in files]
    chunks.append(member(MANIFEST_NAME, b" " * (MAX_MANIFEST_BYTES + 1)))
    pkg = write(tmp_path / "big.mpkg", archive(chunks))
    refused(pkg, f"manifest is over {MAX_MANIFEST_BYTES} bytes", allow_unsigned=True)
    unpack_refused(pkg, tmp_path, "manifest is over")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1,2]", "must be a JSON object"),
        (b'{"format_version":NaN}', "NaN is not valid JSON"),
        (b'{"format_version":Infinity}', "Infinity is not valid JSON"),
        (b'{"format_version": 1}', "is not in canonical JSON form"),
        (b'{"b":1,"a":2}', "is not in canonical JSON form"),
        (b'{"format_version":1.0}', "is not in canonical JSON form"),
        (b"[" * 100_000 + b"]" * 100_000, "deeper than 64 levels"),
    ],
    ids=["truncated", "empty", "not-utf8", "array", "nan", "infinity", "whitespace", "unsorted", "float-one", "deep"],
)
def test_malformed_manifest_json(tmp_path: Path, body: bytes, reason: str) -> None:
    chunks = [member(f.member, f.stored) for f in base_files()] + [member(MANIFEST_NAME, body)]
    pkg = write(tmp_path / "bad.mpkg", archive(chunks))
    refused(pkg, reason, allow_unsigned=True)
    unpack_refused(pkg, tmp_path)


def test_manifest_duplicate_keys(tmp_path: Path, keys: Keys) -> None:
    """Two 'name' keys: parsers disagree on which wins (CVE-2017-12635 style); refused."""
    good = canonical.dumps(manifest_doc(base_files()))
    evil = good.replace(b'"name":"victim"', b'"name":"evil","name":"victim"')
    assert evil != good
    pkg = write(tmp_path / "dup.mpkg", package(manifest_bytes=evil, keys=[keys.a.key]))
    refused(pkg, "duplicate key 'name'", keys=(keys.a.pub,))
    nested = good.replace(b'"kind":"requirements"', b'"kind":"pylock","kind":"requirements"')
    refused(
        write(tmp_path / "dup2.mpkg", package(manifest_bytes=nested, keys=[keys.a.key])),
        "duplicate key 'kind'",
        keys=(keys.a.pub,),
    )


@pytest.mark.parametrize("version", [2, 0, "1", True, None, 1.5])
def test_unknown_format_version(tmp_path: Path, keys: Keys, version: object) -> None:
    doc = manifest_doc(base_files(), format_version=version)
    if version is None:
        del doc["format_version"]
    pkg = write(
        tmp_path / "v.mpkg",
        package(doc=doc, keys=[keys.a.key]) if version is not None else package(manifest_bytes=canonical.dumps(doc)),
    )
    result = refused(pkg, "is not supported by this mpkg", keys=(keys.a.pub,))
    assert any("upgrade mpkg" in e for e in result.errors)


def test_unknown_manifest_fields_all_reported(tmp_path: Path, keys: Keys) -> None:
    doc = manifest_doc(base_files(), extra=1, name="Bad Name", version="1.0")
    doc["model"]["smuggled"] = True
    result = refused(write(tmp_path / "u.mpkg", package(doc=doc, keys=[keys.a.key])), keys=(keys.a.pub,))
    text = "\n".join(result.errors)
    for field in ("extra: is not a known field", "name:", "version:", "model.smuggled"):
        assert field in text, text


def test_manifest_lies_about_size_and_digest(tmp_path: Path, keys: Keys) -> None:
    """A listed file whose recorded size or digest does not match the stored bytes."""
    files = base_files()
    doc = manifest_doc(files)
    doc["files"][2]["size"] += 1
    doc["files"][0]["digest"] = "blake3:" + "0" * 64
    result = refused(write(tmp_path / "lie.mpkg", package(files, doc=doc, keys=[keys.a.key])), keys=(keys.a.pub,))
    text = "\n".join(result.errors)
    assert "model/w.safetensors: is 107 bytes, the manifest says 108" in text
    assert "card/MODEL_CARD.md: content does not match its digest" in text


@pytest.mark.parametrize(
    "digest", ["sha256:" + "0" * 64, "md5:" + "0" * 32, "blake3:" + "0" * 63, "blake3:" + "A" * 64, "0" * 64]
)
def test_unknown_file_digest_algorithm(tmp_path: Path, keys: Keys, digest: str) -> None:
    doc = manifest_doc(base_files())
    doc["files"][2]["digest"] = digest
    refused(write(tmp_path / "d.mpkg", package(doc=doc, keys=[keys.a.key])), "files[2].digest", keys=(keys.a.pub,))


def test_terminal_line_injection_via_manifest_key(tmp_path: Path, keys: Keys, run_mpkg) -> None:  # type: ignore[no-untyped-def]
    """An unknown manifest key is echoed in the refusal; with a newline in it, `mpkg verify` would
    print a forged success line. Every line on stderr must be one of mpkg's own."""
    forged = "x\nok: victim 1.0.0 sha256:" + "0" * 64
    pkg = write(tmp_path / "inject.mpkg", package(doc=manifest_doc(base_files(), **{forged: 1}), keys=[keys.a.key]))
    proc = run_mpkg("verify", pkg, "--key", keys.a.pub, expect=1)
    lines = proc.stderr.splitlines()
    assert lines and all(line.startswith(("mpkg: ", "signature ")) for line in lines), proc.stderr
