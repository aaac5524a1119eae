"""A package path replaced after verification: what is used must be what was verified.

The attack ("unpack reads twice"): a signed iris-mlp 1.0.0 is verified, then the path is
renamed over by an unsigned 6.6.6 (same files, another manifest) before the command reads it
again. Before, `mpkg unpack` reported the signed 1.0.0 and wrote the unsigned 6.6.6 manifest,
and `mpkg sign` verified one file and signed whatever the path named next. Each command must
open the package once, verify, and read everything else from that open file.

The swap is made at an exact moment by an audit hook (PEP 578): right after the package
path is first opened, at the next file the process opens or directory it creates (for
unpack: its staging directory; for sign: its output). With one open file the swap changes
nothing; with a second open, the second open reads the attacker's file.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mpkg._internal.format.package import read_manifest
from mpkg.cli import main

from tests.attacks.craft import members_of, rebuild, write
from tests.conftest import Built

_hook: Callable[[str, tuple[Any, ...]], None] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _hook is not None:
        _hook(event, args)


sys.addaudithook(_audit)  # hooks cannot be removed; this one does nothing outside swap_after_open


@contextlib.contextmanager
def swap_after_open(victim: Path, attacker: Path) -> Iterator[list[str]]:
    """Rename ``attacker`` over ``victim`` at the first open/mkdir/mmap after ``victim`` was
    first opened; yields a list that records the moment ("swapped at <event> <path>")."""
    global _hook
    done: list[str] = []
    opened = False
    target = os.fsencode(victim)

    def hook(event: str, args: tuple[Any, ...]) -> None:
        nonlocal opened
        if done or event not in ("open", "os.mkdir", "mmap.__new__"):
            return
        path = args[0] if args and isinstance(args[0], (str, bytes, os.PathLike)) else None
        if not opened:
            opened = path is not None and os.fsencode(path) == target
            return
        done.append(f"swapped at {event} {path}")
        os.replace(attacker, victim)

    _hook = hook
    try:
        yield done
    finally:
        _hook = None


@pytest.fixture(scope="module")
def evil(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The signed iris-mlp 1.0.0 with every file kept but the manifest re-versioned 6.6.6 and
    no signature: the files' bytes and offsets are the victim's, only the manifest differs."""
    from mpkg._internal.format import canonical
    from mpkg._internal.format.manifest import MANIFEST_NAME, SIGNATURES_NAME

    pairs = [(n, d) for n, d in members_of(built.signed["iris-mlp"]) if n != SIGNATURES_NAME]
    doc = json.loads(dict(pairs)[MANIFEST_NAME])
    doc["version"] = "6.6.6"
    pairs = [(n, canonical.dumps(doc) if n == MANIFEST_NAME else d) for n, d in pairs]
    return write(tmp_path_factory.mktemp("evil") / "evil.mpkg", rebuild(pairs))


def _victim_and_attacker(built: Built, evil: Path, tmp: Path) -> tuple[Path, Path]:
    victim, attacker = tmp / "iris-mlp-1.0.0.mpkg", tmp / "evil.mpkg"
    shutil.copyfile(built.signed["iris-mlp"], victim)
    shutil.copyfile(evil, attacker)
    return victim, attacker


def _cli(*args: str | Path) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in args])
    return code, out.getvalue()


def test_unpack_reads_twice(built: Built, evil: Path, tmp_path: Path) -> None:
    victim, attacker = _victim_and_attacker(built, evil, tmp_path)
    signed = read_manifest(victim)
    with swap_after_open(victim, attacker) as swapped:
        code, out = _cli("unpack", victim, tmp_path / "out", "--key", built.pub, "--json")
    assert swapped, "the swap never happened"
    assert code == 0 and json.loads(out)["version"] == "1.0.0"
    written = (tmp_path / "out" / "mpkg" / "manifest.json").read_bytes()
    assert written == signed.to_bytes(), "unpack wrote a manifest it did not verify"
    from mpkg._internal.format.digests import hash_bytes

    for entry in signed.files:
        assert hash_bytes((tmp_path / "out" / entry.path).read_bytes()) == entry.digest
    assert read_manifest(victim).version == "6.6.6"  # the path now names the attacker's file


def test_sign_reads_twice(built: Built, evil: Path, tmp_path: Path) -> None:
    """Signing verifies, then copies the package into the signed output: from the same file."""
    from mpkg._internal.trust.verify import verify
    from mpkg_builder.signing import sign

    victim, attacker = _victim_and_attacker(built, evil, tmp_path)
    shutil.copyfile(built.unsigned["iris-mlp"], victim)
    with swap_after_open(victim, attacker) as swapped:
        sign(victim, built.key)
    assert swapped
    result = verify(victim, [built.pub])
    assert result.ok and result.manifest is not None and result.manifest.version == "1.0.0", result.errors


def test_load_reads_twice(built: Built, evil: Path, tmp_path: Path) -> None:
    """mpkg.load maps and imports from the file it verified (it did before; kept so)."""
    import mpkg

    victim, attacker = _victim_and_attacker(built, evil, tmp_path)
    with swap_after_open(victim, attacker) as swapped, mpkg.load(victim, [built.pub]) as model:
        assert (model.name, model.version, model.digest) == ("iris-mlp", "1.0.0", built.digests["iris-mlp"])
        model.smoke_test()
    assert swapped


def test_verify_run_reads_twice(built: Built, evil: Path, tmp_path: Path) -> None:
    victim, attacker = _victim_and_attacker(built, evil, tmp_path)
    with swap_after_open(victim, attacker) as swapped:
        code, out = _cli("verify", victim, "--key", built.pub, "--run", "--json")
    doc = json.loads(out)
    assert swapped
    assert code == 0 and doc["ok"] and doc["version"] == "1.0.0" and doc["smoke_test"]["ok"], doc
