"""Hostile key files given to --key or MPKG_KEYS.

Before: a FIFO hung `mpkg verify` forever (read_bytes waits for a writer), /dev/zero ended in
a MemoryError traceback, and a PEM file with two public keys trusted only the first, so a
package signed by the second was refused as "not signed by a trusted key". Now a key file
is a regular file of at most 64 KiB, every PEM block in it is accounted for, and a public
key file may hold several keys, all trusted (decision: spec/format.md §8).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.attacks.checks import Keys
from tests.attacks.craft import package, write
from tests.conftest import RunMpkg


@pytest.fixture()
def signed_by_b(tmp_path: Path, keys: Keys) -> Path:
    return write(tmp_path / "b.mpkg", package(keys=[keys.b.key]))


def _one_line(run_mpkg: RunMpkg, *args: str | Path, env: dict[str, str] | None = None) -> str:
    proc = run_mpkg(*args, env=env, expect=1)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mpkg: "), proc.stderr
    return lines[0]


def test_fifo_as_key_does_not_hang(run_mpkg: RunMpkg, tmp_path: Path, signed_by_b: Path, keys: Keys) -> None:
    fifo = tmp_path / "key.pub"
    os.mkfifo(fifo)
    expected = f"mpkg: {fifo}: is not a regular file; a key is a PEM file such as NAME.pub"
    assert _one_line(run_mpkg, "verify", signed_by_b, "--key", fifo) == expected  # run_mpkg: 240 s timeout
    assert _one_line(run_mpkg, "verify", signed_by_b, env={"MPKG_KEYS": str(fifo)}) == expected
    assert _one_line(run_mpkg, "sign", signed_by_b, "--key", fifo) == expected
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_device_as_key(run_mpkg: RunMpkg, signed_by_b: Path, device: str) -> None:
    assert _one_line(run_mpkg, "verify", signed_by_b, "--key", device) == (
        f"mpkg: {device}: is not a regular file; a key is a PEM file such as NAME.pub"
    )


def test_huge_key_file(run_mpkg: RunMpkg, tmp_path: Path, signed_by_b: Path, keys: Keys) -> None:
    """A 1 GiB sparse file that starts with a valid key: refused from its size, not read."""
    big = tmp_path / "big.pub"
    with open(big, "wb") as f:
        f.write(keys.b.pub.read_bytes())
        f.truncate(1 << 30)
    assert _one_line(run_mpkg, "verify", signed_by_b, "--key", big) == (
        f"mpkg: {big}: is over 64 KiB; a key file holds PEM keys only"
    )


def test_two_keys_in_one_pem_file_are_both_trusted(
    run_mpkg: RunMpkg, tmp_path: Path, signed_by_b: Path, keys: Keys
) -> None:
    ring = tmp_path / "team.pub"
    ring.write_bytes(keys.a.pub.read_bytes() + b"\n" + keys.b.pub.read_bytes())
    proc = run_mpkg("verify", signed_by_b, "--key", ring, expect=0)
    assert f"valid signature by {ring} (key 2 of 2)" in proc.stderr
    both = write(tmp_path / "ab.mpkg", package(keys=[keys.a.key, keys.b.key]))
    proc = run_mpkg("verify", both, "--key", ring, expect=0)
    assert proc.stderr.count("valid (valid signature by") == 2, proc.stderr
    other = write(tmp_path / "c.mpkg", package(keys=[keys.c.key]))
    assert "no signature by a trusted key" in run_mpkg("verify", other, "--key", ring, expect=1).stderr


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("certificate", "holds a PEM 'CERTIFICATE' block; it must hold public keys (NAME.pub)"),
        ("private", "holds a PEM 'PRIVATE KEY' block; it must hold public keys (NAME.pub)"),
        ("unterminated", "has a malformed PEM block (BEGIN without a matching END)"),
        ("empty", "holds no PEM key"),
        ("garbage-key", "is not a valid PEM public key"),
    ],
)
def test_pem_blocks_that_are_not_public_keys(
    run_mpkg: RunMpkg, tmp_path: Path, signed_by_b: Path, keys: Keys, content: str, reason: str
) -> None:
    pub = keys.b.pub.read_bytes()
    data = {
        "certificate": pub + b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "private": pub + _private_pem(keys),
        "unterminated": pub + b"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n",
        "empty": b"# no key here\n",
        "garbage-key": b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    }[content]
    key = write(tmp_path / "k.pub", data)
    assert _one_line(run_mpkg, "verify", signed_by_b, "--key", key) == f"mpkg: {key}: {reason}"


def _private_pem(keys: Keys) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return keys.a.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_signing_key_file_with_two_private_keys(run_mpkg: RunMpkg, tmp_path: Path, keys: Keys) -> None:
    from cryptography.hazmat.primitives import serialization

    two = _private_pem(keys) + keys.b.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = write(tmp_path / "two.key", two)
    pkg = write(tmp_path / "p.mpkg", package())
    assert _one_line(run_mpkg, "sign", pkg, "--key", key) == (
        f"mpkg: {key}: holds 2 private keys; a signing key file holds exactly one"
    )
