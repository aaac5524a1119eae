"""`mpkg deploy REF --follow`: manifests whose pods run `mpkg serve REF --follow`, their facts
taken from what REF names now in the real registry process, validated against KServe's CRDs and
the Kubernetes schemas like every other variant (test_deploy_manifests.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from mpkg._internal.format.package import read_manifest
from mpkg._internal.registry.refs import parse_ref
from mpkg.errors import MpkgError, UsageError
from mpkg_builder import deploy
from mpkg_builder.deploy.facts import PackageFacts
from mpkg_builder.deploy.plan import DeployOptions
from mpkg_builder.registry import lifecycle
from mpkg_builder.registry.oci import OciBackend
from mpkg_builder.signing import keygen

from tests.builder.deploy.test_deploy_manifests import (
    IMAGE,
    by_kind,
    crds,
    schema_problems,
    serving_container,
)
from tests.harness.kube import CrdSchemas, kubelet_expand
from tests.harness.registry import RegistryProcess, oci_registry

__all__ = ["crds", "oci_registry"]

MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("MPKG_HOME", str(home))
    monkeypatch.delenv("MPKG_KEYS", raising=False)
    return home


@pytest.fixture
def production(oci_registry: RegistryProcess, built: Any) -> str:
    """iris-mlp 1.0.0 pushed and promoted: the reference the pods follow."""
    backend = OciBackend(oci_registry.host, insecure=True)
    try:
        ref = parse_ref(f"{oci_registry.host}/team/iris-mlp:1.0.0")
        lifecycle.push(backend, ref, built.signed["iris-mlp"], key=built.key)
        lifecycle.promote(backend, ref, "production", key=built.key)
    finally:
        backend.close()
    return f"{oci_registry.host}/team/iris-mlp:production"


def follow_options(built: Any, **kw: Any) -> DeployOptions:
    kw.setdefault("image", IMAGE)
    kw.setdefault("keys", (str(built.pub),))
    kw.setdefault("follow", True)
    kw.setdefault("insecure", True)
    return DeployOptions(**kw)


@pytest.mark.parametrize(
    "variant",
    [
        {"target": "kubernetes"},
        {"target": "kubernetes", "registry_secret": "registry-auth", "interval": 2.0, "namespace": "models"},
        {"target": "kserve"},
        {"target": "kserve", "cluster_runtime": True, "registry_secret": "registry-auth"},
        {"target": "kserve", "kserve_mode": "knative", "canary_percent": 10},
    ],
    ids=["kubernetes", "kubernetes-secret", "kserve", "kserve-cluster-secret", "kserve-knative"],
)
def test_follow_manifests_validate_and_run_serve_ref_follow(
    built: Any, crds: CrdSchemas, production: str, variant: dict[str, Any]
) -> None:
    plan = deploy.plan(production, follow_options(built, **variant))
    docs = [d.body for d in plan.documents]
    for doc in docs:
        assert schema_problems(doc, crds) == [], f"{doc['kind']} {doc['metadata']['name']}"
    kinds = by_kind(docs)
    workload = (
        kinds["Deployment"]
        if variant["target"] == "kubernetes"
        else next(d for d in docs if d["kind"].endswith("ServingRuntime"))
    )
    container = serving_container(workload)
    interval = f"{variant.get('interval', 5.0):g}s"
    assert container["command"] == ["/opt/mpkg/bin/mpkg"]
    assert container["args"][:6] == ["serve", production, "--follow", "--interval", interval, "--insecure"]
    for arg in container["command"] + container["args"]:
        assert kubelet_expand(arg, {"MPKG_KEYS": "x"}) == arg
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MPKG_KEYS"] == "/etc/mpkg/keys/key-1.pub" and env["MPKG_HOME"] == "/var/cache/mpkg"
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["mpkg-cache"]["mountPath"] == "/var/cache/mpkg"
    spec = workload["spec"]["template"]["spec"] if workload["kind"] == "Deployment" else workload["spec"]
    vols = {v["name"]: v for v in spec["volumes"]}
    size = built.signed["iris-mlp"].stat().st_size
    assert vols["mpkg-cache"]["emptyDir"]["sizeLimit"] == f"{math.ceil((2 * size + 64 * MIB) / MIB)}Mi"
    if "registry_secret" in variant:
        assert env["DOCKER_CONFIG"] == "/etc/mpkg/docker"
        assert mounts["registry-auth"] == {"name": "registry-auth", "mountPath": "/etc/mpkg/docker", "readOnly": True}
        assert vols["registry-auth"]["secret"]["secretName"] == "registry-auth"
        assert vols["registry-auth"]["secret"]["items"] == [{"key": ".dockerconfigjson", "path": "config.json"}]
    else:
        assert "DOCKER_CONFIG" not in env and "registry-auth" not in vols
    if variant["target"] == "kserve":
        assert "storageUri" not in kinds["InferenceService"]["spec"]["predictor"]["model"]


@pytest.mark.parametrize("target", ["kubernetes", "kserve"])
def test_follow_manifests_say_what_is_followed_and_generated_from(built: Any, production: str, target: str) -> None:
    plan = deploy.plan(production, follow_options(built, target=target))
    digest = built.digests["iris-mlp"]
    assert plan.facts.digest == digest and plan.facts.version == "1.0.0"
    assert production in plan.origin and digest in plan.origin
    for doc in (d.body for d in plan.documents):
        labels, notes = doc["metadata"]["labels"], doc["metadata"]["annotations"]
        assert labels["mpkg.dev/mode"] == "follow"
        assert "app.kubernetes.io/version" not in labels  # what answers moves with the tag
        assert notes["mpkg.dev/follow-reference"] == production
        assert notes["mpkg.dev/follow-interval"] == "5s"
        assert notes["mpkg.dev/generated-from-digest"] == digest
        assert notes["mpkg.dev/generated-from-version"] == "1.0.0"
        assert "mpkg.dev/package-digest" not in notes


def test_follow_memory_covers_two_models_during_a_swap(built: Any, production: str) -> None:
    manifest = read_manifest(built.signed["iris-mlp"])
    weights = sum(f.size for f in manifest.files if f.role == "weights")
    plan = deploy.plan(production, follow_options(built, target="kubernetes"))
    expected = math.ceil((256 * MIB + 2 * 2 * weights) / (64 * MIB)) * 64
    assert plan.sizing.memory == f"{expected}Mi"
    gib = 1024**3
    facts = PackageFacts("m", "1.0.0", "sha256:" + "0" * 64, "onnx", 1, 10 * gib, 10 * gib - 4096)
    baked, followed = deploy.sizing(facts), deploy.sizing(facts, follow=True)
    assert followed.memory_bytes - baked.memory_bytes >= 2 * (10 * gib - 4096) - 64 * MIB
    # and the start-up budget adds the download at 50 MiB/s
    assert followed.startup_seconds - baked.startup_seconds == math.ceil(10 * gib / (50 * MIB))


def test_cli_follow_writes_a_folder_and_summarises_it(
    built: Any, production: str, tmp_path: Path, run_mpkg: Any
) -> None:
    out = tmp_path / "out"
    result = run_mpkg(
        "deploy", production, "--follow", "--interval", "1m", "--insecure", "--target", "kserve",
        "--image", IMAGE, "--key", str(built.pub), "-o", str(out), "--json",
    )  # fmt: skip
    doc = json.loads(result.stdout)
    assert doc["follow"] == production and doc["package"]["digest"] == built.digests["iris-mlp"]
    runtime = yaml.safe_load(next(out.glob("*servingruntime*")).read_text())
    assert runtime["spec"]["containers"][0]["args"][:5] == ["serve", production, "--follow", "--interval", "60s"]


def test_follow_reference_from_an_untrusted_signer_writes_nothing(
    built: Any, production: str, tmp_path: Path, run_mpkg: Any
) -> None:
    other = keygen(tmp_path / "other")
    out = tmp_path / "out"
    result = run_mpkg(
        "deploy", production, "--follow", "--insecure", "--target", "kubernetes", "--image", IMAGE,
        "--key", str(other.public_path), "-o", str(out), expect=1,
    )  # fmt: skip
    assert not out.exists()
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("mpkg: ") and "not trusted" in ln for ln in lines), result.stderr


@pytest.mark.parametrize(
    ("changes", "flag"),
    [
        ({"follow": False, "interval": 2.0}, "--interval"),
        ({"follow": False, "insecure": True}, "--insecure"),
        ({"follow": False, "registry_secret": "auth"}, "--registry-secret"),
        ({"target": "kserve", "modelcar": IMAGE}, "--modelcar"),
        ({"registry_secret": "Not_A_Name"}, "--registry-secret"),
    ],
)
def test_follow_option_refusals_name_the_flag(built: Any, changes: dict[str, Any], flag: str) -> None:
    options = follow_options(built, **{"target": "kubernetes", **changes})
    with pytest.raises(UsageError) as err:
        deploy.plan("127.0.0.1:1/team/iris-mlp:production", options)
    assert flag in str(err.value)


@pytest.mark.parametrize(
    ("package", "needle"),
    [
        ("FILE", "is a file; --follow takes a registry reference"),
        ("team/iris-mlp:production", "names the local store"),
        ("127.0.0.1:1/team/iris-mlp@sha256:" + "a" * 64, "pinned by digest"),
    ],
)
def test_follow_refuses_what_cannot_be_followed(built: Any, package: str, needle: str) -> None:
    target = str(built.signed["iris-mlp"]) if package == "FILE" else package
    with pytest.raises(MpkgError) as err:
        deploy.plan(target, follow_options(built, target="kubernetes"))
    assert needle in str(err.value)
