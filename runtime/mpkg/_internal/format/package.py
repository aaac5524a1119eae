"""Reading what a package says about itself, without verifying it.

For listings, registries and diff: these parse the layout and manifest strictly
but do not hash contents or check signatures. Anything that acts on a package's
contents (load, serve, unpack, pull) goes through :mod:`mpkg._internal.trust.verify` first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.manifest import Manifest
from mpkg._internal.trust.verify import payload_bytes
from mpkg.errors import FormatError, Problem


@dataclass(frozen=True)
class PackageInfo:
    """What a listing needs from a package, read from its manifest alone."""

    name: str
    version: str
    digest: str
    metrics: dict[str, float]
    size: int


def manifest_of(pkg: PackageFile) -> Manifest:
    """The open package's parsed manifest; refusals name the package file."""
    try:
        return Manifest.from_bytes(pkg.manifest_bytes)
    except FormatError as exc:
        raise FormatError(Problem(f"{pkg.where}: {p.where}", p.reason) for p in exc.problems) from None


def read_manifest(path: str | os.PathLike[str]) -> Manifest:
    """The manifest of a package, parsed and checked (the package is not verified)."""
    with PackageFile(path) as pkg:
        return manifest_of(pkg)


def read_info(path: str | os.PathLike[str]) -> PackageInfo:
    """A package's name, version, digest, metrics and size, from its manifest."""
    with PackageFile(path) as pkg:
        m = manifest_of(pkg)
        return PackageInfo(m.name, m.version, str(m.digest), m.metrics, pkg.size)


def extract_member(path: str | os.PathLike[str], logical_path: str) -> bytes:
    """One small file's bytes, as stored (files are stored uncompressed). Parses, does not verify."""
    with PackageFile(path) as pkg:
        m = manifest_of(pkg)
        entry = m.file(logical_path)
        if entry is None:
            raise FormatError(f"has no file {logical_path!r}", str(path))
        return payload_bytes(pkg, entry)
