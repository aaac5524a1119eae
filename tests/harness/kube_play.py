"""Running generated manifests with ``podman kube play``, and the pod KServe would make.

``podman kube play`` runs Pods and Deployments (one replica) with their ConfigMaps, and
honours the user, read-only root file system, dropped capabilities, no-new-privileges,
memory limit, volumes and image pull policy. What it does not do, and the tests therefore do
themselves or leave out (spec/deploy.md §7):

- Services, HorizontalPodAutoscalers, PodDisruptionBudgets: no kube-proxy, no autoscaler,
  no eviction API. The tests reach the pod on its IP on podman's kube network instead.
- probes: podman 4.3 turns a livenessProbe into a ``curl`` healthcheck run from systemd
  timers (no systemd here, no curl in the image) and ignores readiness and startup probes;
  the tests poll the same paths the probes name.
- terminationGracePeriodSeconds and preStop hooks: ignored; the tests stop the container
  with the grace period as its timeout (``podman stop --time GRACE``, as kubelet stops a pod
  being deleted). Not ``podman kill``: under the pod's ``restartPolicy: Always`` podman 4.3
  restarts a container whose process exits after a ``kill``, so it never stays exited.
- kubelet's ``$(VAR)``/``$$`` expansion of command and args: done here first.
- ``emptyDir``: podman makes a volume with the image's mount point owner and mode; kubelet
  makes a fresh 0777 folder. Where that matters (the modelcar link under /mnt, written by a
  non-root user) a fresh 0777 host folder stands in for it.

:func:`predictor_pod` builds the predictor pod the KServe controller derives from a
ServingRuntime and an InferenceService in Standard (formerly RawDeployment) mode, including what
KServe's modelcar support adds (KServe's pkg/utils ConfigureModelcarToContainer): the sidecar running
``ln -sf /proc/$$$$/root/models /mnt/models && sleep infinity``, an init container that
pre-fetches the image and checks /models is not empty, an emptyDir at /mnt, MODEL_INIT_MODE=async
and a shared process namespace.
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.harness.containers import Engine
from tests.harness.kube import expand_container

KSERVE_CONTAINER = "kserve-container"
PROVISION_VOLUME = "kserve-provision-location"
MODEL_DIR = "/mnt/models"
# Waiting for a pod is set-up, not a timing assertion: generous on a loaded machine.
READY_DEADLINE = 180.0


@dataclass(frozen=True)
class Played:
    engine: Engine
    pod: str
    ip: str

    def container(self, name: str) -> str:
        return f"{self.pod}-{name}"

    def url(self, port: int) -> str:
        return f"http://{self.ip}:{port}"

    def logs(self, container: str) -> str:
        out = self.engine.podman("logs", self.container(container))
        return out.stdout + out.stderr

    def inspect(self, container: str) -> dict[str, Any]:
        out = self.engine.podman("inspect", self.container(container))
        assert out.returncode == 0, out.stderr
        doc: dict[str, Any] = json.loads(out.stdout)[0]
        return doc


@contextlib.contextmanager
def kube_play(engine: Engine, docs: Sequence[Mapping[str, Any]], work: Path) -> Iterator[Played]:
    """Play ``docs`` (ConfigMaps and one Pod or Deployment); always ``kube down`` after, and
    remove the volumes podman made for the ConfigMaps (they outlive the pod)."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / "play.yaml"
    path.write_text("".join("---\n" + yaml.safe_dump(dict(d), sort_keys=False) for d in docs))
    workload = next(d for d in docs if d["kind"] in ("Pod", "Deployment"))
    name = workload["metadata"]["name"]
    pod = name if workload["kind"] == "Pod" else f"{name}-pod-0"
    configmaps = [d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"]
    try:
        played = engine.podman("kube", "play", str(path))
        assert played.returncode == 0, played.stdout + played.stderr
        yield Played(engine, pod, _pod_ip(engine, pod))
    finally:
        engine.podman("kube", "down", str(path))
        if configmaps:
            engine.podman("volume", "rm", "--force", *configmaps)


def _pod_ip(engine: Engine, pod: str) -> str:
    infra = engine.podman("pod", "inspect", pod, "--format", "{{.InfraContainerID}}")
    assert infra.returncode == 0, infra.stderr
    ip = engine.podman(
        "inspect", infra.stdout.strip(), "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}"
    )
    assert ip.returncode == 0 and ip.stdout.strip(), ip.stdout + ip.stderr
    return ip.stdout.strip()


def http_get(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def wait_for(played: Played, container: str, url: str, deadline: float = READY_DEADLINE) -> int | None:
    """Poll ``url`` (a probe's path) until it answers 200, the container stops, or time runs out;
    the last status (None: never answered)."""
    end = time.monotonic() + deadline
    status: int | None = None
    while time.monotonic() < end:
        try:
            status, _ = http_get(url, timeout=3)
        except OSError:
            status = None
        if status == 200:
            return status
        state = played.inspect(container)["State"]
        if state["Status"] not in ("created", "running", "initialized", "configured"):
            return status
        time.sleep(0.5)
    return status


def predictor_pod(runtime: Mapping[str, Any], isvc: Mapping[str, Any], name: str, provision: Path) -> dict[str, Any]:
    """The Pod KServe's controller would run for ``isvc`` with ``runtime`` (Standard mode),
    ready for podman: command and args expanded as kubelet would, the emptyDir at /mnt replaced
    by ``provision`` (a fresh 0777 folder, as kubelet makes it)."""
    predictor = isvc["spec"]["predictor"]
    model = predictor["model"]
    # Everything the generated objects set must be accounted for below.
    assert set(model) <= {"modelFormat", "runtime", "protocolVersion", "storageUri", "resources"}, sorted(model)
    pod_fields = (
        "automountServiceAccountToken",
        "enableServiceLinks",
        "securityContext",
        "terminationGracePeriodSeconds",
    )
    ignored = {"minReplicas", "maxReplicas", "canaryTrafficPercent", "labels", "annotations", "model"}
    assert set(predictor) <= set(pod_fields) | ignored, sorted(predictor)
    assert model["runtime"] == runtime["metadata"]["name"]

    (serving,) = copy.deepcopy(runtime["spec"]["containers"])
    assert serving["name"] == KSERVE_CONTAINER
    serving["resources"] = copy.deepcopy(model["resources"])
    spec: dict[str, Any] = {k: copy.deepcopy(predictor[k]) for k in pod_fields if k in predictor}
    spec["restartPolicy"] = "Always"
    volumes = copy.deepcopy(runtime["spec"].get("volumes", []))
    containers = [serving]
    uri = model.get("storageUri")
    if uri is not None:
        assert uri.startswith("oci://"), uri
        image = uri[len("oci://") :]
        serving.setdefault("env", []).append({"name": "MODEL_INIT_MODE", "value": "async"})
        serving.setdefault("volumeMounts", []).append({"name": PROVISION_VOLUME, "mountPath": "/mnt"})
        volumes.append({"name": PROVISION_VOLUME, "hostPath": {"path": str(provision), "type": "Directory"}})
        small = {"cpu": "10m", "memory": "15Mi"}
        containers.append(
            {
                "name": "modelcar",
                "image": image,
                "args": ["sh", "-c", f"ln -sf /proc/$$$$/root/models {MODEL_DIR} && sleep infinity"],
                "volumeMounts": [{"name": PROVISION_VOLUME, "mountPath": "/mnt"}],
                "resources": {"limits": small, "requests": small},
            }
        )
        check = (
            "[ -d /models ] && [ \"$$(ls -A /models)\" ] && echo 'OK ... Prefetched and valid (/models exists)'"
            " || (echo 'NOK ... Prefetched but modelcar is invalid (/models does not exist or is empty)' && exit 1)"
        )
        spec["initContainers"] = [
            {
                "name": "modelcar-init",
                "image": image,
                "args": ["sh", "-c", check],
                "resources": {"limits": small, "requests": small},
            }
        ]
        spec["shareProcessNamespace"] = True
    spec["containers"] = containers
    spec["volumes"] = volumes
    spec["initContainers"] = [expand_container(c) for c in spec.get("initContainers", [])]
    spec["containers"] = [expand_container(c) for c in spec["containers"]]
    if not spec["initContainers"]:
        del spec["initContainers"]
    metadata: dict[str, Any] = {"name": name, "labels": dict(isvc["metadata"].get("labels", {}))}
    if "initContainers" in spec:
        # podman 4.3 removes a run-once init container while it is still being reaped and
        # fails the play ("cannot remove container ... as it is running"); kept, it runs once all the same.
        metadata["annotations"] = {"io.podman.annotations.init.container.type": "always"}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


__all__ = ["Played", "http_get", "kube_play", "predictor_pod", "wait_for"]
