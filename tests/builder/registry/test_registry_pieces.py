"""Each unchanged file stored once (spec/registry.md §2.1), against the real registry process:
a card-only PATCH sends and stores under 1 MiB, its pull with the previous version cached
downloads under 1 MiB, pull reassembles the byte-identical .mpkg, and artifacts pushed in the
one-blob layout stay readable."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mpkg
import pytest
from mpkg._internal.format.package import read_manifest
from mpkg._internal.registry.artifact import ANNOTATION_DIGEST, ANNOTATION_NAME, ANNOTATION_VERSION
from mpkg._internal.registry.fetch import FetchPolicy, fetch
from mpkg._internal.registry.layers import FILE_TYPE, SEPARATE_MIN
from mpkg._internal.registry.refs import parse_ref
from mpkg._internal.registry.store import PACKAGE_ARTIFACT_TYPE, PACKAGE_CONFIG_TYPE, PACKAGE_LAYER_TYPE
from mpkg.errors import RegistryError
from mpkg_builder.build import build_package
from mpkg_builder.registry import lifecycle
from mpkg_builder.registry.backend import Backend, artifact_manifest, sha256_file
from mpkg_builder.registry.local import LocalBackend
from mpkg_builder.registry.oci import OciBackend

from bench.gen import make_source
from tests.harness.registry import RegistryProcess

MiB = 1024 * 1024
WEIGHTS = 12 * MiB  # two weight files: each a piece of its own


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """big-model 1.0.0; 1.0.1 with only its card changed; 1.1.0 retrained (new weights)."""
    root = tmp_path_factory.mktemp("pieces")
    src = make_source(root / "src", WEIGHTS, files=2, name="big-model", seed=0)
    out = {"1.0.0": root / "v100.mpkg"}
    build_package(src, out["1.0.0"])
    toml = (src / "mpkg.toml").read_text()
    (src / "mpkg.toml").write_text(toml.replace('version = "1.0.0"', 'version = "1.0.1"'))
    (src / "MODEL_CARD.md").write_text((src / "MODEL_CARD.md").read_text() + "\nEvaluated again: no change.\n")
    out["1.0.1"] = root / "v101.mpkg"
    build_package(src, out["1.0.1"])
    retrained = make_source(root / "src2", WEIGHTS, files=2, name="big-model", seed=1)
    toml = (retrained / "mpkg.toml").read_text()
    (retrained / "mpkg.toml").write_text(toml.replace('version = "1.0.0"', 'version = "1.1.0"'))
    out["1.1.0"] = root / "v110.mpkg"
    build_package(retrained, out["1.1.0"])
    return out


@pytest.fixture
def registry_backend(oci_registry: RegistryProcess) -> Iterator[OciBackend]:
    backend = OciBackend(oci_registry.host, insecure=True)
    yield backend
    backend.close()


def _stored(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _downloaded(reg: RegistryProcess) -> int:
    return sum(r.size for r in reg.requests() if r.method == "GET" and "/blobs/" in r.path)


def _sha(path: Path) -> str:
    return sha256_file(path)[0]


def test_card_only_patch_sends_and_stores_under_a_mebibyte(
    oci_registry: RegistryProcess, registry_backend: OciBackend, versions: dict[str, Path]
) -> None:
    name = f"{oci_registry.host}/big-model"
    first = lifecycle.push(registry_backend, parse_ref(name), versions["1.0.0"])
    assert first.sent >= WEIGHTS
    blobs = oci_registry.storage / "docker/registry/v2/blobs"
    before = _stored(blobs)
    patch = lifecycle.push(registry_backend, parse_ref(name), versions["1.0.1"])
    assert 0 < patch.sent < MiB
    assert _stored(blobs) - before < MiB
    retrain = lifecycle.push(registry_backend, parse_ref(name), versions["1.1.0"])
    assert retrain.sent >= WEIGHTS  # new weights: new pieces
    layers = {}
    for version in ("1.0.0", "1.0.1"):
        found = registry_backend.get_manifest("big-model", version)
        assert found is not None
        layers[version] = [la for la in found.json()["layers"] if la["mediaType"] == FILE_TYPE]
    assert len(layers["1.0.0"]) == 2 and all(la["size"] >= SEPARATE_MIN for la in layers["1.0.0"])
    assert layers["1.0.0"] == layers["1.0.1"]  # the same weight blobs, stored once


def _push_first_two(reg: RegistryProcess, backend: OciBackend, versions: dict[str, Path]) -> str:
    name = f"{reg.host}/big-model"
    for version in ("1.0.0", "1.0.1"):
        lifecycle.push(backend, parse_ref(name), versions[version])
    return name


def test_pull_reassembles_byte_identical_and_reuses_the_cached_version(
    oci_registry: RegistryProcess,
    registry_backend: OciBackend,
    versions: dict[str, Path],
    local_home: Path,
    tmp_path: Path,
) -> None:
    name = _push_first_two(oci_registry, registry_backend, versions)
    out = tmp_path / "first.mpkg"
    lifecycle.pull(registry_backend, parse_ref(f"{name}:1.0.0"), out, allow_unsigned=True)
    assert _sha(out) == _sha(versions["1.0.0"])  # the same file, byte for byte
    policy = FetchPolicy.from_paths(allow_unsigned=True, insecure=True, home=local_home)
    fetch(f"{name}:1.0.0", policy)  # the previous version, in the package cache
    before = _downloaded(oci_registry)
    patched = tmp_path / "patched.mpkg"
    lifecycle.pull(registry_backend, parse_ref(f"{name}:1.0.1"), patched, allow_unsigned=True)
    assert _downloaded(oci_registry) - before < MiB
    assert _sha(patched) == _sha(versions["1.0.1"])
    model = mpkg.load(f"{name}:1.0.1", mpkg.Policy.unsafe_allow_unsigned(), insecure=True)
    assert model.version == "1.0.1"


def test_a_damaged_cached_piece_is_downloaded_instead(
    oci_registry: RegistryProcess,
    registry_backend: OciBackend,
    versions: dict[str, Path],
    local_home: Path,
    tmp_path: Path,
) -> None:
    """Attack: the package cache poisoned (a weight byte flipped in the cached previous version).
    Local pieces are re-hashed while copied; the bad one is downloaded, the result is exact."""
    name = _push_first_two(oci_registry, registry_backend, versions)
    policy = FetchPolicy.from_paths(allow_unsigned=True, insecure=True, home=local_home)
    _, cached = fetch(f"{name}:1.0.0", policy)
    with cached.open("r+b") as fh:
        fh.seek(cached.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    before = _downloaded(oci_registry)
    out = tmp_path / "patched.mpkg"
    lifecycle.pull(registry_backend, parse_ref(f"{name}:1.0.1"), out, allow_unsigned=True)
    assert _downloaded(oci_registry) - before >= SEPARATE_MIN  # the damaged piece came from the registry
    assert _sha(out) == _sha(versions["1.0.1"])


def _push_one_blob(backend: Backend, repo: str, tag: str, package: Path) -> None:
    """Store a package the way mpkg did before pieces: one layer, the whole .mpkg."""
    manifest = read_manifest(package)
    blob, size = sha256_file(package)
    backend.push_blob_bytes(repo, manifest.encoded)
    backend.push_blob_file(repo, package, blob, size)
    layer = {"mediaType": PACKAGE_LAYER_TYPE, "digest": blob, "size": size}
    config = {"mediaType": PACKAGE_CONFIG_TYPE, "digest": str(manifest.digest), "size": len(manifest.encoded)}
    annotations = {
        ANNOTATION_NAME: manifest.name,
        ANNOTATION_VERSION: manifest.version,
        ANNOTATION_DIGEST: str(manifest.digest),
    }
    backend.put_manifest(repo, tag, artifact_manifest(PACKAGE_ARTIFACT_TYPE, [layer], annotations, config))


@pytest.mark.parametrize("where", ["oci", "local"])
def test_one_blob_artifacts_stay_readable(
    where: str, request: pytest.FixtureRequest, versions: dict[str, Path], local_home: Path, tmp_path: Path
) -> None:
    if where == "oci":
        reg: RegistryProcess = request.getfixturevalue("oci_registry")
        backend: Backend = OciBackend(reg.host, insecure=True)
        name = f"{reg.host}/big-model"
    else:
        backend, name = LocalBackend(local_home), "big-model"
    _push_one_blob(backend, "big-model", "1.0.0", versions["1.0.0"])
    out = tmp_path / "old.mpkg"
    lifecycle.pull(backend, parse_ref(f"{name}:1.0.0"), out, allow_unsigned=True)
    assert _sha(out) == _sha(versions["1.0.0"])
    # the next version pushed over it is stored in pieces; both read back exactly
    lifecycle.push(backend, parse_ref(name), versions["1.0.1"])
    out2 = tmp_path / "new.mpkg"
    lifecycle.pull(backend, parse_ref(f"{name}:1.0.1"), out2, allow_unsigned=True)
    assert _sha(out2) == _sha(versions["1.0.1"])
    backend.close()


def test_pieces_in_the_wrong_order_are_refused(
    oci_registry: RegistryProcess, registry_backend: OciBackend, versions: dict[str, Path], tmp_path: Path
) -> None:
    """Attack: an artifact whose pieces are all genuine but rearranged (or another file's): the
    reassembled file does not hash to the artifact's file digest; nothing is written."""
    name = f"{oci_registry.host}/big-model"
    lifecycle.push(registry_backend, parse_ref(name), versions["1.0.0"])
    found = registry_backend.get_manifest("big-model", "1.0.0")
    assert found is not None
    doc = found.json()
    layers = doc["layers"]
    layers[1], layers[3] = layers[3], layers[1]  # the two weight files swap places
    forged = artifact_manifest(PACKAGE_ARTIFACT_TYPE, layers, doc["annotations"], doc["config"])
    registry_backend.put_manifest("big-model", "forged", forged)
    out = tmp_path / "forged.mpkg"
    with pytest.raises(RegistryError, match="reassembled package has digest"):
        lifecycle.pull(registry_backend, parse_ref(f"{name}:forged"), out, allow_unsigned=True)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_local_store_keeps_each_file_once(versions: dict[str, Path], local_home: Path) -> None:
    store = LocalBackend(local_home)
    lifecycle.push(store, parse_ref("big-model"), versions["1.0.0"])
    before = _stored(local_home / "blobs")
    patch = lifecycle.push(store, parse_ref("big-model"), versions["1.0.1"])
    assert patch.sent < MiB and _stored(local_home / "blobs") - before < MiB
