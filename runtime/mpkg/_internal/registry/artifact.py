"""The package artifact: how a package is stored as an OCI manifest, and what a reference may resolve to.

The artifact's config blob is the package's own canonical manifest, so its OCI digest *is* the
package digest: the promotion gate reads two small manifests, never a package. A reference
asks for a package by repository and tag; the repository's last component names the package
(as Helm names chart repositories), and a tag that is a version names that version. Whatever a
registry answers is checked against that, first on the artifact's annotations (before any byte
of the package moves) and again on the verified package (:func:`check_identity`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mpkg._internal.format.manifest import MAX_MANIFEST_BYTES as MAX_PACKAGE_MANIFEST_BYTES
from mpkg._internal.format.manifest import SEMVER_RE
from mpkg._internal.format.manifest import Manifest as PackageManifest
from mpkg.errors import FormatError, RegistryError, VerificationError

from .history import PackageRef
from .layers import ANNOTATION_FILE, ANNOTATION_SIZE, FILE_TYPE, PART_TYPE, read_layers
from .refs import STAGES, Reference, is_digest
from .store import PACKAGE_ARTIFACT_TYPE, PACKAGE_CONFIG_TYPE, PACKAGE_LAYER_TYPE, Manifest, Store, check_depth

ANNOTATION_NAME = "dev.mpkg.package.name"
ANNOTATION_VERSION = "dev.mpkg.package.version"
ANNOTATION_DIGEST = "dev.mpkg.package.digest"
ANNOTATION_METRICS = "dev.mpkg.package.metrics"


def package_ref(manifest: Manifest, where: str) -> PackageRef:
    """Read a package artifact's manifest strictly, in either layout; anything else is refused.
    ``blob`` and ``size`` are the whole `.mpkg` file's, whichever pieces it is stored in."""
    doc = manifest.json()
    layers = read_layers(doc, where)
    annotations = doc.get("annotations")
    if doc.get("artifactType") != PACKAGE_ARTIFACT_TYPE or layers is None or not isinstance(annotations, dict):
        raise RegistryError(
            f"is not an mpkg package artifact ({PACKAGE_ARTIFACT_TYPE} with one {PACKAGE_LAYER_TYPE} layer, "
            f"or {PART_TYPE}/{FILE_TYPE} pieces)",
            where,
        )
    digest, name, version = (annotations.get(k) for k in (ANNOTATION_DIGEST, ANNOTATION_NAME, ANNOTATION_VERSION))
    if not isinstance(digest, str) or not isinstance(name, str) or not isinstance(version, str):
        raise RegistryError("package artifact lacks its name/version/digest annotations", where)
    if len(layers) == 1 and layers[0].media_type == PACKAGE_LAYER_TYPE:
        return PackageRef(manifest.digest, digest, name, version, layers[0].digest, layers[0].size)
    blob, size = annotations.get(ANNOTATION_FILE), sum(layer.size for layer in layers)
    if not isinstance(blob, str) or not is_digest(blob) or annotations.get(ANNOTATION_SIZE) != str(size):
        raise RegistryError(
            f"package artifact in pieces lacks {ANNOTATION_FILE} or a {ANNOTATION_SIZE} equal to its pieces' sum", where
        )
    return PackageRef(manifest.digest, digest, name, version, blob, size)


def metrics_annotation(manifest: Manifest) -> dict[str, float]:
    """The metrics an artifact's annotation claims (for gates and listings; never trusted as the package's own)."""
    raw = (manifest.json().get("annotations") or {}).get(ANNOTATION_METRICS, "{}")
    try:
        metrics = json.loads(raw) if isinstance(raw, str) and len(raw) < 65536 else {}
    except ValueError:
        return {}
    return {str(k): v for k, v in metrics.items()} if isinstance(metrics, dict) else {}


# --- what a reference asks for --------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What a reference asks for: the package the repository is named after, and the version a
    version tag names (None for stage, archive and other tags, and for digests)."""

    name: str
    version: str | None

    @classmethod
    def of(cls, ref: Reference) -> Expected:
        """What ``ref`` asks for: the package its repository is named after, the version its tag names."""
        tag = None if ref.digest else ref.tag
        version = tag.replace("_", "+") if tag and tag not in STAGES else None
        return cls(ref.repository.rsplit("/", 1)[-1], version if version and SEMVER_RE.match(version) else None)

    def problem(self, name: str, version: str) -> str | None:
        """Why a package of ``name`` and ``version`` is not what was asked for, or None."""
        if name != self.name:
            return (
                f"holds package {name!r}, but the repository is named after package {self.name!r}: a package "
                "substituted from elsewhere"
            )
        if self.version is not None and version != self.version:
            return f"holds version {version}, not the {self.version} its tag names: the tag was re-pointed (rollback)"
        return None


def check_identity(ref: Reference, name: str, version: str, *, verified: bool) -> None:
    """Refuse a package (or, before download, an artifact's claim) that is not what ``ref`` asks for."""
    problem = Expected.of(ref).problem(name, version)
    if problem is not None:
        cls = VerificationError if verified else RegistryError
        raise cls(f"{problem}; refusing it", str(ref))


def resolve(backend: Store, ref: Reference) -> tuple[Manifest, PackageRef]:
    """The artifact ``ref`` names, if its annotations claim what ``ref`` asks for."""
    if ref.reference is None:
        raise RegistryError(f"{ref} names no tag or digest; add :TAG or @sha256:...", str(ref))
    manifest = backend.get_manifest(ref.repository, ref.reference)
    if manifest is None:
        raise RegistryError(f"not found in {backend.describe()}", str(ref))
    target = package_ref(manifest, str(ref))
    check_identity(ref, target.name, target.version, verified=False)
    return manifest, target


def read_package_manifest(backend: Store, repo: str, manifest: Manifest, target: PackageRef) -> PackageManifest | None:
    """The package's own manifest from the artifact's config blob (checked against the package
    digest), or None for an artifact without one (pushed by mpkg 0.1)."""
    config: Any = manifest.json().get("config")
    if not isinstance(config, dict) or config.get("mediaType") != PACKAGE_CONFIG_TYPE:
        return None
    where = f"{repo}@{target.manifest}: config"
    if config.get("digest") != target.package:
        raise RegistryError(f"names {config.get('digest')!r}, not the package digest {target.package}", where)
    data = backend.fetch_blob_bytes(repo, target.package, MAX_PACKAGE_MANIFEST_BYTES)
    check_depth(data, where)
    try:
        return PackageManifest.from_bytes(data)
    except FormatError as exc:
        raise RegistryError(f"is not a valid package manifest ({exc.reasons()[0]})", where) from None
