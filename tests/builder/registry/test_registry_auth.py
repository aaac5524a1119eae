"""Auth against a real token-protected registry: the bearer challenge flow and credentials."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest
from mpkg._internal.registry.auth import Credentials, docker_credentials, parse_challenge
from mpkg._internal.registry.refs import parse_ref
from mpkg._internal.registry.store import EMPTY_DATA
from mpkg.errors import RegistryError
from mpkg_builder.registry.lifecycle import open_backend
from mpkg_builder.registry.oci import OciBackend

from tests.harness.registry import TokenRegistry


def test_parse_challenge() -> None:
    c = parse_challenge('Bearer realm="http://h/token",service="reg",scope="repository:a/b:pull,push"')
    assert c is not None and c.scheme == "bearer"
    assert c.params == {"realm": "http://h/token", "service": "reg", "scope": "repository:a/b:pull,push"}
    basic = parse_challenge('Basic realm="x"')
    assert basic is not None and basic.scheme == "basic" and basic.params == {"realm": "x"}


def test_bearer_flow_with_credentials(oci_registry_token: TokenRegistry) -> None:
    t = oci_registry_token
    with OciBackend(t.registry.host, insecure=True, credentials=Credentials(t.username, t.password)) as b:
        digest = b.push_blob_bytes("secure/repo", b"hello")
        assert b.fetch_blob_bytes("secure/repo", digest) == b"hello"
        assert b.list_tags("secure/repo") == []
    assert any(s.startswith("repository:secure/repo:") and "push" in s for s in t.issuer.issued)
    statuses = [r.status for r in t.registry.requests()]
    assert 401 in statuses and 201 in statuses  # challenged first, then let in


def test_wrong_password_and_anonymous_are_refused(oci_registry_token: TokenRegistry) -> None:
    t = oci_registry_token
    with (
        OciBackend(t.registry.host, insecure=True, credentials=Credentials(t.username, "wrong")) as b,
        pytest.raises(RegistryError, match="refused the credentials"),
    ):
        b.push_blob_bytes("secure/repo", EMPTY_DATA)
    with OciBackend(t.registry.host, insecure=True) as b, pytest.raises(RegistryError, match=r"refused|authentication"):
        b.get_manifest("secure/repo", "latest")


def test_docker_config_auths(
    oci_registry_token: TokenRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = oci_registry_token
    config = tmp_path / "docker" / "config.json"
    config.parent.mkdir()
    token = base64.b64encode(f"{t.username}:{t.password}".encode()).decode()
    config.write_text(json.dumps({"auths": {f"http://{t.registry.host}": {"auth": token}}}))
    config.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert docker_credentials(t.registry.host, config) == Credentials(t.username, t.password)
    assert docker_credentials("other.example:5000", config) is None
    monkeypatch.setenv("DOCKER_CONFIG", str(config.parent))
    b = open_backend(parse_ref(f"{t.registry.host}/secure/repo"), insecure=True)
    try:
        assert b.push_blob_bytes("secure/repo", b"via docker config").startswith("sha256:")
    finally:
        b.close()


def test_docker_config_credential_helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    helper = tmp_path / "bin" / "docker-credential-mpkgtest"
    helper.parent.mkdir()
    helper.write_text('#!/bin/sh\nread host\necho "{\\"Username\\":\\"u-$host\\",\\"Secret\\":\\"p\\"}"\n')
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}:/usr/bin:/bin")
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"credHelpers": {"reg.example": "mpkgtest"}}))
    assert docker_credentials("reg.example", config) == Credentials("u-reg.example", "p")
    config.write_text("{not json")
    with pytest.raises(RegistryError, match="cannot read docker config"):
        docker_credentials("reg.example", config)
