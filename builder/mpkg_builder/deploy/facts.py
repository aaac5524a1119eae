"""What the manifests are derived from: a verified package's identity and sizes.

Sizing rules (spec/deploy.md §3) live here, next to the facts they read, so the numbers in
a manifest can be traced to one formula each:

- memory (request and limit): ``256 MiB + 2 x weights``, rounded up to a multiple of 64 MiB.
  256 MiB covers the interpreter, numpy, onnxruntime, pyarrow and the HTTP server (about 90 MiB
  measured serving the examples); weights count twice because the mapped package pages and the
  runtime's own copy (onnxruntime's initializers) are resident together while serving.
- start-up budget: ``60 s + package bytes / 25 MiB/s``: one hashing pass (verify) and one load
  pass over the package at a pessimistic 50 MiB/s each on a busy node, after a minute for the
  interpreter and imports.
- following a reference (``--follow``): memory counts the weights twice more (``256 MiB + 4 x
  weights``), because during a swap the candidate is loaded and smoke-tested while the current
  package still answers; the start-up budget adds the download (``package bytes / 50 MiB/s``);
  the package cache holds two packages (the current one and a candidate) plus 64 MiB for the
  history's event cache.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from mpkg._internal.trust.verify import Policy, verify
from mpkg.errors import VerificationError

MIB = 1024 * 1024
BASE_MEMORY = 256 * MIB
WEIGHTS_FACTOR = 2
MEMORY_STEP = 64 * MIB
STARTUP_FIXED_SECONDS = 60
STARTUP_BYTES_PER_SECOND = 25 * MIB
DOWNLOAD_BYTES_PER_SECOND = 50 * MIB
MODELS_DURING_A_SWAP = 2
CACHE_PACKAGES = 2
CACHE_HEADROOM = 64 * MIB

# Kubernetes label values: at most 63 characters, alphanumerics at both ends, `-_.` inside.
_LABEL_VALUE = re.compile(r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


@dataclass(frozen=True)
class PackageFacts:
    """A package's identity and sizes, read after it verified."""

    name: str
    version: str
    digest: str  # "sha256:<hex>"
    model_format: str  # onnx | safetensors
    format_version: int
    package_bytes: int
    weights_bytes: int

    @property
    def filename(self) -> str:
        """The package's file name in images (containerize's /models/NAME-VERSION.mpkg)."""
        return f"{self.name}-{self.version}.mpkg"


@dataclass(frozen=True)
class Sizing:
    """What a pod needs, derived from the package so manifests follow the model's size."""

    memory_bytes: int
    startup_seconds: int

    @property
    def memory(self) -> str:
        """As a Kubernetes quantity (always whole MiB)."""
        return f"{self.memory_bytes // MIB}Mi"


def read_facts(package: str | os.PathLike[str], policy: Policy) -> PackageFacts:
    """Verify ``package`` completely under ``policy`` and return its facts.

    Manifests are only written for a package that verifies with the keys the cluster will
    trust: the pods would refuse it at start anyway, after a rollout had begun.
    """
    result = verify(package, policy)
    result.raise_for_errors()
    manifest = result.manifest
    if manifest is None:  # verify reports an error whenever it has no manifest
        raise VerificationError(f"{package}: has no readable manifest")
    return PackageFacts(
        name=manifest.name,
        version=manifest.version,
        digest=str(manifest.digest),
        model_format=manifest.model_format,
        format_version=manifest.format_version,
        package_bytes=Path(package).stat().st_size,
        weights_bytes=sum(f.size for f in manifest.files if f.role == "weights"),
    )


def sizing(facts: PackageFacts, follow: bool = False) -> Sizing:
    """Memory request and startup budget from the weights and package size (spec/deploy.md);
    ``follow`` sizes for two loaded models during a swap and a download at start."""
    models = MODELS_DURING_A_SWAP if follow else 1
    memory = BASE_MEMORY + models * WEIGHTS_FACTOR * facts.weights_bytes
    memory = math.ceil(memory / MEMORY_STEP) * MEMORY_STEP
    startup = STARTUP_FIXED_SECONDS + math.ceil(facts.package_bytes / STARTUP_BYTES_PER_SECOND)
    if follow:
        startup += math.ceil(facts.package_bytes / DOWNLOAD_BYTES_PER_SECOND)
    return Sizing(memory, startup)


def cache_size(facts: PackageFacts) -> str:
    """The follow mode's package cache (an emptyDir sizeLimit): two packages and the event cache."""
    return f"{math.ceil((CACHE_PACKAGES * facts.package_bytes + CACHE_HEADROOM) / MIB)}Mi"


def label_value(text: str) -> str:
    """``text`` as a valid label value, the way Helm charts do it: ``+`` becomes ``_``, cut at
    63 characters, trailing punctuation dropped. The exact value goes in an annotation."""
    value = text.replace("+", "_")[:63].rstrip("-_.")
    value = re.sub(r"[^-A-Za-z0-9_.]", "_", value).lstrip("-_.")
    assert _LABEL_VALUE.match(value), value
    return value


def digest_label(digest: str) -> str:
    """A package digest as a label value: ``sha256-`` and the first 56 hex digits (224 bits)."""
    algorithm, _, hex_digits = digest.partition(":")
    return label_value(f"{algorithm}-{hex_digits}")


def is_label_value(text: str) -> bool:
    """Whether ``text`` is a valid Kubernetes label value as it stands."""
    return bool(_LABEL_VALUE.match(text))


__all__ = [
    "PackageFacts",
    "Sizing",
    "cache_size",
    "digest_label",
    "is_label_value",
    "label_value",
    "read_facts",
    "sizing",
]
