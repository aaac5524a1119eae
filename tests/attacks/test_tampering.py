"""Sign-mutate-verify fuzzing of a real signed package (the iris-mlp example).

Every region of the file is hit: tar headers, member data, padding, the manifest, the
signature envelope and the end-of-archive trailer; plus truncation at many points and
appended bytes. Every mutated package must fail verification with one-line reasons, and
no exception may escape ``verify``. The seed is fixed, so a failure reproduces.
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from mpkg._internal.format import layout
from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.manifest import MANIFEST_NAME, SIGNATURES_NAME
from mpkg._internal.trust.verify import Policy, verify

SEED = 20250601


@dataclass(frozen=True)
class Target:
    data: bytes
    path: Path  # mutated copies are written here
    policy: Policy
    regions: list[tuple[int, int, str]]  # [start, end) byte ranges with a label

    def region(self, pos: int) -> str:
        return next(label for start, end, label in self.regions if start <= pos < end)

    def check(self, data: bytes) -> list[str]:
        """The errors verify reports for ``data``; asserts they are one line each."""
        self.path.write_bytes(data)
        result = verify(self.path, self.policy)  # an exception escaping here fails the test
        assert all(e and "\n" not in e for e in result.errors), result.errors
        return list(result.errors)


@pytest.fixture(scope="module")
def target(built, tmp_path_factory: pytest.TempPathFactory) -> Target:  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("tamper")
    src = work / "iris.mpkg"
    shutil.copyfile(built.signed["iris-mlp"], src)
    policy = Policy.from_paths([built.pub])
    assert verify(src, policy).ok
    regions: list[tuple[int, int, str]] = []
    with PackageFile(src) as pkg:
        for m in pkg.members:
            kind = m.name if m.name in (MANIFEST_NAME, SIGNATURES_NAME) else "file"
            regions.append((m.header_offset, m.data_offset, f"header {m.name}"))
            regions.append((m.data_offset, m.data_offset + m.size, f"data[{kind}] {m.name}"))
            regions.append((m.data_offset + m.size, m.end, f"padding {m.name}"))
        regions.append((pkg.members[-1].end, pkg.size, "trailer"))
        assert not any(m.name.endswith(".zst") for m in pkg.members)  # v1: nothing is compressed
    assert any(label.startswith("data[mpkg/signatures.json]") for _, _, label in regions)
    return Target(src.read_bytes(), work / "mutated.mpkg", policy, [r for r in regions if r[0] < r[1]])


def _flip(data: bytes, pos: int, bit: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 1 << bit
    return bytes(b)


def test_bit_flips_in_every_region_are_detected(target: Target) -> None:
    """One flip per 512-byte block, a dense sweep of every header, the manifest, the signature
    envelope and the files, and random positions: none may verify."""
    rng = random.Random(SEED)
    size = len(target.data)
    positions = {rng.randrange(block, min(block + layout.BLOCK, size)) for block in range(0, size, layout.BLOCK)}
    for start, end, label in target.regions:
        step = {
            "header": 12,
            "data[mpkg/manifest.json]": 24,
            "data[mpkg/signatures.json]": 1,
            "data[file]": 16,
            "padding": 64,
            "trailer": 256,
        }.get(label.split(" ")[0], 0)
        if step:
            positions.update(range(start + rng.randrange(step), end, step))
    positions.update(rng.randrange(size) for _ in range(100))
    undetected = []
    for pos in sorted(positions):
        bit = rng.randrange(8)
        if not target.check(_flip(target.data, pos, bit)):
            undetected.append((pos, bit, target.region(pos)))
    assert len(positions) > 1200
    assert not undetected, f"mutations that still verify: {undetected}"


def test_bit_flips_in_the_small_files_are_detected(target: Target) -> None:
    """The non-weights files (code, card, lockfile, lineage, example) are the members v0 stored as
    zstd, where some flips decoded to identical content. Now: every bit of the smallest one, and a
    random bit of every 4th byte of the others, must fail verification. (An exhaustive sweep of
    every bit of all of them — ~50k flips, 80 s — found none that verifies.)"""
    rng = random.Random(SEED + 1)
    small = [
        (s, e, label)
        for s, e, label in target.regions
        if label.startswith("data[file]") and not label.split(" ", 1)[1].startswith("model/")
    ]
    assert len(small) >= 5
    smallest = min(small, key=lambda r: r[1] - r[0])
    flips = [(pos, bit) for pos in range(smallest[0], smallest[1]) for bit in range(8)]
    for start, end, _ in small:
        if (start, end) != smallest[:2]:
            flips.extend((pos, rng.randrange(8)) for pos in range(start + rng.randrange(4), end, 4))
    undetected = [
        (pos, bit, target.region(pos)) for pos, bit in flips if not target.check(_flip(target.data, pos, bit))
    ]
    assert not undetected, f"flips that still verify: {undetected[:20]} ({len(undetected)} in all)"


def test_truncation_anywhere_is_detected(target: Target) -> None:
    rng = random.Random(SEED + 2)
    size = len(target.data)
    cuts = set(range(0, size, layout.BLOCK)) | {rng.randrange(size) for _ in range(150)} | {size - 1, 1}
    accepted = [cut for cut in sorted(cuts) if not target.check(target.data[:cut])]
    assert not accepted, f"truncated packages that verify: {accepted}"


@pytest.mark.parametrize(
    "tail",
    [b"\0", b"\n", bytes(layout.BLOCK), bytes(layout.RECORD), b"\xff" * 7, bytes(range(256)) * 40],
    ids=["nul", "newline", "block", "record", "ff", "noise"],
)
def test_appended_bytes_are_detected(target: Target, tail: bytes) -> None:
    errors = target.check(target.data + tail)
    assert any("bytes after the end of the archive" in e for e in errors), errors


def test_inserted_and_deleted_bytes_are_detected(target: Target) -> None:
    rng = random.Random(SEED + 3)
    size = len(target.data)
    for _ in range(60):
        pos = rng.randrange(size)
        assert target.check(target.data[:pos] + bytes([rng.randrange(256)]) + target.data[pos:])
        assert target.check(target.data[:pos] + target.data[pos + 1 :])


def test_cli_refuses_mutations_without_traceback(target: Target, built, run_mpkg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """One mutation per kind of region through `mpkg verify`: exit 1, one line per problem."""
    picks: dict[str, int] = {}
    for start, _end, label in target.regions:
        picks.setdefault(label.split(" ")[0], start + 1)
    kinds = ("header", "data[file]", "data[mpkg/manifest.json]", "data[mpkg/signatures.json]", "trailer")
    for kind in kinds:
        pos = picks[kind]
        pkg = tmp_path / f"{kind.replace('/', '_')}.mpkg"
        pkg.write_bytes(_flip(target.data, pos, 0))
        proc = run_mpkg("verify", pkg, "--key", built.pub, expect=1)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert lines and all(line.startswith(("mpkg: ", "signature ")) for line in lines), (kind, proc.stderr)
        assert proc.stdout == ""
    proc = run_mpkg("verify", pkg, "--key", built.pub, "--json", expect=1)
    assert proc.stdout.count("\n") == 1 and '"ok": false' in proc.stdout
