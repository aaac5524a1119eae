"""Compressed members: format v1 has none (spec §3.4), so the whole decompression-bomb surface
(bombs, skippable frames, lying content sizes) reduces to two refusals that read no member data:

- a manifest declaring any encoding but "identity" is refused while the manifest is parsed;
- a `.zst` member the manifest does not list is an extra file, like any other unlisted member.

The packages are signed by a trusted key over a consistent manifest, so the encoding or the
extra member is the only thing wrong with them.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from mpkg._internal.format import canonical
from mpkg._internal.format.manifest import MANIFEST_NAME, SIGNATURES_NAME
from mpkg._internal.trust.verify import verify

from tests.attacks.checks import Keys, refused, unpack_refused
from tests.attacks.craft import (
    File,
    archive,
    base_files,
    envelope,
    manifest_doc,
    member,
    members_of,
    package,
    rebuild,
    write,
)

TEXT = b"hello, this is a lineage file\n" * 40
# A zstd frame header claiming 1 TiB of content (8-byte content size), then one raw block: the
# shape of a decompression bomb. v1 must refuse it without ever treating it as zstd.
BOMB = struct.pack("<IBQ", 0xFD2FB528, (3 << 6) | (1 << 5), 1 << 40) + ((5 << 3) | 1).to_bytes(3, "little") + b"boom!"


def _declared(tmp: Path, keys: Keys, encoding: str, role: str, path: str, member_name: str) -> Path:
    """A signed package whose file ``path`` is declared with ``encoding`` and stored as ``member_name``
    holding BOMB; the manifest's size and digest are those of TEXT, as a v0 writer would record."""
    f = File(path, TEXT, role)
    files = sorted([*(b for b in base_files() if b.path != path), f], key=lambda x: x.path.encode())
    doc = manifest_doc(files)
    if role == "weights":
        doc["model"]["files"] = [path]
    for e in doc["files"]:
        if e["path"] == path:
            e["encoding"] = encoding
    manifest = canonical.dumps(doc)
    chunks = [member(member_name, BOMB) if x is f else member(x.member, x.stored) for x in files]
    chunks += [member(MANIFEST_NAME, manifest), member(SIGNATURES_NAME, envelope(manifest, [keys.a.key]))]
    return write(tmp / "z.mpkg", archive(chunks))


def test_control_identity_package_is_accepted(tmp_path: Path, keys: Keys) -> None:
    """The same construction with encoding "identity" and the real bytes verifies."""
    files = sorted([*base_files(), File("lineage/notes.txt", TEXT, "lineage")], key=lambda x: x.path.encode())
    assert verify(write(tmp_path / "ok.mpkg", package(files, keys=[keys.a.key])), [keys.a.pub]).ok


@pytest.mark.parametrize(
    ("role", "path"),
    [("lineage", "lineage/notes.txt"), ("card", "card/MODEL_CARD.md"), ("weights", "model/w.safetensors")],
)
@pytest.mark.parametrize("suffix", [".zst", ""], ids=["zst-member", "plain-member"])
def test_compressed_member_refused_decompression_bomb_surface(
    tmp_path: Path, keys: Keys, role: str, path: str, suffix: str
) -> None:
    """encoding "zstd" with a bomb-shaped member: refused from the manifest alone, naming the field
    and the encoding (no member or digest complaint: member data is never reached). A card or
    weights file so refused also leaves card.path / model.files dangling, reported as such."""
    pkg = _declared(tmp_path, keys, "zstd", role, path, path + suffix)
    result = refused(pkg, keys=(keys.a.pub,))
    assert result.manifest is None and all(": mpkg/manifest.json: " in e for e in result.errors), result.errors
    index = sorted({*(f.path for f in base_files()), path}, key=str.encode).index(path)
    reason = result.errors[0]
    assert f"files[{index}].encoding: must be 'identity'" in reason and "uncompressed" in reason, reason
    assert len(result.errors) == (1 if role == "lineage" else 2), result.errors
    unpack_refused(pkg, tmp_path, "encoding", keys=(keys.a.pub,))


@pytest.mark.parametrize("encoding", ["gzip", "ZSTD", "", "identity "])
def test_unknown_encoding_refused(tmp_path: Path, keys: Keys, encoding: str) -> None:
    pkg = _declared(tmp_path, keys, encoding, "lineage", "lineage/notes.txt", "lineage/notes.txt")
    refused(pkg, "files[2].encoding", keys=(keys.a.pub,))


def test_unlisted_zst_member_is_an_extra_file(tmp_path: Path, keys: Keys) -> None:
    """A `.zst` member beside the genuine one (a v0 reader would prefer it) or instead of it."""
    genuine = write(tmp_path / "genuine.mpkg", package(keys=[keys.a.key]))
    assert verify(genuine, [keys.a.pub]).ok
    pairs = members_of(genuine)
    beside = sorted([*pairs[:-2], ("card/MODEL_CARD.md.zst", BOMB)], key=lambda p: p[0].encode()) + pairs[-2:]
    pkg = write(tmp_path / "beside.mpkg", rebuild(beside))
    result = refused(pkg, "files not listed in the manifest: card/MODEL_CARD.md.zst", keys=(keys.a.pub,))
    assert len(result.errors) == 1, result.errors
    unpack_refused(pkg, tmp_path, "card/MODEL_CARD.md.zst", keys=(keys.a.pub,))
    instead = [("card/MODEL_CARD.md.zst", BOMB) if n == "card/MODEL_CARD.md" else (n, d) for n, d in pairs]
    refused(
        write(tmp_path / "instead.mpkg", rebuild(instead)),
        "files missing from the archive: card/MODEL_CARD.md",
        "files not listed in the manifest: card/MODEL_CARD.md.zst",
        keys=(keys.a.pub,),
    )
