"""`mpkg deploy` without a cluster: the real schemas, the package facts in the fields, the
output folder, and every refusal.

KServe objects are checked against KServe's own CRDs (tests/data/kserve-crds), core objects
with kubernetes-validate, offline (tests/harness/kube.py). The container tests that run the
output are in test_deploy_containers.py.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml
from mpkg._internal.format.package import read_manifest
from mpkg._internal.io.atomic import Terminated
from mpkg.errors import MpkgError, UsageError
from mpkg.serve.cli import options_from_args
from mpkg.serve.server import ServeOptions
from mpkg_builder import deploy
from mpkg_builder.deploy import output as deploy_output
from mpkg_builder.deploy.facts import PackageFacts
from mpkg_builder.deploy.plan import DeployOptions
from mpkg_builder.deploy.workload import Replicas
from mpkg_builder.signing import keygen

from tests.harness.kube import (
    CrdSchemas,
    kubelet_expand,
    metadata_problems,
    validate_core,
    validate_object_meta,
)
from tests.harness.tamper import flip_weight_byte

ROOT = Path(__file__).resolve().parents[3]

EXAMPLES = ("iris-mlp", "churn-tabular")
IMAGE = "registry.example/ml/iris-mlp@sha256:" + "ab" * 32
MODELCAR = "registry.example/ml/iris-mlp-model:1.0.0@sha256:" + "cd" * 32
VARIANTS: dict[str, dict[str, Any]] = {
    "kubernetes": {"target": "kubernetes"},
    "kubernetes-namespaced": {"target": "kubernetes", "namespace": "models", "replicas": Replicas(2, 10)},
    "kserve": {"target": "kserve"},
    "kserve-modelcar": {"target": "kserve", "modelcar": MODELCAR},
    "kserve-knative-modelcar-canary": {
        "target": "kserve",
        "kserve_mode": "knative",
        "modelcar": MODELCAR,
        "canary_percent": 10,
        "replicas": Replicas(0, 4),
    },
    "kserve-cluster-runtime": {"target": "kserve", "cluster_runtime": True, "namespace": "models"},
}


@pytest.fixture(scope="module")
def crds() -> CrdSchemas:
    schemas = CrdSchemas()
    assert len(schemas.schemas) >= 3, "tests/data/kserve-crds is incomplete"
    return schemas


def options(built: Any, **kw: Any) -> DeployOptions:
    kw.setdefault("image", IMAGE)
    kw.setdefault("keys", (str(built.pub),))
    return DeployOptions(**kw)


def bodies(built: Any, example: str = "iris-mlp", **kw: Any) -> list[dict[str, Any]]:
    return [d.body for d in deploy.plan(built.signed[example], options(built, **kw)).documents]


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in docs}


def schema_problems(doc: dict[str, Any], crds: CrdSchemas) -> list[str]:
    if crds.knows(doc):
        problems = crds.errors(doc) + validate_object_meta(doc["metadata"])
    else:
        problems = validate_core(doc)
    return problems + metadata_problems(doc)


def serving_container(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "Deployment":
        container: dict[str, Any] = doc["spec"]["template"]["spec"]["containers"][0]
    else:
        container = doc["spec"]["containers"][0]
    return container


# --------------------------------------------------------------------------- schemas


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("example", EXAMPLES)
def test_manifests_validate_against_the_real_schemas(built: Any, crds: CrdSchemas, example: str, variant: str) -> None:
    docs = bodies(built, example, **VARIANTS[variant])
    kinds = [d["kind"] for d in docs]
    if variant.startswith("kubernetes"):
        assert kinds == ["ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"]
    else:
        runtime = "ClusterServingRuntime" if "cluster" in variant else "ServingRuntime"
        assert kinds == ["ConfigMap", runtime, "InferenceService"]
    for doc in docs:
        assert schema_problems(doc, crds) == [], f"{doc['kind']} {doc['metadata']['name']}"


def test_the_validators_refuse_what_a_cluster_would(built: Any, crds: CrdSchemas) -> None:
    """The checks above can fail: each mistake a cluster refuses is caught here too."""
    docs = by_kind(bodies(built, target="kserve", modelcar=MODELCAR))
    isvc = json.loads(json.dumps(docs["InferenceService"]))
    isvc["spec"]["predictor"]["model"]["storageURI"] = isvc["spec"]["predictor"]["model"].pop("storageUri")
    assert any("storageURI" in p for p in crds.errors(isvc))
    isvc = json.loads(json.dumps(docs["InferenceService"]))
    isvc["spec"]["predictor"]["minReplicas"] = "1"
    assert any("minReplicas" in p for p in crds.errors(isvc))
    runtime = json.loads(json.dumps(docs["ServingRuntime"]))
    runtime["spec"]["containers"][0]["livenessprobe"] = {}
    assert crds.errors(runtime)

    deployment = by_kind(bodies(built, target="kubernetes"))["Deployment"]
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFS"] = True
    assert validate_core(broken)
    broken = json.loads(json.dumps(deployment))
    broken["metadata"]["labels"]["mpkg.dev/package-digest"] = "sha256:" + "0" * 64
    assert metadata_problems(broken)
    assert validate_object_meta({"name": "x", "lables": {}})


# --------------------------------------------------------------------------- package facts -> fields


@pytest.mark.parametrize("target", ["kubernetes", "kserve"])
def test_package_identity_is_in_labels_and_annotations(built: Any, target: str) -> None:
    digest = built.digests["iris-mlp"]
    for doc in bodies(built, target=target):
        meta = doc["metadata"]
        assert meta["annotations"]["mpkg.dev/package-digest"] == digest
        assert meta["annotations"]["mpkg.dev/package-name"] == "iris-mlp"
        assert meta["annotations"]["mpkg.dev/package-version"] == "1.0.0"
        assert meta["labels"]["app.kubernetes.io/name"] == "iris-mlp"
        assert meta["labels"]["app.kubernetes.io/version"] == "1.0.0"
        label = meta["labels"]["mpkg.dev/package-digest"]
        assert len(label) == 63 and digest.replace(":", "-").startswith(label)


def test_version_with_build_metadata_gets_a_valid_label(built: Any, tmp_path: Path, crds: CrdSchemas) -> None:
    from mpkg_builder.build import build_package

    src = tmp_path / "src"
    shutil.copytree(built.sources["iris-mlp"], src)
    toml = (src / "mpkg.toml").read_text()
    (src / "mpkg.toml").write_text(toml.replace('version = "1.0.0"', 'version = "1.2.3-rc.1+build.7"', 1))
    pkg = tmp_path / "rc.mpkg"
    build_package(src, pkg, key=built.key)
    docs = [d.body for d in deploy.plan(pkg, options(built, target="kubernetes")).documents]
    deployment = by_kind(docs)["Deployment"]
    assert deployment["metadata"]["labels"]["app.kubernetes.io/version"] == "1.2.3-rc.1_build.7"
    assert deployment["metadata"]["annotations"]["mpkg.dev/package-version"] == "1.2.3-rc.1+build.7"
    assert serving_container(deployment)["args"][1] == "/models/iris-mlp-1.2.3-rc.1+build.7.mpkg"
    for doc in docs:
        assert schema_problems(doc, crds) == []


@pytest.mark.parametrize("example", EXAMPLES)
def test_memory_request_follows_the_weights(built: Any, example: str) -> None:
    manifest = read_manifest(built.signed[example])
    weights = sum(f.size for f in manifest.files if f.role == "weights")
    mib = 1024 * 1024
    expected = math.ceil((256 * mib + 2 * weights) / (64 * mib)) * 64
    container = serving_container(by_kind(bodies(built, example, target="kubernetes"))["Deployment"])
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": f"{expected}Mi"},
        "limits": {"memory": f"{expected}Mi"},
    }
    isvc = by_kind(bodies(built, example, target="kserve"))["InferenceService"]
    assert isvc["spec"]["predictor"]["model"]["resources"] == container["resources"]


def test_sizing_scales_with_big_packages() -> None:
    gib = 1024**3
    small = deploy.sizing(PackageFacts("m", "1.0.0", "sha256:" + "0" * 64, "onnx", 1, 20480, 2048))
    big = deploy.sizing(PackageFacts("m", "1.0.0", "sha256:" + "0" * 64, "onnx", 1, 10 * gib, 10 * gib - 4096))
    assert big.memory_bytes >= 2 * (10 * gib - 4096) + 256 * 1024**2 and big.memory_bytes % (64 * 1024**2) == 0
    assert small.memory_bytes == 320 * 1024**2  # 256 MiB plus a few KiB, rounded up
    # one hashing pass and one load pass at 50 MiB/s each, after a minute of start-up
    assert big.startup_seconds >= 60 + 2 * 10 * gib / (50 * 1024**2)
    assert small.startup_seconds == 61


@pytest.mark.parametrize("target", ["kubernetes", "kserve"])
def test_probes_security_keys_and_grace_period(built: Any, target: str) -> None:
    docs = by_kind(bodies(built, target=target))
    runtime_doc = docs["Deployment"] if target == "kubernetes" else docs["ServingRuntime"]
    if target == "kubernetes":
        pod = runtime_doc["spec"]["template"]["spec"]
    else:
        pod = docs["InferenceService"]["spec"]["predictor"]
    container = serving_container(runtime_doc)
    port = container["ports"][0]["containerPort"]
    assert port == 8080  # KServe's default predictor port
    assert container["args"][container["args"].index("--port") + 1] == str(port)
    assert container["startupProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": port}
    assert container["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": port}
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 60

    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in runtime_doc["spec"].get("volumes") or pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]

    # the server's drain timeout, read from its options, is passed and covered by the grace period
    drain = next(f.default for f in dataclasses.fields(ServeOptions) if f.name == "drain_timeout")
    args = container["args"]
    assert float(args[args.index("--drain-timeout") + 1]) == drain
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pod["terminationGracePeriodSeconds"] > pre_stop + drain

    # trusted keys: a ConfigMap, mounted read-only, listed in MPKG_KEYS; no --key on the command line
    configmap = docs["ConfigMap"]
    assert configmap["data"] == {"key-1.pub": built.pub.read_text()}
    keys_mount = next(m for m in container["volumeMounts"] if m["name"] == "mpkg-keys")
    assert keys_mount["readOnly"] is True
    assert volumes["mpkg-keys"]["configMap"]["name"] == configmap["metadata"]["name"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MPKG_KEYS"] == f"{keys_mount['mountPath']}/key-1.pub"
    assert "--key" not in args and "--allow-unsigned" not in args


def test_prometheus_scrape_annotations(built: Any) -> None:
    deployment = by_kind(bodies(built, target="kubernetes"))["Deployment"]
    pod_annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert pod_annotations["prometheus.io/scrape"] == "true"
    assert pod_annotations["prometheus.io/path"] == "/metrics"
    assert pod_annotations["prometheus.io/port"] == "8080"
    kserve = by_kind(bodies(built, target="kserve"))
    assert kserve["ServingRuntime"]["metadata"]["annotations"]["prometheus.kserve.io/path"] == "/metrics"
    assert kserve["ServingRuntime"]["metadata"]["annotations"]["prometheus.kserve.io/port"] == "8080"
    annotations = kserve["InferenceService"]["metadata"]["annotations"]
    assert annotations["serving.kserve.io/enable-prometheus-scraping"] == "true"


def test_kserve_runtime_and_inference_service_fit_together(built: Any) -> None:
    docs = by_kind(bodies(built, target="kserve", kserve_mode="knative", canary_percent=25))
    runtime, isvc = docs["ServingRuntime"], docs["InferenceService"]
    assert runtime["spec"]["protocolVersions"] == ["v2"]
    assert runtime["spec"]["containers"][0]["name"] == "kserve-container"
    formats = runtime["spec"]["supportedModelFormats"]
    model = isvc["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    assert model["protocolVersion"] == "v2"
    assert {"name": model["modelFormat"]["name"], "version": model["modelFormat"]["version"]} in [
        {"name": f["name"], "version": f["version"]} for f in formats
    ]
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 25
    assert "storageUri" not in model
    baked = serving_container(runtime)
    assert baked["args"][:2] == ["serve", "/models/iris-mlp-1.0.0.mpkg"]
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    standard = by_kind(bodies(built, target="kserve"))["InferenceService"]
    assert standard["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"


# Knative's field mask (knative/serving, hack/schemapatch-config.go): what a revision may set.
KNATIVE_POD_FIELDS = {"automountServiceAccountToken", "containers", "enableServiceLinks", "imagePullSecrets"}
KNATIVE_POD_FIELDS |= {"serviceAccountName", "volumes"}
KNATIVE_CONTAINER_FIELDS = {"args", "command", "env", "envFrom", "image", "imagePullPolicy", "livenessProbe"}
KNATIVE_CONTAINER_FIELDS |= {"name", "ports", "readinessProbe", "resources", "securityContext", "startupProbe"}
KNATIVE_CONTAINER_FIELDS |= {"terminationMessagePath", "terminationMessagePolicy", "volumeMounts", "workingDir"}
KNATIVE_SECURITY_FIELDS = {"allowPrivilegeEscalation", "capabilities", "privileged", "readOnlyRootFilesystem"}
KNATIVE_SECURITY_FIELDS |= {"runAsGroup", "runAsNonRoot", "runAsUser", "seccompProfile"}
# InferenceService predictor fields KServe itself consumes (not passed into the pod spec).
KSERVE_COMPONENT_FIELDS = {"minReplicas", "maxReplicas", "canaryTrafficPercent", "labels", "annotations", "model"}


def test_knative_mode_sets_only_what_knative_admits(built: Any) -> None:
    """Knative's webhook refuses a grace period, lifecycle hooks and (behind a feature flag) a
    pod security context; the container's own context still runs it as the image's user."""
    docs = by_kind(bodies(built, target="kserve", kserve_mode="knative"))
    predictor = docs["InferenceService"]["spec"]["predictor"]
    assert set(predictor) - KSERVE_COMPONENT_FIELDS <= KNATIVE_POD_FIELDS
    container = serving_container(docs["ServingRuntime"])
    assert set(container) <= KNATIVE_CONTAINER_FIELDS
    assert set(container["securityContext"]) <= KNATIVE_SECURITY_FIELDS
    assert container["securityContext"]["runAsUser"] == 10001 and container["securityContext"]["runAsNonRoot"]
    assert [p.get("name") for p in container["ports"]] == [None]  # Knative: unnamed, h2c or http1
    # Standard mode keeps all of it
    standard = by_kind(bodies(built, target="kserve"))
    assert "lifecycle" in serving_container(standard["ServingRuntime"])
    assert {"securityContext", "terminationGracePeriodSeconds"} <= set(
        standard["InferenceService"]["spec"]["predictor"]
    )


def test_modelcar_mode_serves_the_package_kserve_mounts(built: Any) -> None:
    docs = by_kind(bodies(built, target="kserve", modelcar=MODELCAR))
    model = docs["InferenceService"]["spec"]["predictor"]["model"]
    assert model["storageUri"] == f"oci://{MODELCAR}"
    container = serving_container(docs["ServingRuntime"])
    assert container["args"][0] == "/mnt/models/iris-mlp-1.0.0.mpkg"
    assert container["command"][:2] == ["/bin/sh", "-c"] and container["command"][-1] == "/opt/mpkg/bin/mpkg"
    assert 'exec "$0" serve "$@"' in container["command"][2]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_kubelet_runs_the_commands_as_written(built: Any, variant: str) -> None:
    """kubelet rewrites $(VAR) and $$ in command and args; nothing generated may contain them."""
    for doc in bodies(built, **VARIANTS[variant]):
        if doc["kind"] in ("Deployment", "ServingRuntime", "ClusterServingRuntime"):
            container = serving_container(doc)
            for arg in container["command"] + container["args"]:
                assert kubelet_expand(arg, {"MPKG_KEYS": "x"}) == arg


def test_unsigned_serving_is_explicit(built: Any) -> None:
    plan = deploy.plan(built.unsigned["iris-mlp"], options(built, target="kubernetes", keys=(), allow_unsigned=True))
    docs = by_kind([d.body for d in plan.documents])
    assert "ConfigMap" not in docs
    container = serving_container(docs["Deployment"])
    assert "--allow-unsigned" in container["args"] and "env" not in container
    assert any("--allow-unsigned" in w for w in plan.warnings)


def test_image_pinning_warnings(built: Any) -> None:
    assert deploy.plan(built.signed["iris-mlp"], options(built, target="kubernetes")).warnings == ()
    warned = deploy.plan(built.signed["iris-mlp"], options(built, target="kubernetes", image="registry.example/x:1"))
    assert len(warned.warnings) == 1 and "not pinned by digest" in warned.warnings[0]


def test_serve_trusts_keys_from_MPKG_KEYS(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pods pass keys only through MPKG_KEYS: `mpkg serve` must read it like `verify` does."""
    from mpkg.cli import build_parser

    monkeypatch.setenv("MPKG_KEYS", os.pathsep.join(["/etc/mpkg/keys/key-1.pub", "/etc/mpkg/keys/key-2.pub"]))
    args = build_parser(with_builder=False).parse_args(["serve", "x.mpkg", "--key", "a.pub"])
    assert options_from_args(args).keys == ("a.pub", "/etc/mpkg/keys/key-1.pub", "/etc/mpkg/keys/key-2.pub")


