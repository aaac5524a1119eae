"""`mpkg deploy` output run for real: podman kube play, the KServe predictor contract, modelcar.

The runtime image is built once per module with `mpkg containerize` (wheels collected once,
then offline) and each test plays generated manifests with `podman kube play`. What podman
does not honour (Services, autoscalers, disruption budgets, probes, grace periods, kubelet's
expansion, emptyDir modes) is listed in tests/harness/kube_play.py and spec/deploy.md §7;
the tests do those parts themselves: they poll the probes' paths, reach the pod by its IP and
stop the container with the grace period as timeout. Skips with the reason where no
container engine can be started, like tests/builder/test_containerize.py.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mpkg._internal.format.package import read_info
from mpkg_builder import containerize as cz
from mpkg_builder import deploy
from mpkg_builder.deploy.plan import DeployOptions
from mpkg_builder.signing import keygen
from mpkg_builder.sources.lockfile import parse_requirements

from tests.harness.containers import Engine, container_engine
from tests.harness.kube_play import http_get, kube_play, predictor_pod, wait_for

ROOT = Path(__file__).resolve().parents[3]

__all__ = ["container_engine"]

EXAMPLE = ROOT / "examples" / "iris-mlp"


@pytest.fixture(scope="module")
def podman(container_engine: Engine) -> Engine:
    if container_engine.podman_env is None:
        pytest.skip("podman kube play needs podman; MPKG_TEST_DOCKER_HOST names another engine")
    return container_engine


@pytest.fixture(scope="module")
def runtime_image(podman: Engine, built: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The iris-mlp runtime image, as `mpkg containerize` builds it (keys baked in too: the
    manifests must not rely on them)."""
    house = tmp_path_factory.mktemp("wheels")
    lock = parse_requirements((EXAMPLE / "requirements.lock").read_text(), "requirements.lock")
    cz.collect_wheels(lock, house / "w")
    tag = podman.test_tag("iris-deploy")
    result = cz.containerize(
        built.signed["iris-mlp"],
        tag,
        base=podman.base_image,
        keys=[built.pub],
        wheelhouse=house / "w",
        offline=True,
        engine=podman.url,
    )
    assert result.built
    try:
        yield tag
    finally:
        podman.podman("rmi", "--force", tag)


def unique(prefix: str) -> str:
    """Names are global in podman (pods, ConfigMap volumes): one per test run."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def documents(built: Any, **kw: Any) -> dict[str, dict[str, Any]]:
    kw.setdefault("keys", (str(built.pub),))
    plan = deploy.plan(built.signed["iris-mlp"], DeployOptions(**kw))
    return {d.kind: d.body for d in plan.documents}


def infer_with_tritonclient(url: str, built: Any) -> None:
    """One inference as a KServe V2 client sends it; the answer is the package's own."""
    import mpkg
    import tritonclient.http as httpclient

    example = json.loads((EXAMPLE / "example.json").read_text())
    features = np.asarray(example["inputs"]["features"], dtype=np.float32)
    client = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("iris-mlp")
        tensor = httpclient.InferInput("features", list(features.shape), "FP32")
        tensor.set_data_from_numpy(features)
        result = client.infer("iris-mlp", [tensor])
    finally:
        client.close()
    assert result.as_numpy("label").tolist() == example["outputs"]["label"]
    expected = mpkg.load(built.signed["iris-mlp"], [built.pub]).predict({"features": features})
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected["probabilities"], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- kubernetes


