"""verify(): the steps of spec/format.md §9, the policy, and the result it returns."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from mpkg._internal.format.package import read_info, read_manifest
from mpkg._internal.trust.verify import Policy, policy_for, verify, verify_or_raise
from mpkg.errors import SignatureError, VerificationError


def test_valid_signed_package(built) -> None:  # type: ignore[no-untyped-def]
    for name, path in built.signed.items():
        result = verify(path, [built.pub])
        assert result.ok and result.errors == ()
        assert str(result.digest) == built.digests[name]
        assert result.manifest is not None and result.manifest.name == name
        assert [(s.trusted, s.valid) for s in result.signatures] == [(True, True)]
        doc = result.to_json()
        assert doc["ok"] is True and doc["digest"] == built.digests[name] and doc["name"] == name
        json.dumps(doc)  # serialisable as is


def test_policy_fails_closed(built) -> None:  # type: ignore[no-untyped-def]
    signed, unsigned = built.signed["iris-mlp"], built.unsigned["iris-mlp"]
    assert not verify(signed).ok  # signed, but no key given
    assert "no trusted keys given" in verify(signed).errors[0]
    assert verify(signed, Policy.unsafe_allow_unsigned()).ok  # explicitly not checking signatures
    assert not verify(unsigned, [built.pub]).ok
    assert "the package is not signed" in verify(unsigned).errors[0]
    assert verify(unsigned, Policy.unsafe_allow_unsigned()).ok
    assert verify(signed, Policy.from_paths([built.pub])).ok


def test_policy_is_frozen_and_only_the_unsafe_factory_opens_it(built) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError):
        Policy(allow_unsigned=True)  # type: ignore[call-arg]  # no quiet way out
    with pytest.raises(dataclasses.FrozenInstanceError):
        Policy().allow_unsigned = True  # type: ignore[misc]
    unsafe = Policy.unsafe_allow_unsigned([built.pub])
    assert unsafe.allow_unsigned and "allow_unsigned=True" in repr(unsafe) and len(unsafe.keys) == 1
    assert not dataclasses.replace(unsafe, keys=()).allow_unsigned  # a copy fails closed again
    assert not Policy.from_paths([built.pub]).allow_unsigned
    assert policy_for([built.pub], allow_unsigned=False) == Policy.from_paths([built.pub])
    assert policy_for([], allow_unsigned=True) == Policy.unsafe_allow_unsigned()


def test_allow_unsigned_keyword_is_gone(built) -> None:  # type: ignore[no-untyped-def]
    """The policy is the one way in: a keyword that a Policy argument used to silently override is refused."""
    with pytest.raises(TypeError, match="allow_unsigned"):
        verify(built.unsigned["iris-mlp"], allow_unsigned=True)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="allow_unsigned"):
        verify_or_raise(built.unsigned["iris-mlp"], allow_unsigned=True)  # type: ignore[call-arg]


def test_keys_are_given_once(built) -> None:  # type: ignore[no-untyped-def]
    """``keys=`` is the shorthand issue 12 promises (``mpkg.load(REF, keys=...)``); given with a
    Policy or with positional keys it is refused rather than one of them being ignored."""
    assert verify(built.signed["iris-mlp"], keys=[built.pub]).ok
    assert not verify(built.unsigned["iris-mlp"], keys=[built.pub]).ok
    with pytest.raises(TypeError, match="once"):
        verify(built.signed["iris-mlp"], Policy.unsafe_allow_unsigned(), keys=[built.pub])
    with pytest.raises(TypeError, match="once"):
        verify(built.signed["iris-mlp"], [built.pub], keys=[built.pub])


def test_signed_and_unsigned_builds_share_the_digest(built) -> None:  # type: ignore[no-untyped-def]
    for name in built.signed:
        assert read_manifest(built.signed[name]).digest == read_manifest(built.unsigned[name]).digest
        info = read_info(built.signed[name])
        assert info.digest == built.digests[name] and info.size == built.signed[name].stat().st_size


def test_progress_reports_every_member(built) -> None:  # type: ignore[no-untyped-def]
    seen: list[int] = []
    assert verify(built.unsigned["churn-tabular"], Policy.unsafe_allow_unsigned(), progress=seen.append).ok
    assert len(seen) == len(read_manifest(built.unsigned["churn-tabular"]).files) and all(n >= 0 for n in seen)


def test_verify_never_raises_for_bad_input(tmp_path: Path) -> None:
    (tmp_path / "empty.mpkg").write_bytes(b"")
    (tmp_path / "noise.mpkg").write_bytes(bytes(range(256)) * 100)
    for path in (tmp_path / "empty.mpkg", tmp_path / "noise.mpkg", tmp_path / "missing.mpkg", tmp_path):
        result = verify(path, Policy.unsafe_allow_unsigned())
        assert not result.ok and result.digest is None and result.manifest is None
        assert len(result.errors) == 1 and str(path) in result.errors[0]


def test_problems_are_collected_across_steps(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A wrong file digest and a signature problem are reported together, one line each."""
    pkg = tmp_path / "p.mpkg"
    shutil.copyfile(built.signed["iris-mlp"], pkg)
    from mpkg._internal.format.archive import PackageFile

    with PackageFile(pkg) as f:
        weights = f.by_name["model/model.onnx"]
    data = bytearray(pkg.read_bytes())
    data[weights.data_offset + 10] ^= 0xFF
    pkg.write_bytes(bytes(data))
    other = tmp_path / "other"
    from mpkg_builder.signing import keygen

    pair = keygen(other)
    result = verify(pkg, [pair.public_path])
    assert not result.ok and result.digest is not None  # the manifest still parsed: its digest is known
    text = "\n".join(result.errors)
    assert "model/model.onnx: content does not match its digest" in text
    assert "no signature by a trusted key" in text
    assert len(result.errors) == 2


def test_verify_or_raise(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert verify_or_raise(built.signed["iris-mlp"], [built.pub]).ok
    with pytest.raises(VerificationError, match="not signed"):
        verify_or_raise(built.unsigned["iris-mlp"], [built.pub])


def test_bad_key_file_is_a_caller_error(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "junk.pub").write_text("not a key")
    with pytest.raises(SignatureError, match="holds no PEM key"):
        verify(built.signed["iris-mlp"], [tmp_path / "junk.pub"])
    with pytest.raises(SignatureError, match="cannot be read"):
        verify(built.signed["iris-mlp"], [tmp_path / "absent.pub"])
    with pytest.raises(SignatureError, match=r"it must hold public keys \(NAME\.pub\)"):
        verify(built.signed["iris-mlp"], [built.key])
