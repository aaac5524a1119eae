"""Writing the package artifact: a package as an OCI manifest (spec/registry.md §2).

Reading it (and what a reference may resolve to) is the runtime's
:mod:`mpkg._internal.registry.artifact`.
"""

from __future__ import annotations

import json

from mpkg._internal.format.manifest import Manifest as PackageManifest
from mpkg._internal.registry.artifact import ANNOTATION_DIGEST, ANNOTATION_METRICS, ANNOTATION_NAME, ANNOTATION_VERSION
from mpkg._internal.registry.store import PACKAGE_ARTIFACT_TYPE, PACKAGE_CONFIG_TYPE, PACKAGE_LAYER_TYPE

from .backend import artifact_manifest


def package_manifest(package: PackageManifest, blob: str, size: int) -> bytes:
    """The package's OCI manifest: same package, same bytes (no timestamps)."""
    name, version = package.name, package.version
    layer = {
        "mediaType": PACKAGE_LAYER_TYPE,
        "digest": blob,
        "size": size,
        "annotations": {"org.opencontainers.image.title": f"{name}-{version}.mpkg"},
    }
    config = {"mediaType": PACKAGE_CONFIG_TYPE, "digest": str(package.digest), "size": len(package.encoded)}
    return artifact_manifest(
        PACKAGE_ARTIFACT_TYPE,
        [layer],
        {
            ANNOTATION_NAME: name,
            ANNOTATION_VERSION: version,
            ANNOTATION_DIGEST: str(package.digest),
            ANNOTATION_METRICS: json.dumps(package.metrics, sort_keys=True, separators=(",", ":")),
            "org.opencontainers.image.title": name,
            "org.opencontainers.image.version": version,
        },
        config,
    )