def test_kubernetes_manifests_run_under_podman_kube_play(
    podman: Engine, runtime_image: str, built: Any, tmp_path: Path
) -> None:
    name = unique("iris-play")
    docs = documents(built, target="kubernetes", image=runtime_image, name=name)
    deployment = docs["Deployment"]
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    port = container["ports"][0]["containerPort"]
    probes = {k: container[k]["httpGet"]["path"] for k in ("startupProbe", "readinessProbe", "livenessProbe")}
    # Not played: Service (no kube-proxy; the test uses the pod IP), HorizontalPodAutoscaler
    # (no autoscaler), PodDisruptionBudget (no eviction API). They are checked against the
    # schemas in test_deploy_manifests.py.
    with kube_play(podman, [docs["ConfigMap"], deployment], tmp_path) as played:
        url = played.url(port)
        # podman runs no probes here: poll the paths they name, in their order
        status = wait_for(played, "mpkg", url + probes["startupProbe"])
        assert status == 200, played.logs("mpkg")[-3000:]
        assert http_get(url + probes["readinessProbe"])[0] == 200
        assert http_get(url + probes["livenessProbe"])[0] == 200
        infer_with_tritonclient(url, built)

        # what podman did honour of the pod's security settings
        inspected = played.inspect("mpkg")
        assert inspected["HostConfig"]["ReadonlyRootfs"] is True
        assert inspected["Config"]["User"] == "10001:10001"
        assert "no-new-privileges" in inspected["HostConfig"]["SecurityOpt"]
        limit = int(container["resources"]["limits"]["memory"].removesuffix("Mi")) * 1024 * 1024
        assert inspected["HostConfig"]["Memory"] == limit
        shell = ["exec", played.container("mpkg"), "/bin/sh", "-c"]
        probe = podman.podman(*shell, "grep ^CapEff /proc/1/status; touch /tmp/ok && echo tmp-ok; touch /x")
        assert "CapEff:\t0000000000000000" in probe.stdout and "tmp-ok" in probe.stdout
        assert "Read-only file system" in probe.stderr
        # the keys the server trusts are the ConfigMap's, named by MPKG_KEYS
        env = podman.podman("exec", played.container("mpkg"), "printenv", "MPKG_KEYS").stdout.strip()
        mounted = podman.podman("exec", played.container("mpkg"), "cat", env).stdout
        assert mounted == built.pub.read_text()


def test_pods_trust_only_the_configmap_keys(podman: Engine, runtime_image: str, built: Any, tmp_path: Path) -> None:
    """Attack: a ConfigMap naming another signer. The image still has the right key baked
    into /keys; the pod must refuse the package anyway, because trust is the cluster's."""
    name = unique("iris-untrusted")
    docs = documents(built, target="kubernetes", image=runtime_image, name=name)
    other = keygen(tmp_path / "other")
    docs["ConfigMap"]["data"] = {"key-1.pub": other.public_path.read_text()}
    port = docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
    with kube_play(podman, [docs["ConfigMap"], docs["Deployment"]], tmp_path / "play") as played:
        deadline = time.monotonic() + 120  # start-up wait, not a timing assertion
        logs = ""
        while time.monotonic() < deadline and "signature" not in logs:
            time.sleep(1)
            logs = played.logs("mpkg")
        assert "signature" in logs, logs[-3000:]
        try:
            status = http_get(played.url(port) + "/v2/health/ready", timeout=3)[0]
        except OSError:
            status = None
        assert status != 200


# --------------------------------------------------------------------------- kserve


