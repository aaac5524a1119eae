"""The serving pod both targets share: container, probes, security, volumes, metadata.

A :class:`Workload` is everything decided about one deployment; the functions here turn it
into the pieces of Kubernetes objects that the kubernetes and kserve modules assemble. The
field-by-field reasons are in spec/deploy.md.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

import mpkg

from ..containerize.dockerfile import RUNTIME_UID
from ..containerize.follow import CACHE_DIR, DOCKER_CONFIG_DIR
from .facts import PackageFacts, Sizing, cache_size, digest_label, label_value
from .sources import KEYS_DIR, FollowedReference, PackageSource, ServerSettings, grace_period, server_invocation

LIVE_PATH = "/v2/health/live"
READY_PATH = "/v2/health/ready"
METRICS_PATH = "/metrics"
# Pause before SIGTERM so endpoints stop sending traffic before the server starts draining.
PRE_STOP_SECONDS = 5
STARTUP_PERIOD_SECONDS = 5
TMP_SIZE_LIMIT = "64Mi"
CPU_REQUEST = "1"
MANAGED_BY = "mpkg"
ANNOTATION_PREFIX = "mpkg.dev"

Doc = dict[str, Any]


@dataclass(frozen=True)
class Replicas:
    """The replica range, from ``--replicas MIN:MAX``."""

    minimum: int
    maximum: int


@dataclass(frozen=True)
class Workload:
    """One deployment of one package, fully decided."""

    name: str
    namespace: str | None
    facts: PackageFacts
    sizing: Sizing
    image: str
    source: PackageSource
    settings: ServerSettings
    keys: tuple[tuple[str, bytes], ...]  # (file name under KEYS_DIR, contents)
    replicas: Replicas

    @property
    def keys_configmap(self) -> str:
        """The ConfigMap that carries the trusted public keys."""
        return f"{self.name}-keys"

    @property
    def grace_seconds(self) -> int:
        """Termination grace longer than the server's drain, so in-flight requests finish."""
        return grace_period(self.settings.drain_timeout, PRE_STOP_SECONDS)


# --------------------------------------------------------------------------- metadata


def selector_labels(w: Workload) -> Doc:
    """Stable across versions (a Deployment's selector cannot change)."""
    return {"app.kubernetes.io/name": w.facts.name, "app.kubernetes.io/instance": w.name}


def labels(w: Workload) -> Doc:
    """Labels naming the package, its version and digest on every resource; following a
    reference, the pods serve what its tag names, so they say so instead of a version."""
    if isinstance(w.source, FollowedReference):
        return {
            **selector_labels(w),
            "app.kubernetes.io/component": "predictor",
            "app.kubernetes.io/managed-by": MANAGED_BY,
            f"{ANNOTATION_PREFIX}/mode": "follow",
            f"{ANNOTATION_PREFIX}/generated-from-digest": digest_label(w.facts.digest),
        }
    return {
        **selector_labels(w),
        "app.kubernetes.io/version": label_value(w.facts.version),
        "app.kubernetes.io/component": "predictor",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        f"{ANNOTATION_PREFIX}/package-digest": digest_label(w.facts.digest),
    }


def identity_annotations(w: Workload) -> Doc:
    """The exact identity (label values cannot hold a digest or a `+`); following a reference,
    the reference and what it named when the manifests were generated."""
    if isinstance(w.source, FollowedReference):
        return {
            f"{ANNOTATION_PREFIX}/package-name": w.facts.name,
            f"{ANNOTATION_PREFIX}/follow-reference": w.source.reference,
            f"{ANNOTATION_PREFIX}/follow-interval": w.source.followed.interval_text,
            f"{ANNOTATION_PREFIX}/generated-from-version": w.facts.version,
            f"{ANNOTATION_PREFIX}/generated-from-digest": w.facts.digest,
            f"{ANNOTATION_PREFIX}/generated-by": f"mpkg {mpkg.__version__}",
        }
    return {
        f"{ANNOTATION_PREFIX}/package-name": w.facts.name,
        f"{ANNOTATION_PREFIX}/package-version": w.facts.version,
        f"{ANNOTATION_PREFIX}/package-digest": w.facts.digest,
        f"{ANNOTATION_PREFIX}/generated-by": f"mpkg {mpkg.__version__}",
    }


def scrape_annotations(w: Workload) -> Doc:
    """Prometheus scrape annotations for the server's /metrics."""
    return {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(w.settings.port),
        "prometheus.io/path": METRICS_PATH,
    }


def metadata(w: Workload, name: str, *, namespaced: bool = True, extra: Doc | None = None) -> Doc:
    """Metadata every resource carries: name, namespace, labels, identity annotations."""
    doc: Doc = {"name": name}
    if namespaced and w.namespace:
        doc["namespace"] = w.namespace
    doc["labels"] = labels(w)
    doc["annotations"] = {**identity_annotations(w), **(extra or {})}
    return doc


# --------------------------------------------------------------------------- container


