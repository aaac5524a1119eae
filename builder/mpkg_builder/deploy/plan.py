"""From a package and the user's options to the list of documents to write.

Options are checked together and refused once, each problem naming its flag; the package is
verified with the keys the cluster will trust before anything is generated.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mpkg._internal.trust.verify import policy_for
from mpkg.errors import ProblemCollector, UsageError

from ..containerize.follow import DEFAULT_INTERVAL, Followed, check_followed, fetch_current
from ..containerize.imageref import is_image_reference
from . import kserve, kubernetes
from .facts import PackageFacts, Sizing, read_facts, sizing
from .output import Document
from .sources import (
    BakedPackage,
    FollowedReference,
    ModelcarPackage,
    PackageSource,
    ServerSettings,
    default_drain_timeout,
)
from .workload import Replicas, Workload

TARGETS = ("kserve", "kubernetes")
# Room for what Kubernetes and KServe append to the name (`-predictor-canary`, pod hashes)
# inside the 63 characters of a DNS label.
MAX_NAME = 45
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_REPLICAS = re.compile(r"^(\d{1,6})(?::(\d{1,6}))?$")
DEFAULT_REPLICAS = Replicas(1, 3)


@dataclass(frozen=True)
class DeployOptions:
    """What ``mpkg deploy`` was asked for (spec/deploy.md §2)."""

    target: str
    image: str | None
    name: str | None = None
    namespace: str | None = None
    replicas: Replicas = DEFAULT_REPLICAS
    canary_percent: int | None = None
    cluster_runtime: bool = False
    modelcar: str | None = None  # an image reference; "oci://" is added in storageUri
    kserve_mode: str | None = None  # standard (default) | knative
    keys: tuple[str, ...] = ()
    allow_unsigned: bool = False
    follow: bool = False  # PKG is a registry reference the pods follow (mpkg serve REF --follow)
    interval: float | None = None  # --interval, with follow
    insecure: bool = False  # the followed registry talks plain HTTP
    registry_secret: str | None = None  # a dockerconfigjson Secret for the followed registry


@dataclass(frozen=True)
class Plan:
    """The documents for one deployment, and what they were derived from."""

    facts: PackageFacts
    sizing: Sizing
    workload: Workload
    documents: tuple[Document, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def origin(self) -> str:
        """The package a manifest came from, written into every document's header."""
        source = self.workload.source
        if isinstance(source, FollowedReference):
            return (
                f"{source.reference}, followed (it named {self.facts.name} {self.facts.version} "
                f"({self.facts.digest}) when generated)"
            )
        return f"{self.facts.name} {self.facts.version} ({self.facts.digest})"


def parse_replicas(text: str) -> Replicas:
    """``MIN:MAX`` or ``N`` (= N:N)."""
    m = _REPLICAS.match(text.strip())
    if not m:
        raise UsageError(f"{text!r} is not MIN:MAX or N, e.g. 2:10", "--replicas")
    low = int(m.group(1))
    high = int(m.group(2)) if m.group(2) is not None else low
    return Replicas(low, high)


def check_options(options: DeployOptions, package_name: str | None = None) -> None:
    """Every problem with ``options`` at once, each naming its flag."""
    problems = ProblemCollector()
    if options.target not in TARGETS:
        problems.add("--target", f"must be one of {', '.join(TARGETS)}")
    kserve_only = [
        ("--canary", options.canary_percent is not None),
        ("--cluster-runtime", options.cluster_runtime),
        ("--modelcar", options.modelcar is not None),
        ("--kserve-mode", options.kserve_mode is not None),
    ]
    knative = options.kserve_mode == "knative"
    if options.kserve_mode is not None and options.kserve_mode not in kserve.MODES:
        problems.add("--kserve-mode", f"must be one of {', '.join(kserve.MODES)}")
    if not options.follow:
        for flag, given in (
            ("--interval", options.interval is not None),
            ("--insecure", options.insecure),
            ("--registry-secret", options.registry_secret is not None),
        ):
            if given:
                problems.add(flag, "applies to a followed reference; add --follow")
    elif options.modelcar is not None:
        problems.add("--modelcar", "and --follow are two sources of the package; pick one")
    if options.registry_secret is not None and not _dns_label(options.registry_secret, 253):
        problems.add("--registry-secret", f"{options.registry_secret!r} is not a Secret name")
    if options.target == "kubernetes":
        for flag, given in kserve_only:
            if given:
                problems.add(flag, "is a KServe option: it needs --target kserve")
    if options.image is None:
        problems.add(
            "--image",
            "is required: the runtime image `mpkg containerize PKG -t IMAGE` built, pinned as IMAGE@sha256:DIGEST",
        )
    for flag, ref in (("--image", options.image), ("--modelcar", options.modelcar)):
        if ref is not None and not is_image_reference(ref):
            problems.add(flag, f"{ref!r} is not an image reference; use NAME[:TAG][@sha256:DIGEST]")
    name = options.name or package_name
    if name is not None and not _dns_label(name, MAX_NAME):
        flag = "--name" if options.name else "package name"
        problems.add(
            flag,
            f"{name!r} is not a Kubernetes name: lowercase letters, digits and '-', starting with a "
            f"letter, ending with a letter or digit, at most {MAX_NAME} characters"
            + ("" if options.name else "; pass --name"),
        )
    if options.namespace is not None and not _dns_label(options.namespace, 63):
        problems.add("--namespace", f"{options.namespace!r} is not a namespace name (a DNS label)")
    low, high = options.replicas.minimum, options.replicas.maximum
    if low < 1 and not knative:
        problems.add("--replicas", "MIN 0 (scale to zero) needs --target kserve --kserve-mode knative")
    if high < max(low, 1):
        problems.add("--replicas", "MAX must be at least MIN and at least 1")
    if options.canary_percent is not None and not 0 <= options.canary_percent <= 100:
        problems.add("--canary", "must be a percentage from 0 to 100")
    if options.target == "kserve" and options.canary_percent is not None and not knative:
        problems.add(
            "--canary",
            "needs --kserve-mode knative: KServe's Standard mode ignores canaryTrafficPercent without a word",
        )
    if not options.keys and not options.allow_unsigned:
        problems.add("--key", "name the public keys the cluster trusts (or --allow-unsigned, which serves anything)")
    problems.raise_if_any(UsageError)


