"""``--target kubernetes``: Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget.

For clusters without KServe. The Deployment leaves ``replicas`` to the autoscaler (setting
it would make every ``kubectl apply`` reset the count the HPA chose).
"""

from __future__ import annotations

from .workload import (
    Doc,
    Workload,
    container,
    keys_configmap,
    labels,
    metadata,
    pod_security,
    resources,
    scrape_annotations,
    selector_labels,
    volumes,
)

CONTAINER_NAME = "mpkg"
PORT_NAME = "http"
SERVICE_PORT = 80
CPU_TARGET_PERCENT = 70
# Kubernetes' default progress deadline; raised for packages whose start-up budget is longer.
PROGRESS_DEADLINE_SECONDS = 600


def resources_for(w: Workload) -> list[Doc]:
    """The documents, in the order ``kubectl apply`` should see them."""
    docs = [keys_configmap(w), deployment(w), service(w), autoscaler(w), disruption_budget(w)]
    return [d for d in docs if d is not None]


def deployment(w: Workload) -> Doc:
    """The Deployment running the serving image with probes, limits and a locked-down pod."""
    serving = container(w, CONTAINER_NAME, PORT_NAME)
    serving["resources"] = resources(w)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(w, w.name),
        "spec": {
            "selector": {"matchLabels": selector_labels(w)},
            # Never below the current capacity while a new package rolls out.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "progressDeadlineSeconds": max(PROGRESS_DEADLINE_SECONDS, 2 * w.sizing.startup_seconds),
            "template": {
                "metadata": {
                    "labels": labels(w),
                    "annotations": {**metadata(w, w.name)["annotations"], **scrape_annotations(w)},
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security(),
                    "terminationGracePeriodSeconds": w.grace_seconds,
                    "containers": [serving],
                    "volumes": volumes(w),
                },
            },
        },
    }


def service(w: Workload) -> Doc:
    """The ClusterIP Service in front of the serving pods."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(w, w.name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(w),
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def autoscaler(w: Workload) -> Doc:
    """The HorizontalPodAutoscaler over the Deployment, between the requested replicas."""
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(w, w.name),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": w.name},
            "minReplicas": w.replicas.minimum,
            "maxReplicas": w.replicas.maximum,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": CPU_TARGET_PERCENT},
                    },
                }
            ],
        },
    }


def disruption_budget(w: Workload) -> Doc:
    """One pod at a time may be evicted (a node drain never deadlocks, even with one replica);
    pods that are not ready may always be evicted."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(w, w.name),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(w)},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


__all__ = ["autoscaler", "deployment", "disruption_budget", "resources_for", "service"]
