"""Version inference for `mpkg build --base`: the version a build must carry, from its diff.

The build has not written its files yet, so their digests are computed here from the
planned sources (each read once) and the diff compares them with the base's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from mpkg._internal.format.digests import Digest, hash_bytes, hash_range
from mpkg._internal.format.manifest import Manifest
from mpkg.errors import Problem, SourceError

from . import rules as R
from .engine import diff_manifests
from .report import Change, DiffReport
from .rules import DEFAULT_RULES, Bump, RuleSet
from .versions import SemVer, level_of, precedes
from .views import ManifestLike

CONFIG_VERSION_KEY = "mpkg.toml: [package].version"


class PlannedLike(Protocol):
    """What the build knows about a file before writing it (mpkg_builder.build.PlannedFile)."""

    @property
    def path(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def source(self) -> Path | None: ...
    @property
    def data(self) -> bytes | None: ...


# How a planned file is sized and hashed (tests count the reads).
Hasher = Callable[[PlannedLike], tuple[int, Digest]]


def _hash_planned(f: PlannedLike) -> tuple[int, Digest]:
    if f.data is not None:
        return len(f.data), hash_bytes(f.data)
    assert f.source is not None
    try:
        with open(f.source, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            return size, hash_range(fh, 0, size)
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", str(f.source)) from None


def _build_metadata_subject(c: Change) -> str:
    if c.rule == R.GRAPH_NAMES_CHANGED:
        return f"names inside {c.subject.removeprefix('files.')}"
    return "version and base" if c.rule == R.METADATA_CHANGED else c.subject


@dataclass(frozen=True)
class VersionDecision:
    """What `mpkg build --base` settles on, and the diff that justified it."""

    version: str
    required: str
    declared: str | None
    report: DiffReport = field(repr=False)

    @property
    def bump(self) -> Bump:
        """The bump the diff requires (the build may declare a larger one)."""
        return self.report.bump


def _with_files(new: ManifestLike, files: Sequence[PlannedLike] | None, hasher: Hasher) -> dict[str, Any]:
    """The manifest being built, without a version, with ``files`` entries for the planned files."""
    doc = dict(new.raw if isinstance(new, Manifest) else new)
    doc.pop("version", None)
    if files is not None and "files" not in doc:
        entries = []
        for f in sorted(files, key=lambda f: f.path.encode("utf-8")):
            size, digest = hasher(f)
            entries.append(
                {"path": f.path, "size": size, "digest": str(digest), "encoding": "identity", "role": f.role}
            )
        doc["files"] = entries
    return doc


def infer_version(
    base: ManifestLike,
    new: ManifestLike,
    files: Sequence[PlannedLike] | None = None,
    declared: str | None = None,
    rules: RuleSet = DEFAULT_RULES,
    hasher: Hasher = _hash_planned,
) -> VersionDecision:
    """The version a build diffed against ``base`` must carry.

    ``new`` is the manifest being built; when it has no ``files`` yet, pass the planned
    ``files`` and their digests are computed here (weights are read once; only their
    digests are compared). Without ``declared`` the version is the smallest the diff
    requires (2.3.1 + minor -> 2.4.0). A declared version is kept if it is at least that,
    else SourceError names the findings that need the higher bump.
    """
    report = diff_manifests(base, _with_files(new, files, hasher), rules)
    if report.changes and all(c.category == "build" for c in report.changes):
        what = ", ".join(sorted({_build_metadata_subject(c) for c in report.changes}))
        raise SourceError(
            f"nothing to release: the source has not changed since {report.name} {report.from_version} "
            f"({report.old_digest}); only build metadata differs ({what}). Keep {report.from_version}, "
            "or change the source",
            "--base",
        )
    required = report.suggested_version
    if declared is None:
        return VersionDecision(required, required, None, report)
    try:
        SemVer.parse(declared)
    except ValueError as exc:
        raise SourceError(str(exc), CONFIG_VERSION_KEY) from None
    if not precedes(declared, required):
        return VersionDecision(declared, required, declared, replace(report, to_version=declared))
    covered = level_of(report.from_version, declared)
    problems = [
        Problem(
            CONFIG_VERSION_KEY,
            f"declares {declared}, but the changes since {report.from_version} require "
            f"at least {required} "
            f"({report.bump.label}); raise the version or remove it to let mpkg infer it",
        )
    ]
    problems.extend(
        Problem(c.subject, f"{c.message} — needs a {c.bump.label} bump [{c.rule}]")
        for c in report.changes
        if c.bump > covered
    )
    raise SourceError(problems)


__all__ = ["CONFIG_VERSION_KEY", "PlannedLike", "VersionDecision", "infer_version"]