# --------------------------------------------------------------------------- determinism and output


def test_output_is_deterministic(built: Any, tmp_path: Path, run_mpkg: Any) -> None:
    for variant in VARIANTS.values():
        first = deploy.plan(built.signed["iris-mlp"], options(built, **variant))
        second = deploy.plan(built.signed["iris-mlp"], options(built, **variant))
        assert deploy.render_stream(first.documents, first.origin) == deploy.render_stream(
            second.documents, second.origin
        )
    argv = ["deploy", built.signed["iris-mlp"], "--target", "kserve", "--image", IMAGE, "--key", built.pub]
    folders = []
    for name in ("a", "b"):  # two processes, two folders: the same bytes
        run_mpkg(*argv, "-o", tmp_path / name, expect=0)
        folders.append({p.name: p.read_bytes() for p in (tmp_path / name).iterdir()})
    assert folders[0] == folders[1]
    # the folder holds what stdout prints, one object per file
    stream = [d for d in yaml.safe_load_all(run_mpkg(*argv, expect=0).stdout) if d is not None]
    assert [yaml.safe_load(folders[0][n]) for n in sorted(folders[0])] == stream


def test_cli_writes_a_folder_and_summarises_it(built: Any, tmp_path: Path, run_mpkg: Any) -> None:
    out = tmp_path / "manifests"
    proc = run_mpkg(
        "deploy",
        built.signed["churn-tabular"],
        "--target",
        "kubernetes",
        "--image",
        "registry.example/churn:2",
        "--key",
        built.pub,
        "--name",
        "churn",
        "--namespace",
        "ml",
        "--replicas",
        "2:6",
        "-o",
        out,
        "--json",
        expect=0,
    )
    summary = json.loads(proc.stdout)
    assert summary["ok"] and summary["package"]["digest"] == built.digests["churn-tabular"]
    assert [Path(f).name for f in summary["files"]] == sorted(p.name for p in out.iterdir())
    assert len(summary["warnings"]) == 1 and "not pinned" in proc.stderr
    docs = by_kind([yaml.safe_load(Path(f).read_text()) for f in summary["files"]])
    assert docs["HorizontalPodAutoscaler"]["spec"]["minReplicas"] == 2
    assert docs["HorizontalPodAutoscaler"]["spec"]["maxReplicas"] == 6
    assert {d["metadata"]["namespace"] for d in docs.values()} == {"ml"}
    assert docs["Deployment"]["metadata"]["name"] == "churn"
    assert "replicas" not in docs["Deployment"]["spec"]  # the autoscaler owns the count


