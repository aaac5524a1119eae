"""The signing keys the hostile-package tests use (two trusted, one never trusted)."""

from __future__ import annotations

import pytest
from mpkg_builder.signing import keygen, load_private_key

from tests.attacks.checks import Keys, Signer


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    root = tmp_path_factory.mktemp("attack-keys")
    signers = []
    for name, algorithm in (("a", "ed25519"), ("b", "ecdsa-p256"), ("c", "ed25519")):
        pair = keygen(root / name, algorithm)
        signers.append(Signer(load_private_key(pair.private_path), pair.public_path))
    return Keys(*signers)
