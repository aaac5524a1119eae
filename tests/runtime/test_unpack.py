"""Safe extraction (spec/format.md §10): verify first, write under a new folder, rename at the end."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from mpkg._internal.format.digests import hash_bytes
from mpkg._internal.format.package import read_manifest
from mpkg._internal.trust.verify import Policy
from mpkg._internal.unpack import unpack
from mpkg.errors import MpkgError, VerificationError


def _listing(root: Path) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, n), root) for d, ds, fs in os.walk(root) for n in ds + fs)


def test_unpacked_files_match_the_manifest(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for name, pkg in built.signed.items():
        target = tmp_path / "deep" / "er" / name  # missing parents are created
        result = unpack(pkg, target, Policy.from_paths([built.pub]))
        assert result.ok
        manifest = read_manifest(pkg)
        files = {f.path for f in manifest.files} | {"mpkg/manifest.json"}
        assert {p for p in _listing(target) if (target / p).is_file()} == files
        for entry in manifest.files:
            data = (target / entry.path).read_bytes()
            assert len(data) == entry.size and hash_bytes(data) == entry.digest
        assert (target / "mpkg" / "manifest.json").read_bytes() == manifest.to_bytes()
        assert not [p for p in tmp_path.rglob(".*") if p.name.startswith(f".{name}.")]  # staging removed


def test_refuses_an_existing_target(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(VerificationError, match="already exists"):
        unpack(built.signed["iris-mlp"], target, Policy.from_paths([built.pub]))
    assert _listing(target) == ["keep.txt"]
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(VerificationError, match="already exists"):
        unpack(built.signed["iris-mlp"], link, Policy.from_paths([built.pub]))
    assert not (tmp_path / "nowhere").exists()


def test_refuses_unverified_and_writes_nothing(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before = _listing(tmp_path)
    with pytest.raises(VerificationError, match="not signed"):
        unpack(built.unsigned["iris-mlp"], tmp_path / "out", Policy.from_paths([built.pub]))
    pkg = tmp_path / "tampered.mpkg"
    shutil.copyfile(built.signed["iris-mlp"], pkg)
    data = bytearray(pkg.read_bytes())
    data[600] ^= 1
    pkg.write_bytes(bytes(data))
    before = _listing(tmp_path)
    with pytest.raises(MpkgError):
        unpack(pkg, tmp_path / "out", Policy.from_paths([built.pub]))
    assert _listing(tmp_path) == before


def test_unsigned_with_explicit_opt_in(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert unpack(built.unsigned["churn-tabular"], tmp_path / "out", Policy.unsafe_allow_unsigned()).ok
    assert (tmp_path / "out" / "model" / "weights.safetensors").read_bytes() == (
        built.sources["churn-tabular"] / "weights.safetensors"
    ).read_bytes()


def test_target_whose_parent_is_a_file(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A refusal with a reason, not an OSError traceback."""
    (tmp_path / "file").write_text("x")
    with pytest.raises(MpkgError):
        unpack(built.signed["iris-mlp"], tmp_path / "file" / "out", Policy.from_paths([built.pub]))
    assert (tmp_path / "file").read_text() == "x"
