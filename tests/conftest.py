"""Fixtures shared across the suite: the `mpkg` command, and the two examples built once.

Examples are copied outside the git work tree before building, so ``lineage.git`` is
absent and the digest depends on the example's content only (and the builder's
mpkg/Python/platform, recorded in ``lineage.builder``).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
MPKG = Path(sys.executable).parent / "mpkg"

RunMpkg = Callable[..., subprocess.CompletedProcess[str]]


def _run(
    *args: str | os.PathLike[str], cwd: Path | None = None, env: dict[str, str] | None = None, expect: int | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `mpkg` command; never a traceback on stderr, and the exit code if given."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("MPKG_KEYS", "MPKG_KEY_PASSPHRASE")}
    full_env.update(env or {})
    proc = subprocess.run(
        [str(MPKG), *map(str, args)], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=240
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    if expect is not None:
        assert proc.returncode == expect, (proc.returncode, proc.stdout, proc.stderr)
    return proc


@pytest.fixture(scope="session")
def _mpkg_homes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mpkg-homes")


_HOMES = itertools.count()


@pytest.fixture(autouse=True)
def _isolated_mpkg_home(_mpkg_homes: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Client state (high-water marks, caches, the local store) is each test's own, never the
    user's ~/.mpkg: a test's registry on a reused port must not meet another test's (or another
    run's) history. Created by whatever writes there first."""
    monkeypatch.setenv("MPKG_HOME", str(_mpkg_homes / f"home-{next(_HOMES)}"))


@pytest.fixture(scope="session")
def run_mpkg() -> RunMpkg:
    """``run_mpkg(*args, cwd=, env=, expect=)`` -> CompletedProcess (text)."""
    assert MPKG.exists(), f"the mpkg console script is not installed next to {sys.executable}"
    return _run


def copy_outside_git(name: str, dest: Path) -> Path:
    """A copy of examples/NAME at ``dest`` (outside any git work tree)."""
    shutil.copytree(EXAMPLES / name, dest, symlinks=True)
    return dest


@dataclass(frozen=True)
class Built:
    """The examples built once per session: unsigned, and signed with ``key``/``pub`` (Ed25519).
    Shared by many tests: copy a package before mutating it."""

    sources: dict[str, Path]
    unsigned: dict[str, Path]
    signed: dict[str, Path]
    digests: dict[str, str]
    key: Path
    pub: Path


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    from mpkg_builder.build import build_package
    from mpkg_builder.signing import keygen

    root = tmp_path_factory.mktemp("built-examples")
    pair = keygen(root / "session")
    sources, unsigned, signed, digests = {}, {}, {}, {}
    for name in ("iris-mlp", "churn-tabular"):
        sources[name] = copy_outside_git(name, root / "src" / name)
        unsigned[name] = root / f"{name}.mpkg"
        signed[name] = root / f"{name}.signed.mpkg"
        digests[name] = build_package(sources[name], unsigned[name]).digest
        assert build_package(sources[name], signed[name], key=pair.private_path).digest == digests[name]
    return Built(sources, unsigned, signed, digests, pair.private_path, pair.public_path)
