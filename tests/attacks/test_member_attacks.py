"""Archive-level tampering that keeps every header canonical: extra, missing, reordered and
swapped members, trailing bytes, truncation. The manifest and signature stay genuine."""

from __future__ import annotations

from pathlib import Path

from mpkg._internal.format import layout
from mpkg._internal.format.manifest import MANIFEST_NAME, SIGNATURES_NAME
from mpkg._internal.trust.verify import verify

from tests.attacks.checks import Keys, refused, unpack_refused
from tests.attacks.craft import File, base_files, members_of, package, rebuild, write


def _genuine(tmp: Path, keys: Keys) -> Path:
    files = sorted(
        [*base_files(), File("lineage/metrics.json", b'{"acc":0.9}', "lineage")], key=lambda f: f.path.encode()
    )
    pkg = write(tmp / "genuine.mpkg", package(files, keys=[keys.a.key]))
    assert verify(pkg, [keys.a.pub]).ok
    return pkg


def test_extra_file_not_in_manifest(tmp_path: Path, keys: Keys) -> None:
    pairs = members_of(_genuine(tmp_path, keys))
    pairs.insert(1, ("code/backdoor.py", b"import os; os.system('id')\n"))
    pkg = write(tmp_path / "extra.mpkg", rebuild(pairs))
    refused(pkg, "files not listed in the manifest: code/backdoor.py", keys=(keys.a.pub,))
    unpack_refused(pkg, tmp_path, "code/backdoor.py", keys=(keys.a.pub,))
    # ...also after the signatures member, where a naive reader stops looking
    pairs = [*members_of(_genuine(tmp_path, keys)), ("code/late.py", b"x")]
    refused(write(tmp_path / "late.mpkg", rebuild(pairs)), "code/late.py", keys=(keys.a.pub,))


def test_missing_file(tmp_path: Path, keys: Keys) -> None:
    pairs = [(n, d) for n, d in members_of(_genuine(tmp_path, keys)) if n != "environment/requirements.lock"]
    pkg = write(tmp_path / "missing.mpkg", rebuild(pairs))
    refused(pkg, "files missing from the archive: environment/requirements.lock", keys=(keys.a.pub,))
    unpack_refused(pkg, tmp_path, "missing", keys=(keys.a.pub,))


def test_missing_manifest(tmp_path: Path, keys: Keys) -> None:
    pairs = [(n, d) for n, d in members_of(_genuine(tmp_path, keys)) if n != MANIFEST_NAME]
    refused(write(tmp_path / "nomanifest.mpkg", rebuild(pairs)), "has no mpkg/manifest.json", keys=(keys.a.pub,))


def test_extra_and_missing_reported_together(tmp_path: Path, keys: Keys) -> None:
    pairs = members_of(_genuine(tmp_path, keys))
    pairs = [("card/evil.md", b"x") if n == "card/MODEL_CARD.md" else (n, d) for n, d in pairs]
    result = refused(
        write(tmp_path / "both.mpkg", rebuild(pairs)),
        "files missing from the archive",
        "files not listed in the manifest",
        keys=(keys.a.pub,),
    )
    assert len(result.errors) == 2, result.errors


def test_members_reordered(tmp_path: Path, keys: Keys) -> None:
    pairs = members_of(_genuine(tmp_path, keys))
    pairs[0], pairs[1] = pairs[1], pairs[0]
    pkg = write(tmp_path / "order.mpkg", rebuild(pairs))
    refused(pkg, "members are not in canonical order", keys=(keys.a.pub,))
    unpack_refused(pkg, tmp_path, "canonical order", keys=(keys.a.pub,))
    pairs = members_of(_genuine(tmp_path, keys))
    m, s = pairs[-2], pairs[-1]
    assert (m[0], s[0]) == (MANIFEST_NAME, SIGNATURES_NAME)
    refused(write(tmp_path / "order2.mpkg", rebuild([*pairs[:-2], s, m])), keys=(keys.a.pub,))


def test_member_contents_swapped(tmp_path: Path, keys: Keys) -> None:
    """Two members' bytes exchanged under their own (correct) headers."""
    pairs = members_of(_genuine(tmp_path, keys))
    names = [n for n, _ in pairs]
    i, j = names.index("card/MODEL_CARD.md"), names.index("environment/requirements.lock")
    pairs[i], pairs[j] = (pairs[i][0], pairs[j][1]), (pairs[j][0], pairs[i][1])
    result = refused(write(tmp_path / "swap.mpkg", rebuild(pairs)), keys=(keys.a.pub,))
    text = "\n".join(result.errors)
    assert "card/MODEL_CARD.md" in text and "environment/requirements.lock" in text, text


def test_trailing_bytes(tmp_path: Path, keys: Keys) -> None:
    data = _genuine(tmp_path, keys).read_bytes()
    for tail in (b"\0", b"\0" * layout.BLOCK, b"\0" * layout.RECORD, b"PK\x05\x06" + bytes(18), b"x"):
        refused(
            write(tmp_path / "tail.mpkg", data + tail), "has bytes after the end of the archive", keys=(keys.a.pub,)
        )
    # a whole second archive appended (polyglot): also refused
    refused(write(tmp_path / "two.mpkg", data + data), "after the end of the archive", keys=(keys.a.pub,))


def test_truncated_end_of_archive(tmp_path: Path, keys: Keys) -> None:
    data = _genuine(tmp_path, keys).read_bytes()
    for cut in (1, layout.BLOCK, 2 * layout.BLOCK, len(data) - 1024):
        result = refused(write(tmp_path / "cut.mpkg", data[:-cut]), keys=(keys.a.pub,))
        assert any("truncated" in e for e in result.errors), result.errors
    refused(write(tmp_path / "empty.mpkg", b""), "truncated", keys=(keys.a.pub,))


def test_end_marker_without_record_padding(tmp_path: Path, keys: Keys) -> None:
    """Some tar writers stop after one or two zero blocks; the canonical form pads to 10 KiB."""
    pairs = members_of(_genuine(tmp_path, keys))
    chunks = b"".join(layout.member_header(n, len(d)) + d + b"\0" * layout.padding(len(d)) for n, d in pairs)
    refused(write(tmp_path / "one.mpkg", chunks + bytes(layout.BLOCK)), "truncated", keys=(keys.a.pub,))
    if (len(chunks) + 2 * layout.BLOCK) % layout.RECORD:
        refused(write(tmp_path / "two.mpkg", chunks + bytes(2 * layout.BLOCK)), "truncated", keys=(keys.a.pub,))


def test_terminal_line_injection_via_member_name(tmp_path: Path, keys: Keys) -> None:
    """An extra member named 'x\\nok: ...' is reported by name; the report must stay one line per
    problem, or `mpkg verify` prints a forged line."""
    pairs = members_of(_genuine(tmp_path, keys))
    pairs.insert(0, ("card/x\nok: victim 1.0.0 verified", b""))
    result = refused(write(tmp_path / "inject.mpkg", rebuild(pairs)), keys=(keys.a.pub,))
    assert all(len(e.splitlines()) == 1 for e in result.errors), result.errors
