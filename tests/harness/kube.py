"""Checking Kubernetes manifests without a cluster.

- :class:`CrdSchemas`: KServe's own CRDs (tests/data/kserve-crds, copied unchanged from KServe),
  each version's ``openAPIV3Schema`` checked with jsonschema. Like ``kubectl apply
  --validate=strict``, a field the schema does not list is an error (the API server would
  prune it silently, which is worse); ``x-kubernetes-preserve-unknown-fields`` lifts that,
  ``x-kubernetes-int-or-string`` admits both types.
- :func:`validate_core`: core objects with ``kubernetes-validate`` (offline, strict), at the
  oldest Kubernetes mpkg deploy supports and the newest the package knows.
- :func:`metadata_problems`: what neither schema checks: names, label and annotation syntax.
- :func:`kubelet_expand`: kubelet's ``$(VAR)``/``$$`` expansion of command and args, which
  ``podman kube play`` does not do.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import jsonschema
import yaml

CRD_DIR = Path(__file__).resolve().parents[1] / "data" / "kserve-crds"
# preStop `sleep` (PodLifecycleSleepAction) is on by default from Kubernetes 1.30.
OLDEST_KUBERNETES = "1.30"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


class CrdSchemas:
    """The openAPIV3Schema of every (group, version, kind) in the CRD folder."""

    def __init__(self, folder: Path = CRD_DIR) -> None:
        self.folder = folder

    @cached_property
    def schemas(self) -> dict[tuple[str, str], dict[str, Any]]:
        out: dict[tuple[str, str], dict[str, Any]] = {}
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        for path in sorted(self.folder.glob("*.yaml")):
            crd = yaml.load(path.read_text(), Loader=loader)
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served", True):
                    schema = strict(version["schema"]["openAPIV3Schema"])
                    out[(f"{group}/{version['name']}", kind)] = schema
        return out

    def knows(self, doc: Mapping[str, Any]) -> bool:
        return (doc["apiVersion"], doc["kind"]) in self.schemas

    def errors(self, doc: Mapping[str, Any]) -> list[str]:
        schema = self.schemas[(doc["apiVersion"], doc["kind"])]
        validator = jsonschema.Draft7Validator(schema)
        return [f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in validator.iter_errors(doc)]


def strict(node: Any) -> Any:
    """A CRD schema as jsonschema understands it, with unknown fields refused."""
    if isinstance(node, list):
        return [strict(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict(v) for k, v in node.items()}
    if out.get("x-kubernetes-int-or-string") and "type" not in out and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    preserve = out.get("x-kubernetes-preserve-unknown-fields")
    if "properties" in out and not preserve and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def validate_core(doc: Mapping[str, Any], versions: Iterable[str] | None = None) -> list[str]:
    """kubernetes-validate's strict check at each Kubernetes version; problems as text."""
    import kubernetes_validate

    problems = []
    for version in versions or (OLDEST_KUBERNETES, kubernetes_validate.latest_version()):
        try:
            kubernetes_validate.validate(dict(doc), version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{version}: {'.'.join(map(str, exc.path))}: {exc.message}")
    return problems


def validate_object_meta(meta: Mapping[str, Any]) -> list[str]:
    """ObjectMeta checked strictly through a ConfigMap wrapper (CRD schemas say only `object`)."""
    return validate_core({"apiVersion": "v1", "kind": "ConfigMap", "metadata": dict(meta)})


def metadata_problems(doc: Mapping[str, Any]) -> list[str]:
    """Names, labels and annotations as the API server would check them, in every metadata
    block of ``doc`` (objects, pod templates, KServe's predictor labels)."""
    problems: list[str] = []
    for where, meta in _metadata_blocks(doc):
        name = meta.get("name")
        if name is not None and not (len(name) <= 253 and _DNS_SUBDOMAIN.match(name)):
            problems.append(f"{where}.name {name!r} is not a DNS subdomain")
        for key, value in (meta.get("labels") or {}).items():
            problems += [f"{where}.labels[{key!r}]: {p}" for p in _key_problems(key)]
            if not (isinstance(value, str) and len(value) <= 63 and _LABEL_VALUE.match(value)):
                problems.append(f"{where}.labels[{key!r}] value {value!r} is not a label value")
        for key, value in (meta.get("annotations") or {}).items():
            problems += [f"{where}.annotations[{key!r}]: {p}" for p in _key_problems(key)]
            if not isinstance(value, str):
                problems.append(f"{where}.annotations[{key!r}] is not a string")
    return problems


def _metadata_blocks(doc: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    yield "metadata", doc["metadata"]
    template = doc.get("spec", {}).get("template", {}).get("metadata")
    if template is not None:
        yield "spec.template.metadata", template
    predictor = doc.get("spec", {}).get("predictor")
    if predictor is not None:
        yield "spec.predictor", predictor


def _key_problems(key: str) -> list[str]:
    prefix, _, name = key.rpartition("/")
    out = []
    if prefix and not (len(prefix) <= 253 and _DNS_SUBDOMAIN.match(prefix)):
        out.append(f"prefix {prefix!r} is not a DNS subdomain")
    if not (len(name) <= 63 and _QUALIFIED_NAME.match(name)):
        out.append(f"name {name!r} is not a qualified name")
    return out


def kubelet_expand(text: str, env: Mapping[str, str]) -> str:
    """kubelet's expansion of a command or argument: ``$$`` is ``$``, ``$(NAME)`` is the
    container's variable when defined (else left as written), any other ``$`` stays."""
    out = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    out.append(env[name] if name in env else text[i : end + 1])
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


def expand_container(container: dict[str, Any]) -> dict[str, Any]:
    """``container`` with command and args as kubelet would run them."""
    env = {e["name"]: e.get("value", "") for e in container.get("env", [])}
    out = copy.deepcopy(container)
    for key in ("command", "args"):
        if key in out:
            out[key] = [kubelet_expand(a, env) for a in out[key]]
    return out


__all__ = [
    "OLDEST_KUBERNETES",
    "CrdSchemas",
    "expand_container",
    "kubelet_expand",
    "metadata_problems",
    "strict",
    "validate_core",
    "validate_object_meta",
]
