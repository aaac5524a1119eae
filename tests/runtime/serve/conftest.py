"""Fixtures: real .mpkg packages built once per session, and real ``mpkg serve`` subprocesses."""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from mpkg_builder.build import build_package
from mpkg_builder.signing import keygen
from servepkgs import RECIPES, write_source

from tests.harness.server import MPKG_SERVE, ServerProcess, server_env

__all__ = ["MPKG_SERVE", "ServerProcess", "server_env"]

MAX_BODY = 1024 * 1024


@dataclass
class ModelSource:
    """Real packages for the server tests, built from generated sources with ``build_package``.

    Signed with ``key`` (serve with ``--key pub``) unless the recipe says unsigned.
    Packages are built on first use and cached for the session.
    """

    root: Path
    key: Path
    pub: Path
    command: list[str] = field(default_factory=lambda: list(MPKG_SERVE))
    sources: dict[str, Path] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    _built: dict[str, str] = field(default_factory=dict)

    def path(self, key: str) -> str:
        """The .mpkg for recipe ``key`` (see servepkgs.RECIPES), built once."""
        if key not in self._built:
            recipe = RECIPES[key]
            src = write_source(self.root / "src" / key, recipe)
            out = self.root / "pkgs" / f"{key}-{recipe.name}-{recipe.version}.mpkg"
            result = build_package(src, out, key=self.key if recipe.signed else None)
            assert (result.name, result.version) == (recipe.name, recipe.version)
            assert bool(result.signed_by) == recipe.signed
            self.sources[key] = src
            self.digests[key] = result.digest
            self._built[key] = str(out)
        return self._built[key]


def manifest_digest(package: str) -> str:
    """The package digest computed independently of mpkg: sha256 of the manifest member."""
    with tarfile.open(package) as tar:
        member = tar.extractfile("mpkg/manifest.json")
        assert member is not None
        return "sha256:" + hashlib.sha256(member.read()).hexdigest()


def reference_probabilities(model_source: ModelSource, key: str, x: object) -> np.ndarray:
    """The reference answer from an independent onnxruntime session on the package's source graph
    (the iris packages have no code module, so the graph is the whole model)."""
    model_source.path(key)
    session = ort.InferenceSession(str(model_source.sources[key] / "model.onnx"), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["probabilities"], {"features": np.asarray(x, dtype=np.float32)})
    result: np.ndarray = probabilities
    return result


@pytest.fixture(scope="session")
def model_source(tmp_path_factory: pytest.TempPathFactory) -> ModelSource:
    root = tmp_path_factory.mktemp("serve-pkgs")
    (root / "pkgs").mkdir()
    pair = keygen(root / "signer")
    return ModelSource(root=root, key=pair.private_path, pub=pair.public_path)


@pytest.fixture
def start_server(model_source: ModelSource, tmp_path: Path) -> Iterator[object]:
    """Factory: start_server(*args, env=None) -> ServerProcess; killed at teardown if still up."""
    started: list[ServerProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ServerProcess:
        server = ServerProcess(model_source.command, args, tmp_path / f"server-{len(started)}.log", env)
        started.append(server)
        return server

    yield start
    for s in started:
        s.kill()


@pytest.fixture(scope="session")
def server(model_source: ModelSource, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One shared server with five signed packages, a 1 MiB body limit and a seeded split."""
    p = model_source.path
    s = ServerProcess(
        model_source.command,
        [
            p("iris1"),
            p("iris2"),
            p("tab"),
            p("echo"),
            p("crashy"),
            "--key",
            str(model_source.pub),
            "--max-body-bytes",
            "1MiB",
            "--split",
            "iris=1.0.0:70,1.1.0:30",
            "--split-seed",
            "7",
        ],
        tmp_path_factory.mktemp("server") / "server.log",
    )
    try:
        s.wait_ready()
        yield s
    finally:
        code = s.stop()
        assert code == 0, s.log()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c
