"""Fixtures: real .mpkg packages built once per session, and real ``mpkg serve`` subprocesses."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mpkg_builder.signing import keygen

from tests.harness.server import ServerProcess
from tests.harness.serving import ModelSource


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