def test_server_meets_the_kserve_predictor_contract(
    podman: Engine, runtime_image: str, built: Any, tmp_path: Path
) -> None:
    """The predictor pod KServe makes from the generated ServingRuntime and InferenceService:
    it listens on the port the runtime names, answers V2 health and metadata, and drains on
    SIGTERM within the grace period, exiting 0. (podman runs no preStop hook: in a cluster the
    pod has left the Service's endpoints before SIGTERM; here requests keep arriving.)"""
    name = unique("iris-kserve")
    docs = documents(built, target="kserve", image=runtime_image, name=name)
    runtime, isvc = docs["ServingRuntime"], docs["InferenceService"]
    port = runtime["spec"]["containers"][0]["ports"][0]["containerPort"]
    assert port == 8080  # KServe's default; the runtime's port is where KServe sends traffic
    pod = predictor_pod(runtime, isvc, name, tmp_path)
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    info = read_info(built.signed["iris-mlp"])
    with kube_play(podman, [docs["ConfigMap"], pod], tmp_path / "play") as played:
        url = played.url(port)
        assert wait_for(played, "kserve-container", url + "/v2/health/ready") == 200, played.logs("kserve-container")
        assert http_get(url + "/v2/health/live") == (200, {"live": True})
        status, server = http_get(url + "/v2")
        assert status == 200 and "binary_tensor_data" in server["extensions"]
        assert {"name": "iris-mlp", "version": "1.0.0", "digest": info.digest} in server["models"]
        status, meta = http_get(url + "/v2/models/iris-mlp")
        assert status == 200 and meta["name"] == "iris-mlp"
        assert [i["name"] for i in meta["inputs"]] == ["features"]
        assert http_get(url + "/v2/models/iris-mlp/ready") == (200, {"name": "iris-mlp", "ready": True})
        assert http_get(url + "/v2/models/iris-mlp/versions/1.0.0/ready")[0] == 200

        # SIGTERM with a request in flight (its body half sent): readiness turns false, new
        # requests are refused with 503, the one in flight is answered, then the server exits 0.
        body = json.dumps(infer_request()).encode()
        head = (
            "POST /v2/models/iris-mlp/infer HTTP/1.1\r\nHost: predictor\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        container = played.container("kserve-container")
        with socket.create_connection((played.ip, port), timeout=60) as held:
            held.sendall(head + body[:10])
            time.sleep(2)  # the server has parsed the headers: the request is in flight
            # What kubelet does to a pod being deleted: SIGTERM, then SIGKILL after the grace
            # period. (Not `podman kill`: podman 4.3 then restarts the drained container under
            # the pod's restartPolicy Always, so it never stays exited.)
            stopped_at = time.monotonic()
            stopping = podman.podman_started("stop", "--time", str(grace), container)
            try:
                assert wait_until_status(url + "/v2/health/ready", 503), "readiness did not turn false"
                refused, message = post_json(url + "/v2/models/iris-mlp/infer", infer_request())
                assert refused == 503 and "draining" in message
                held.sendall(body[10:])
                answer = read_http_response(held)
            finally:
                try:
                    out, err = stopping.communicate(timeout=grace + 60)  # it returns within the grace period
                except subprocess.TimeoutExpired:
                    stopping.kill()
                    raise
            elapsed = time.monotonic() - stopped_at
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert b'"outputs"' in answer
        logs = played.logs("kserve-container")
        assert stopping.returncode == 0, out + err + logs[-3000:]
        state = played.inspect("kserve-container")["State"]
        assert (state["Status"], state["ExitCode"]) == ("exited", 0), logs[-3000:]  # drained, not killed (137)
        assert elapsed < grace
        assert "inflight=1" in logs and "server stopped" in logs, logs[-3000:]
        assert logs.count("listening on") == 1  # stopped, not restarted


def infer_request() -> dict[str, Any]:
    features = json.loads((EXAMPLE / "example.json").read_text())["inputs"]["features"]
    data = [x for row in features for x in row]
    return {"inputs": [{"name": "features", "shape": [len(features), 4], "datatype": "FP32", "data": data}]}


def post_json(url: str, doc: dict[str, Any]) -> tuple[int, str]:
    req = urllib.request.Request(url, data=json.dumps(doc).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def wait_until_status(url: str, status: int, deadline: float = 30.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        with contextlib.suppress(OSError):
            if http_get(url, timeout=3)[0] == status:
                return True
        time.sleep(0.1)
    return False


def read_http_response(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture(scope="module")
def modelcar_image(podman: Engine, built: Any) -> Iterator[str]:
    tag = podman.test_tag("iris-modelcar")
    result = cz.containerize(
        built.signed["iris-mlp"], tag, base=podman.base_image, keys=[built.pub], engine=podman.url, modelcar=True
    )
    assert result.built
    try:
        yield tag
    finally:
        podman.podman("rmi", "--force", tag)


def test_modelcar_pod_serves_the_package_like_kserve(
    podman: Engine, runtime_image: str, modelcar_image: str, built: Any, tmp_path: Path
) -> None:
    """storageUri: oci://MODELCAR. The modelcar sidecar links its /models at /mnt/models through
    the shared process namespace; the runtime waits for it, verifies the package with the
    ConfigMap's keys and serves it."""
    listing = podman.podman("run", "--rm", "--entrypoint", "/bin/sh", modelcar_image, "-c", "id -u; ls /models")
    assert listing.stdout.split() == ["10001", "iris-mlp-1.0.0.mpkg"], listing.stdout + listing.stderr

    name = unique("iris-modelcar")
    docs = documents(built, target="kserve", image=runtime_image, name=name, modelcar=modelcar_image)
    runtime, isvc = docs["ServingRuntime"], docs["InferenceService"]
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == f"oci://{modelcar_image}"
    provision = tmp_path / "provision"
    provision.mkdir(mode=0o777)
    provision.chmod(0o777)  # what kubelet makes for an emptyDir
    pod = predictor_pod(runtime, isvc, name, provision)
    port = runtime["spec"]["containers"][0]["ports"][0]["containerPort"]
    try:
        with kube_play(podman, [docs["ConfigMap"], pod], tmp_path / "play") as played:
            url = played.url(port)
            status = wait_for(played, "kserve-container", url + "/v2/health/ready")
            assert status == 200, played.logs("kserve-container")[-3000:] + played.logs("modelcar")[-1000:]
            assert "OK ... Prefetched and valid" in played.logs("modelcar-init")
            infer_with_tritonclient(url, built)
            # the runtime serves the file behind the link, not a copy of its own
            link = podman.podman("exec", played.container("kserve-container"), "readlink", "/mnt/models")
            assert link.stdout.strip().startswith("/proc/") and link.stdout.strip().endswith("/root/models")
    finally:
        shutil.rmtree(provision, ignore_errors=True)
