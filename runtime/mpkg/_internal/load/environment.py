"""Compare the running Python environment with a package's pinned lockfile.

The manifest lists every locked distribution (``environment.packages``) and optionally
``requires_python``. A mismatch is reported, never silently ignored: ``mpkg verify --env``
lists them all, ``mpkg.load(strict_env=True)`` refuses to load.
"""

from __future__ import annotations

import importlib.metadata
import platform
from collections.abc import Callable, Mapping
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from mpkg._internal.format.manifest import Manifest
from mpkg.errors import EnvironmentMismatch, Problem

Lookup = Callable[[str], str | None]


def installed_version(name: str) -> str | None:
    """The installed version of distribution ``name``, or None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _same(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def check_environment(
    manifest: Manifest | Mapping[str, Any],
    python_version: str | None = None,
    lookup: Lookup = installed_version,
) -> list[str]:
    """Every difference between this environment and the lockfile, one line each (empty: match).

    ``manifest`` is a Manifest or its ``environment`` object; ``python_version`` and
    ``lookup`` default to the running interpreter and ``importlib.metadata``."""
    env = manifest.environment if isinstance(manifest, Manifest) else manifest
    python = python_version or platform.python_version()
    mismatches: list[str] = []
    requires = env.get("requires_python")
    if isinstance(requires, str) and requires:
        try:
            if not SpecifierSet(requires).contains(python, prereleases=True):
                mismatches.append(f"python {python} is outside requires_python {requires!r}")
        except InvalidSpecifier:
            mismatches.append(f"requires_python {requires!r} is not a valid version specifier")
    seen: set[str] = set()
    for item in env.get("packages", ()):
        name, pinned = str(item.get("name", "")), str(item.get("version", ""))
        key = canonicalize_name(name)
        if key in seen:
            continue
        seen.add(key)
        have = lookup(name)
        if have is None:
            mismatches.append(f"{name}: the lockfile pins {pinned}, it is not installed")
        elif not _same(have, pinned):
            mismatches.append(f"{name}: the lockfile pins {pinned}, the environment has {have}")
    return mismatches


def require_environment(manifest: Manifest) -> None:
    """Raise EnvironmentMismatch listing every mismatch (load(strict_env=True))."""
    mismatches = check_environment(manifest)
    if mismatches:
        lock = str(manifest.environment.get("lockfile", "environment"))
        raise EnvironmentMismatch([Problem(lock, m) for m in mismatches])


__all__ = ["check_environment", "installed_version", "require_environment"]
