"""``--target kserve``: a ServingRuntime (or ClusterServingRuntime) and an InferenceService.

The runtime says how to run an mpkg package (image, command, probes, security, keys); the
InferenceService picks it by name and says which package, how many replicas, and, in
modelcar mode, where the package comes from (``storageUri: oci://...``). KServe merges the
two into the predictor pod: pod-wide settings (security context, grace period) can only be
given on the InferenceService, container settings only on the runtime.

The deployment mode is written out (``serving.kserve.io/deploymentMode``), because the two
modes accept different pods: in Standard mode KServe makes a Deployment and everything
applies; in Knative mode Knative's webhook refuses a grace period, lifecycle hooks and (unless
a feature flag is on) a pod security context, and drains through its queue-proxy instead,
while only Knative splits traffic for ``canaryTrafficPercent``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .sources import ModelcarPackage
from .workload import (
    METRICS_PATH,
    Doc,
    Workload,
    container,
    identity_annotations,
    keys_configmap,
    labels,
    metadata,
    pod_security,
    resources,
    volumes,
)

# KServe merges the InferenceService's model spec into the runtime container of this name,
# and attaches the modelcar to it.
CONTAINER_NAME = "kserve-container"
MODEL_FORMAT = "mpkg"
API_RUNTIME = "serving.kserve.io/v1alpha1"
API_ISVC = "serving.kserve.io/v1beta1"


STANDARD = "Standard"  # KServe >= 0.16's name for RawDeployment, its default
KNATIVE = "Knative"  # KServe >= 0.16's name for Serverless
MODES = {"standard": STANDARD, "knative": KNATIVE}


@dataclass(frozen=True)
class KServeOptions:
    """What the KServe target adds to a workload: canary share, cluster runtime, deployment mode."""

    canary_percent: int | None = None
    cluster_runtime: bool = False
    mode: str = STANDARD


def runtime_name(w: Workload) -> str:
    """The ServingRuntime's name, one per package name so versions share it."""
    return f"mpkg-{w.name}"


def resources_for(w: Workload, options: KServeOptions) -> list[Doc]:
    """Every KServe document for the workload, in apply order."""
    docs = [keys_configmap(w), serving_runtime(w, options), inference_service(w, options)]
    return [d for d in docs if d is not None]


def model_format(w: Workload) -> Doc:
    """The package format version is the model format version: a runtime that reads format 1
    serves every format-1 package."""
    return {"name": MODEL_FORMAT, "version": str(w.facts.format_version)}


def serving_runtime(w: Workload, options: KServeOptions) -> Doc:
    # KServe's own scrape settings for the runtime (its Prometheus aggregation reads these).
    """The (Cluster)ServingRuntime that runs the mpkg image with the V2 protocol."""
    scrape = {"prometheus.kserve.io/port": str(w.settings.port), "prometheus.kserve.io/path": METRICS_PATH}
    meta = metadata(w, runtime_name(w), namespaced=not options.cluster_runtime, extra=scrape)
    return {
        "apiVersion": API_RUNTIME,
        "kind": "ClusterServingRuntime" if options.cluster_runtime else "ServingRuntime",
        "metadata": meta,
        "spec": {
            # Named explicitly by the InferenceService: with several package runtimes in one
            # cluster, automatic selection by format would pick any of them.
            "supportedModelFormats": [{**model_format(w), "autoSelect": False}],
            "protocolVersions": ["v2"],
            "multiModel": False,
            # Knative allows only unnamed ports or h2c/http1, so the port stays unnamed.
            "containers": [serving_container(w, options)],
            "volumes": volumes(w),
        },
    }


def serving_container(w: Workload, options: KServeOptions) -> Doc:
    """The runtime's container; Knative mode drops the hook Knative refuses."""
    doc = container(w, CONTAINER_NAME, port_name=None)
    if options.mode == KNATIVE:
        del doc["lifecycle"]  # Knative refuses lifecycle hooks; its queue-proxy drains the pod
    return doc


def inference_service(w: Workload, options: KServeOptions) -> Doc:
    """The InferenceService naming the runtime and where the package comes from."""
    model: Doc = {
        "modelFormat": model_format(w),
        "runtime": runtime_name(w),
        "protocolVersion": "v2",
    }
    if isinstance(w.source, ModelcarPackage):
        model["storageUri"] = w.source.storage_uri
    model["resources"] = resources(w)
    predictor: Doc = {
        "minReplicas": w.replicas.minimum,
        "maxReplicas": w.replicas.maximum,
    }
    if options.canary_percent is not None:
        predictor["canaryTrafficPercent"] = options.canary_percent
    predictor.update(
        {
            "labels": labels(w),
            "annotations": identity_annotations(w),
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
        }
    )
    if options.mode == STANDARD:
        # Knative refuses both; there the container's own security context applies (it sets
        # the same user) and Knative derives the grace period from the revision timeout.
        predictor["securityContext"] = pod_security()
        predictor["terminationGracePeriodSeconds"] = w.grace_seconds
    predictor["model"] = model
    extra = {"serving.kserve.io/deploymentMode": options.mode, "serving.kserve.io/enable-prometheus-scraping": "true"}
    return {
        "apiVersion": API_ISVC,
        "kind": "InferenceService",
        "metadata": metadata(w, w.name, extra=extra),
        "spec": {"predictor": predictor},
    }


__all__ = [
    "KNATIVE",
    "MODES",
    "STANDARD",
    "KServeOptions",
    "inference_service",
    "resources_for",
    "runtime_name",
    "serving_runtime",
]
