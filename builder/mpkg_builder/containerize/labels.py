"""The labels of an image mpkg builds: what it carries, from which digest, on which base.

OCI's annotation keys (``org.opencontainers.image.*``) for any tool, mpkg's own for the package,
so `mpkg deploy` and a reviewer can tell a running image's package without opening it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from .baseimage import is_pinned, split_pinned
from .follow import Followed

LABEL_TITLE = "org.opencontainers.image.title"
LABEL_VERSION = "org.opencontainers.image.version"
LABEL_BASE = "org.opencontainers.image.base.name"
LABEL_BASE_DIGEST = "org.opencontainers.image.base.digest"
LABEL_NAME = "dev.mpkg.package.name"
LABEL_PKG_VERSION = "dev.mpkg.package.version"
LABEL_DIGEST = "dev.mpkg.package.digest"
LABEL_RUNTIME = "dev.mpkg.runtime.version"
# Follow mode: the image serves what a reference names, so it carries no package digest; it
# says what it follows, and which package (at build time) its Python dependencies came from.
LABEL_FOLLOW = "dev.mpkg.follow.reference"
LABEL_FOLLOW_INTERVAL = "dev.mpkg.follow.interval"
LABEL_BUILT_FROM = "dev.mpkg.follow.built-from.digest"
LABEL_BUILT_FROM_VERSION = "dev.mpkg.follow.built-from.version"


@dataclass(frozen=True)
class ServedPackage:
    """The verified package an image carries: its identity, and its file name in the image."""

    name: str
    version: str
    digest: str
    filename: str  # under package/ in the context and /models/ in the image


def image_labels(package: ServedPackage, base: str, runtime_version: str) -> dict[str, str]:
    """OCI and mpkg labels: what is served, and from which digest, on which base."""
    base_name, base_digest = split_pinned(base) if is_pinned(base) else (base, "")
    return {
        LABEL_TITLE: package.name,
        LABEL_VERSION: package.version,
        LABEL_BASE: base_name,
        **({LABEL_BASE_DIGEST: base_digest} if base_digest else {}),
        LABEL_NAME: package.name,
        LABEL_PKG_VERSION: package.version,
        LABEL_DIGEST: package.digest,
        **({LABEL_RUNTIME: runtime_version} if runtime_version else {}),
    }


def follow_labels(package: ServedPackage, follow: Followed, base: str, runtime_version: str) -> dict[str, str]:
    """A follow-mode image's labels: the reference and interval it follows, and the package
    (name, version, digest at build time) whose lockfile gave it its wheels; no package digest,
    since what it serves moves with the tag."""
    labels = image_labels(package, base, runtime_version)
    for key in (LABEL_VERSION, LABEL_PKG_VERSION, LABEL_DIGEST):
        del labels[key]
    return {
        **labels,
        LABEL_FOLLOW: follow.reference,
        LABEL_FOLLOW_INTERVAL: follow.interval_text,
        LABEL_BUILT_FROM: package.digest,
        LABEL_BUILT_FROM_VERSION: package.version,
    }


def label_instruction(labels: Mapping[str, str]) -> str:
    """One LABEL instruction, values JSON-quoted (a label may hold any text)."""
    return "LABEL " + " \\\n      ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items()))


__all__ = [
    "LABEL_BASE",
    "LABEL_BASE_DIGEST",
    "LABEL_BUILT_FROM",
    "LABEL_BUILT_FROM_VERSION",
    "LABEL_DIGEST",
    "LABEL_FOLLOW",
    "LABEL_FOLLOW_INTERVAL",
    "LABEL_NAME",
    "LABEL_PKG_VERSION",
    "LABEL_RUNTIME",
    "LABEL_TITLE",
    "LABEL_VERSION",
    "ServedPackage",
    "follow_labels",
    "image_labels",
    "label_instruction",
]