def probes(w: Workload) -> Doc:
    """startup waits for the package to verify, load and pass its smoke test (ready), within
    the budget derived from its size; then liveness says the process answers at all, and
    readiness whether it should get traffic (false while loading and while draining)."""
    port = w.settings.port
    return {
        "startupProbe": {
            "httpGet": {"path": READY_PATH, "port": port},
            "periodSeconds": STARTUP_PERIOD_SECONDS,
            "timeoutSeconds": 5,
            "failureThreshold": math.ceil(w.sizing.startup_seconds / STARTUP_PERIOD_SECONDS),
        },
        "livenessProbe": {
            "httpGet": {"path": LIVE_PATH, "port": port},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": READY_PATH, "port": port},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 2,
        },
    }


def container_security() -> Doc:
    """The non-root, read-only, unprivileged security context the server runs under."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUNTIME_UID,
        "runAsGroup": RUNTIME_UID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def pod_security() -> Doc:
    """Pod-wide, so a sidecar KServe adds (the modelcar) runs as the same user: reading its
    files through /proc/PID/root needs the same UID."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUNTIME_UID,
        "runAsGroup": RUNTIME_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(w: Workload) -> Doc:
    """Memory request = limit (the server cannot give memory back under pressure); no CPU
    limit (throttling shows up as latency, the request already reserves a core)."""
    return {
        "requests": {"cpu": CPU_REQUEST, "memory": w.sizing.memory},
        "limits": {"memory": w.sizing.memory},
    }


def volumes(w: Workload) -> list[Doc]:
    """/tmp: the only place the server writes (multi-worker metrics, Python's tempfile), on
    an otherwise read-only root file system. The keys: a ConfigMap, read-only. Following a
    reference: the package cache (two packages, spec/deploy.md §3) and the registry credentials."""
    out: list[Doc] = [{"name": "tmp", "emptyDir": {"sizeLimit": TMP_SIZE_LIMIT}}]
    if w.keys:
        out.append({"name": "mpkg-keys", "configMap": {"name": w.keys_configmap, "defaultMode": 0o444}})
    if isinstance(w.source, FollowedReference):
        out.append({"name": "mpkg-cache", "emptyDir": {"sizeLimit": cache_size(w.facts)}})
        if w.source.registry_secret is not None:
            items = [{"key": ".dockerconfigjson", "path": "config.json"}]
            secret = {"secretName": w.source.registry_secret, "items": items, "defaultMode": 0o444}
            out.append({"name": "registry-auth", "secret": secret})
    return out


def volume_mounts(w: Workload) -> list[Doc]:
    """Writable /tmp (the root filesystem is read-only) and the trusted keys; following a
    reference, the package cache and the registry credentials."""
    out: list[Doc] = [{"name": "tmp", "mountPath": "/tmp"}]
    if w.keys:
        out.append({"name": "mpkg-keys", "mountPath": KEYS_DIR, "readOnly": True})
    if isinstance(w.source, FollowedReference):
        out.append({"name": "mpkg-cache", "mountPath": CACHE_DIR})
        if w.source.registry_secret is not None:
            out.append({"name": "registry-auth", "mountPath": DOCKER_CONFIG_DIR, "readOnly": True})
    return out


def container(w: Workload, name: str, port_name: str | None) -> Doc:
    """The serving container; ``port_name`` None where the platform forbids names (Knative)."""
    run = server_invocation(w.source, w.settings)
    port: Doc = {"containerPort": w.settings.port, "protocol": "TCP"}
    if port_name:
        port = {"name": port_name, **port}
    doc: Doc = {
        "name": name,
        "image": w.image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(run.command),
        "args": list(run.args),
    }
    if run.env:
        doc["env"] = [{"name": k, "value": v} for k, v in run.env]
    doc["ports"] = [port]
    doc.update(probes(w))
    doc["lifecycle"] = {"preStop": {"sleep": {"seconds": PRE_STOP_SECONDS}}}
    doc["securityContext"] = container_security()
    doc["volumeMounts"] = volume_mounts(w)
    return doc


def keys_configmap(w: Workload) -> Doc | None:
    """The trusted public keys, one file each. Public keys are not secrets; a ConfigMap
    keeps them readable in review (swap in a Secret of the same name if policy wants one)."""
    if not w.keys:
        return None
    data: Doc = {}
    binary: Doc = {}
    for filename, content in w.keys:
        try:
            data[filename] = content.decode("utf-8")
        except UnicodeDecodeError:
            binary[filename] = base64.b64encode(content).decode("ascii")
    doc: Doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(w, w.keys_configmap)}
    if data:
        doc["data"] = data
    if binary:
        doc["binaryData"] = binary
    return doc


__all__ = [
    "LIVE_PATH",
    "METRICS_PATH",
    "READY_PATH",
    "Replicas",
    "Workload",
    "container",
    "identity_annotations",
    "keys_configmap",
    "labels",
    "metadata",
    "pod_security",
    "probes",
    "resources",
    "scrape_annotations",
    "selector_labels",
    "volume_mounts",
    "volumes",
]
