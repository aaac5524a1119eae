"""Fixtures for the registry tests: a real registry process, the local store, real packages."""

from __future__ import annotations

import json
import shutil
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mpkg_builder.registry.local import LocalBackend
from mpkg_builder.registry.oci import OciBackend

from tests.harness.hostile_registry import HostileRegistry, hostile_registry
from tests.harness.registry import (
    RegistryProcess,
    Store,
    TokenRegistry,
    oci_registry,
    oci_registry_token,
    trusting,
)

__all__ = [
    "HostileRegistry",
    "RegistryProcess",
    "Store",
    "TokenRegistry",
    "hostile_registry",
    "oci_registry",
    "oci_registry_token",
    "store",
    "trusting",
]

ROOT = Path(__file__).resolve().parents[3]

EXAMPLE = ROOT / "examples" / "iris-mlp"


@pytest.fixture(params=["oci", "local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "oci":
        reg: RegistryProcess = request.getfixturevalue("oci_registry")
        s = Store(OciBackend(reg.host, insecure=True), f"{reg.host}/team/iris-mlp", reg, None)
    else:
        home = tmp_path / "home"
        s = Store(LocalBackend(home), "team/iris-mlp", None, home)
    yield s
    s.backend.close()


def _set_version(src: Path, version: str) -> None:
    text = (src / "mpkg.toml").read_text()
    old = tomllib.loads(text)["package"]["version"]
    (src / "mpkg.toml").write_text(text.replace(f'version = "{old}"', f'version = "{version}"', 1))


@pytest.fixture(scope="session")
def make_package(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Build real packages from examples/iris-mlp with a given version, accuracy and key;
    ``major``: its ``label`` output loses its enum (a MAJOR change: output-enum-widened)."""
    from mpkg_builder.build import build_package

    cache: dict[tuple[str, float, str | None, bool], Path] = {}
    root = tmp_path_factory.mktemp("packages")

    def make(version: str, accuracy: float = 0.9667, key: Path | None = None, major: bool = False) -> Path:
        ident = (version, accuracy, str(key) if key else None, major)
        if ident not in cache:
            src = root / f"src-{len(cache)}"
            shutil.copytree(EXAMPLE, src)
            _set_version(src, version)
            if major:
                contract = json.loads((src / "contract.json").read_text())
                for field in contract["outputs"]:
                    field.pop("enum", None)
                (src / "contract.json").write_text(json.dumps(contract, indent=2))
            metrics = {"accuracy": accuracy, "log_loss": 0.0483}
            (src / "metrics.json").write_text(json.dumps(metrics, indent=2))
            out = root / f"iris-mlp-{version}-{len(cache)}.mpkg"
            build_package(src, out, key=key)
            cache[ident] = out
        return cache[ident]

    return make


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Two Ed25519 key pairs, name -> (private, public)."""
    from mpkg_builder.signing import keygen

    root = tmp_path_factory.mktemp("keys")
    out = {}
    for name in ("alice", "bob"):
        pair = keygen(root / name)
        out[name] = (pair.private_path, pair.public_path)
    return out


@pytest.fixture
def local_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "mpkg-home"
    monkeypatch.setenv("MPKG_HOME", str(home))
    yield home
