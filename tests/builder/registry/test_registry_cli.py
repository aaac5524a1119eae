"""The push/pull/promote/rollback/history/gc commands through `mpkg` itself."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from mpkg._internal.format.package import read_info
from mpkg.cli import main

from tests.harness.registry import RegistryProcess, TokenRegistry

MakePackage = Callable[..., Path]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv",
    [
        ["pull", "Bad/Repo:1", "-o", "x.mpkg"],
        ["pull", "repo@sha256:123", "-o", "x.mpkg"],
        ["pull", "repo:bad:tag", "-o", "x.mpkg"],
        ["rollback", "repo:1.0.0", "--stage", "production"],
        ["history", "127.0.0.1:99999999/repo"],
        ["gc", "repo", "--older-than", "ninety days"],
        ["promote", "repo:1", "--to", "production", "--require", "f1 >= __import__('os')"],
        ["pull", "127.0.0.1:5000/repo:1", "-o", "x.mpkg", "--username", "u"],
    ],
)
def test_bad_input_is_a_one_line_usage_error(
    capsys: pytest.CaptureFixture[str], local_home: Path, argv: list[str]
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("mpkg: "), err


def test_a_version_is_no_alias(capsys: pytest.CaptureFixture[str], local_home: Path) -> None:
    code, out, err = run(capsys, "promote", "repo:1", "--to", "1.0.0")
    assert code == 2 and out == "" and "is not an alias" in err and len(err.strip().splitlines()) == 1


def test_registry_down_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, out, err = run(
        capsys, "pull", f"127.0.0.1:{port}/team/x:1", "-o", str(tmp_path / "x.mpkg"), "--insecure", "--allow-unsigned"
    )
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "cannot connect" in err
    code, out, _ = run(capsys, "history", f"127.0.0.1:{port}/team/x", "--insecure", "--json")
    assert code == 1 and json.loads(out)["ok"] is False
    assert not list(tmp_path.iterdir())


def test_cli_lifecycle_on_a_registry(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, oci_registry: RegistryProcess, make_package: MakePackage
) -> None:
    name = f"{oci_registry.host}/team/iris-mlp"
    v1, v2 = make_package("1.0.0", accuracy=0.9), make_package("2.0.0", accuracy=0.95)
    for pkg in (v1, v2):
        code, out, err = run(capsys, "push", str(pkg), name, "--insecure", "--json")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["ok"] and doc["digest"] == read_info(pkg).digest
    # skopeo, an independent client, reads the manifest and its annotations
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{name}:1.0.0"],
        capture_output=True,
        check=True,
        env={**os.environ, "HOME": str(tmp_path)},
    ).stdout
    manifest = json.loads(raw)
    assert manifest["artifactType"] == "application/vnd.mpkg.package.v1"
    assert manifest["annotations"]["dev.mpkg.package.digest"] == read_info(v1).digest
    assert manifest["annotations"]["dev.mpkg.package.version"] == "1.0.0"
    # stored in pieces whose concatenation is the .mpkg file (spec/registry.md §2.1)
    assert manifest["layers"][0]["mediaType"] == "application/vnd.mpkg.package.v1.tar.part"
    assert sum(layer["size"] for layer in manifest["layers"]) == v1.stat().st_size
    assert manifest["annotations"]["dev.mpkg.package.size"] == str(v1.stat().st_size)

    assert run(capsys, "promote", f"{name}:1.0.0", "--to", "production", "--insecure")[0] == 0
    code, out, err = run(
        capsys, "promote", f"{name}:2.0.0", "--to", "production", "--insecure", "--require", "accuracy>=production+0.1"
    )
    assert code == 1 and "fail" in err and out == ""
    code, out, _ = run(
        capsys,
        "promote",
        f"{name}:2.0.0",
        "--to",
        "production",
        "--insecure",
        "--require",
        "accuracy>=production+0.01",
        "--json",
    )
    assert code == 0 and json.loads(out)["to"]["version"] == "2.0.0"
    code, out, _ = run(capsys, "rollback", name, "--stage", "production", "--insecure", "--json")
    assert code == 0 and json.loads(out)["to"]["version"] == "1.0.0"
    code, out, _ = run(capsys, "history", name, "--insecure", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"]
    assert [e["action"] for e in doc["events"]] == ["push", "push", "promote", "promote", "rollback"]
    code, out, _ = run(capsys, "history", name, "--insecure")
    assert code == 0 and "rollback production" in out
    code, out, err = run(capsys, "gc", name, "--older-than", "90d", "--insecure")
    assert code == 0 and "nothing to delete" in err
    code, out, err = run(
        capsys, "pull", f"{name}:production", "-o", str(tmp_path / "p.mpkg"), "--insecure", "--allow-unsigned"
    )
    assert code == 0 and (tmp_path / "p.mpkg").read_bytes() == v1.read_bytes()


def test_cli_local_store_and_password_stdin(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    local_home: Path,
    make_package: MakePackage,
    oci_registry_token: TokenRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pkg = make_package("1.0.0")
    code, _, err = run(capsys, "push", str(pkg), "iris-mlp")
    assert code == 0 and "iris-mlp:1.0.0" in err
    assert (local_home / "repositories/iris-mlp/_tags/1.0.0").is_file()
    code, _, _ = run(capsys, "pull", "iris-mlp:1.0.0", "-o", str(tmp_path / "l.mpkg"), "--allow-unsigned")
    assert code == 0 and (tmp_path / "l.mpkg").read_bytes() == pkg.read_bytes()
    t = oci_registry_token
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker"))
    monkeypatch.setattr("sys.stdin", io.StringIO(t.password + "\n"))
    code, _, err = run(
        capsys,
        "push",
        str(pkg),
        f"{t.registry.host}/secure/iris-mlp",
        "--insecure",
        "--username",
        t.username,
        "--password-stdin",
    )
    assert code == 0, err
    monkeypatch.setattr("sys.stdin", io.StringIO("wrong\n"))
    code, _, err = run(
        capsys,
        "pull",
        f"{t.registry.host}/secure/iris-mlp:1.0.0",
        "-o",
        str(tmp_path / "t.mpkg"),
        "--insecure",
        "--allow-unsigned",
        "--username",
        t.username,
        "--password-stdin",
    )
    assert code == 1 and len(err.strip().splitlines()) == 1 and "refused" in err
