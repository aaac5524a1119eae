"""Assertions shared by the hostile-package tests: refused by verify, refused by unpack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from mpkg._internal.trust.verify import VerificationResult, policy_for, verify
from mpkg._internal.unpack import unpack
from mpkg.errors import MpkgError
from mpkg_builder.signing import PrivateKey

from tests.attacks.craft import tree


@dataclass(frozen=True)
class Signer:
    key: PrivateKey
    pub: Path


@dataclass(frozen=True)
class Keys:
    a: Signer
    b: Signer
    c: Signer  # never trusted by the tests


def refused(
    path: Path, *expected: str, keys: tuple[Path, ...] = (), allow_unsigned: bool = False
) -> VerificationResult:
    """verify() must refuse ``path``, every reason one line, each ``expected`` in some reason."""
    result = verify(path, policy_for(keys, allow_unsigned=allow_unsigned))
    assert not result.ok, f"{path.name} was accepted"
    assert result.errors and all("\n" not in e and e.strip() for e in result.errors), result.errors
    for text in expected:
        assert any(text in e for e in result.errors), (text, result.errors)
    return result


def unpack_refused(
    path: Path, tmp: Path, *expected: str, keys: tuple[Path, ...] = (), allow_unsigned: bool = True
) -> None:
    """unpack must refuse ``path`` and write nothing anywhere under ``tmp``. The target sits
    three levels down (tmp/jail/a/b/unpacked), so a '../..' escape would land inside ``tmp``."""
    (tmp / "jail" / "a" / "b").mkdir(parents=True, exist_ok=True)
    target = tmp / "jail" / "a" / "b" / "unpacked"
    before = tree(tmp)
    with pytest.raises(MpkgError) as info:
        unpack(path, target, policy_for(keys, allow_unsigned=allow_unsigned))
    assert not target.exists() and not target.is_symlink()
    assert tree(tmp) == before
    text = info.value.diagnostics()
    for e in expected:
        assert e in text, (e, text)