def test_rewriting_a_folder_leaves_no_stale_objects(built: Any, tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    first = deploy.plan(built.signed["iris-mlp"], options(built, target="kserve"))
    deploy.write_folder(first.documents, out, first.origin)
    second = deploy.plan(built.signed["iris-mlp"], options(built, target="kubernetes"))
    written = deploy.write_folder(second.documents, out, second.origin)
    assert sorted(out.iterdir()) == sorted(written)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_folder_with_foreign_files_is_refused_untouched(built: Any, tmp_path: Path) -> None:
    out = tmp_path / "manifests"
    out.mkdir()
    (out / "ingress.yaml").write_text("apiVersion: networking.k8s.io/v1\nkind: Ingress\n")
    plan = deploy.plan(built.signed["iris-mlp"], options(built, target="kubernetes"))
    with pytest.raises(UsageError) as err:
        deploy.write_folder(plan.documents, out, plan.origin)
    assert "ingress.yaml" in str(err.value.reasons()) and len(err.value.reasons()) == 1
    assert [p.name for p in out.iterdir()] == ["ingress.yaml"]


def test_symlinked_output_folder_is_refused(built: Any, tmp_path: Path) -> None:
    real = tmp_path / "elsewhere"
    real.mkdir()
    (tmp_path / "out").symlink_to(real)
    plan = deploy.plan(built.signed["iris-mlp"], options(built, target="kubernetes"))
    with pytest.raises(UsageError, match="symbolic link"):
        deploy.write_folder(plan.documents, tmp_path / "out", plan.origin)
    assert list(real.iterdir()) == []


def test_interrupted_write_keeps_the_previous_manifests(
    built: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "manifests"
    plan = deploy.plan(built.signed["iris-mlp"], options(built, target="kserve"))
    deploy.write_folder(plan.documents, out, plan.origin)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    handler = signal.getsignal(signal.SIGTERM)
    real_write = deploy_output._write_file
    calls = []

    def write_then_terminate(path: Path, data: bytes, mode: int) -> None:
        real_write(path, data, mode)
        calls.append(path)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # as `kill` or a CI timeout would

    monkeypatch.setattr(deploy_output, "_write_file", write_then_terminate)
    other = deploy.plan(built.signed["iris-mlp"], options(built, target="kubernetes"))
    with pytest.raises(Terminated):  # mpkg._internal.io.atomic: SIGTERM unwinds while a temporary exists
        deploy.write_folder(other.documents, out, other.origin)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifests"]  # no temporaries left
    assert signal.getsignal(signal.SIGTERM) == handler  # the handler is given back


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("changes", "flag"),
    [
        ({"target": "kubernetes", "modelcar": MODELCAR}, "--modelcar"),
        ({"target": "kubernetes", "canary_percent": 10}, "--canary"),
        ({"target": "kubernetes", "cluster_runtime": True}, "--cluster-runtime"),
        ({"target": "kserve", "kserve_mode": "knative", "canary_percent": 101}, "--canary"),
        ({"target": "kserve", "canary_percent": 10}, "--canary"),
        ({"target": "kserve", "replicas": Replicas(0, 3)}, "--replicas"),
        ({"target": "kubernetes", "kserve_mode": "knative"}, "--kserve-mode"),
        ({"target": "kserve", "kserve_mode": "serverless"}, "--kserve-mode"),
        ({"target": "kserve", "image": None}, "--image"),
        ({"target": "kserve", "image": "Not An Image"}, "--image"),
        ({"target": "kserve", "modelcar": "oci://registry/x:1"}, "--modelcar"),
        ({"target": "kserve", "name": "Iris_MLP"}, "--name"),
        ({"target": "kserve", "name": "a" * 46}, "--name"),
        ({"target": "kserve", "name": "iris-"}, "--name"),
        ({"target": "kserve", "namespace": "ML"}, "--namespace"),
        ({"target": "kubernetes", "replicas": Replicas(0, 3)}, "--replicas"),
        ({"target": "kserve", "replicas": Replicas(3, 2)}, "--replicas"),
        ({"target": "kserve", "keys": ()}, "--key"),
        ({"target": "helm"}, "--target"),
    ],
)
def test_bad_options_are_refused_naming_the_flag(built: Any, changes: dict[str, Any], flag: str) -> None:
    with pytest.raises(UsageError) as err:
        deploy.plan(built.signed["iris-mlp"], options(built, **changes))
    reasons = err.value.reasons()
    assert len(reasons) == 1 and "\n" not in reasons[0] and flag in reasons[0], reasons


def test_all_option_problems_are_reported_together(built: Any) -> None:
    with pytest.raises(UsageError) as err:
        deploy.plan(
            built.signed["iris-mlp"],
            options(built, target="kubernetes", image=None, canary_percent=5, namespace="Bad"),
        )
    assert len(err.value.reasons()) == 3


@pytest.mark.parametrize("text", ["1:3", "0:0", "4"])
def test_replicas_parse(text: str) -> None:
    parsed = deploy.parse_replicas(text)
    low, _, high = text.partition(":")
    assert (parsed.minimum, parsed.maximum) == (int(low), int(high or low))


@pytest.mark.parametrize(
    "argv", [["--canary", "101"], ["--replicas", "a:b"], ["--target", "helm"], ["--kserve-mode", "serverless"]]
)
def test_cli_usage_errors_exit_2(built: Any, run_mpkg: Any, argv: list[str]) -> None:
    base = ["deploy", built.signed["iris-mlp"], "--image", IMAGE, "--key", built.pub]
    if "--target" not in argv:
        base += ["--target", "kserve"]
    proc = run_mpkg(*base, *argv, expect=2)
    assert proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1


def test_tampered_package_writes_nothing(built: Any, tmp_path: Path, run_mpkg: Any) -> None:
    """Attack: a package changed after signing gets no manifests (the pods would refuse it
    only after a rollout had started)."""
    weights = built.sources["iris-mlp"] / "model.onnx"
    pkg = flip_weight_byte(built.signed["iris-mlp"], weights, tmp_path / "tampered.mpkg")
    out = tmp_path / "out"
    proc = run_mpkg("deploy", pkg, "--target", "kubernetes", "--image", IMAGE, "--key", built.pub, "-o", out, expect=1)
    assert "digest" in proc.stderr and not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tampered.mpkg"]


def test_package_from_an_untrusted_signer_writes_nothing(built: Any, tmp_path: Path, run_mpkg: Any) -> None:
    """Attack: a package signed by someone the cluster does not trust."""
    other = keygen(tmp_path / "other")
    out = tmp_path / "out"
    argv = ["deploy", built.signed["iris-mlp"], "--target", "kserve", "--image", IMAGE]
    proc = run_mpkg(*argv, "--key", other.public_path, "-o", out)
    assert proc.returncode == 1 and "signature" in proc.stderr.lower() and not out.exists()


def test_missing_key_file_is_one_line(built: Any, tmp_path: Path) -> None:
    with pytest.raises(MpkgError) as err:
        deploy.plan(built.signed["iris-mlp"], options(built, target="kserve", keys=(str(tmp_path / "no.pub"),)))
    assert len(err.value.reasons()) == 1 and "no.pub" in err.value.reasons()[0]