def plan(package: str | os.PathLike[str], options: DeployOptions) -> Plan:
    """Check ``options``, verify ``package`` with the trusted keys, and build the documents.

    With ``options.follow``, ``package`` is a registry reference: the facts are those of what it
    names now, pulled and verified under the same keys (the pods will follow it)."""
    check_options(options)
    followed = None
    if options.follow:
        check_followed(os.fspath(package), "PKG")
        followed = Followed(os.fspath(package), options.interval or DEFAULT_INTERVAL, options.insecure)
        _digest, package = fetch_current(followed, options.keys, options.allow_unsigned)
    policy = policy_for(options.keys, allow_unsigned=options.allow_unsigned)
    facts = read_facts(package, policy)
    check_options(options, facts.name)
    assert options.image is not None  # check_options refused it
    keys = _key_files(options.keys)
    settings = ServerSettings(default_drain_timeout(), tuple(n for n, _ in keys), options.allow_unsigned)
    source: PackageSource
    if followed is not None:
        source = FollowedReference(followed, options.registry_secret)
    elif options.modelcar:
        source = ModelcarPackage(options.modelcar, facts.filename)
    else:
        source = BakedPackage(facts.filename)
    size = sizing(facts, follow=followed is not None)
    workload = Workload(
        name=options.name or facts.name,
        namespace=options.namespace,
        facts=facts,
        sizing=size,
        image=options.image,
        source=source,
        settings=settings,
        keys=keys,
        replicas=options.replicas,
    )
    if options.target == "kserve":
        mode = kserve.MODES[options.kserve_mode or "standard"]
        kopts = kserve.KServeOptions(options.canary_percent, options.cluster_runtime, mode)
        bodies = kserve.resources_for(workload, kopts)
    else:
        bodies = kubernetes.resources_for(workload)
    docs = tuple(Document(i, body) for i, body in enumerate(bodies, start=1))
    return Plan(facts, size, workload, docs, tuple(_warnings(options)))


def _key_files(keys: Sequence[str]) -> tuple[tuple[str, bytes], ...]:
    """Each distinct key's bytes under a stable file name (key-1.pub, ...), as containerize names them."""
    seen: list[bytes] = []
    for key in keys:
        data = Path(key).read_bytes()  # readable: policy_for loaded it already
        if data not in seen:
            seen.append(data)
    return tuple((f"key-{i}.pub", data) for i, data in enumerate(seen, start=1))


def _warnings(options: DeployOptions) -> list[str]:
    out = []
    for flag, ref in (("--image", options.image), ("--modelcar", options.modelcar)):
        if ref is not None and "@sha256:" not in ref:
            out.append(
                f"{flag} {ref} is not pinned by digest: nodes may run different images under one tag; "
                "pass NAME@sha256:DIGEST (podman push --digestfile FILE writes the digest)"
            )
    if options.allow_unsigned:
        out.append("--allow-unsigned: the pods will serve packages that carry no trusted signature")
    return out


def _dns_label(text: str, limit: int) -> bool:
    return len(text) <= limit and bool(_DNS_LABEL.match(text))


__all__ = ["DEFAULT_REPLICAS", "TARGETS", "DeployOptions", "Plan", "check_options", "parse_replicas", "plan"]
