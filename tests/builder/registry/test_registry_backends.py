"""The storage interface, tested the same way against a real registry and the local store."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mpkg._internal.registry.store import EMPTY_DATA, PACKAGE_ARTIFACT_TYPE, PACKAGE_LAYER_TYPE, digest_bytes
from mpkg.errors import RegistryError
from mpkg_builder.registry.backend import Backend, artifact_manifest, sha256_file
from mpkg_builder.registry.local import LocalBackend
from mpkg_builder.registry.oci import OciBackend

from tests.harness.registry import RegistryProcess


@pytest.fixture(params=["oci", "local"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "oci":
        reg: RegistryProcess = request.getfixturevalue("oci_registry")
        b: Backend = OciBackend(reg.host, insecure=True, chunk_size=64 * 1024, monolithic_limit=100 * 1024)
    else:
        b = LocalBackend(tmp_path / "home")
    yield b
    b.close()


def _blob(tmp_path: Path, size: int, seed: int = 0) -> Path:
    path = tmp_path / f"blob-{size}-{seed}"
    data = hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1)
    path.write_bytes(data[:size])
    return path


@pytest.mark.parametrize("size", [0, 1, 99 * 1024, 300 * 1024 + 7])  # empty, tiny, mono, chunked
def test_blob_round_trip_and_idempotent(backend: Backend, tmp_path: Path, size: int) -> None:
    path = _blob(tmp_path, size)
    digest, n = sha256_file(path)
    assert not backend.blob_exists("team/blobs", digest)
    assert backend.push_blob_file("team/blobs", path, digest, n) is True
    assert backend.blob_exists("team/blobs", digest)
    assert backend.push_blob_file("team/blobs", path, digest, n) is False  # never re-uploaded
    out = io.BytesIO()
    backend.fetch_blob("team/blobs", digest, n, out)
    assert out.getvalue() == path.read_bytes()


def test_push_refuses_a_blob_whose_digest_lies(backend: Backend, tmp_path: Path) -> None:
    path = _blob(tmp_path, 200 * 1024)
    wrong = digest_bytes(b"something else")
    with pytest.raises(RegistryError):
        backend.push_blob_file("r", path, wrong, 200 * 1024)
    assert not backend.blob_exists("r", wrong)


def test_manifests_tags_and_delete(backend: Backend) -> None:
    backend.push_blob_bytes("r", EMPTY_DATA)
    layer = backend.push_blob_bytes("r", b"payload")
    data = artifact_manifest(
        PACKAGE_ARTIFACT_TYPE, [{"mediaType": PACKAGE_LAYER_TYPE, "digest": layer, "size": 7}], {"k": "v"}
    )
    digest = backend.put_manifest("r", "1.0.0", data)
    assert digest == digest_bytes(data)
    assert backend.put_manifest("r", "latest", data) == digest
    got = backend.get_manifest("r", "1.0.0")
    assert got is not None and got.data == data and got.digest == digest
    by_digest = backend.get_manifest("r", digest)
    assert by_digest is not None and by_digest.data == data
    assert backend.get_manifest("r", "nope") is None
    assert sorted(backend.list_tags("r")) == ["1.0.0", "latest"]
    assert backend.list_tags("never-pushed") == []
    backend.delete_manifest("r", digest)
    assert backend.get_manifest("r", "1.0.0") is None
    assert backend.list_tags("r") == []
    backend.delete_blob("r", layer)
    assert not backend.blob_exists("r", layer)


def test_fetch_refuses_corrupt_size_or_digest(backend: Backend) -> None:
    digest = backend.push_blob_bytes("r", b"abc")
    with pytest.raises(RegistryError, match=r"digest|size|larger"):
        backend.fetch_blob("r", digest, 2, io.BytesIO())


def test_tampered_registry_storage_is_refused(oci_registry: RegistryProcess, tmp_path: Path) -> None:
    with OciBackend(oci_registry.host, insecure=True) as b:
        path = _blob(tmp_path, 5000)
        digest, n = sha256_file(path)
        b.push_blob_file("r", path, digest, n)
        hexpart = digest.split(":")[1]
        data = oci_registry.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart
        tampered = bytearray((data / "data").read_bytes())
        tampered[100] ^= 0xFF
        (data / "data").write_bytes(bytes(tampered))
        with pytest.raises(RegistryError, match="tampered"):
            b.fetch_blob("r", digest, n, io.BytesIO())


def test_tampered_local_store_is_refused(tmp_path: Path) -> None:
    b = LocalBackend(tmp_path / "home")
    digest = b.push_blob_bytes("r", b"hello world")
    blob = tmp_path / "home/blobs/sha256" / digest.split(":")[1]
    blob.write_bytes(b"hello wOrld")
    with pytest.raises(RegistryError, match=r"tampered|digest"):
        b.fetch_blob("r", digest, 11, io.BytesIO())
    with pytest.raises(RegistryError):
        b.fetch_blob_bytes("r", digest)


def test_chunked_upload_really_uses_patch(oci_registry: RegistryProcess, tmp_path: Path) -> None:
    path = _blob(tmp_path, 200 * 1024, seed=3)
    digest, n = sha256_file(path)
    with OciBackend(oci_registry.host, insecure=True, chunk_size=64 * 1024, monolithic_limit=1024) as b:
        b.push_blob_file("chunky", path, digest, n)
    patches = [r for r in oci_registry.requests() if r.method == "PATCH" and "chunky" in r.path]
    assert len(patches) == 4 and all(r.status == 202 for r in patches)  # 64+64+64+8 KiB


def test_registry_down_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with OciBackend(f"127.0.0.1:{port}", insecure=True) as b, pytest.raises(RegistryError) as err:
        b.get_manifest("r", "latest")
    assert "cannot connect" in str(err.value) and "\n" not in err.value.diagnostics()


def test_skopeo_reads_the_artifact(oci_registry: RegistryProcess) -> None:
    with OciBackend(oci_registry.host, insecure=True) as b:
        b.push_blob_bytes("sk/repo", EMPTY_DATA)
        layer = b.push_blob_bytes("sk/repo", b"x" * 10)
        data = artifact_manifest(
            PACKAGE_ARTIFACT_TYPE, [{"mediaType": PACKAGE_LAYER_TYPE, "digest": layer, "size": 10}], {"dev.mpkg.x": "y"}
        )
        b.put_manifest("sk/repo", "v1", data)
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{oci_registry.host}/sk/repo:v1"],
        capture_output=True,
        check=True,
        env={**os.environ, "HOME": str(oci_registry.storage)},
    ).stdout
    assert raw == data
    assert json.loads(raw)["artifactType"] == PACKAGE_ARTIFACT_TYPE


def test_limits_apply_to_bodies_not_to_what_a_head_announces(oci_registry: RegistryProcess, tmp_path: Path) -> None:
    """HEAD of a blob announces the blob's size; it is not a body over the small-answer cap."""
    from mpkg._internal.registry.transport import Limits

    path = _blob(tmp_path, 100 * 1024, seed=5)
    digest, n = sha256_file(path)
    with OciBackend(oci_registry.host, insecure=True, limits=Limits(max_json_bytes=1024)) as b:
        assert b.push_blob_file("capped", path, digest, n) is True
        assert b.blob_exists("capped", digest)
        assert b.push_blob_file("capped", path, digest, n) is False
        out = io.BytesIO()
        b.fetch_blob("capped", digest, n, out)
        assert out.getvalue() == path.read_bytes()
