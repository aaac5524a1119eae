"""The promotion compatibility gate: a stage never silently gets a breaking change or an older version.

``promote`` diffs the candidate's manifest against the stage holder's with the diff engine
(manifests only: they are the artifacts' config blobs, so no package bytes move). A MAJOR
finding or a lower version is refused unless the actor says so (``--allow-major``,
``--allow-downgrade``); an override that was needed is recorded in the move's event.
``rollback`` is the way back and is not gated.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from mpkg._internal.format.manifest import Manifest as PackageManifest
from mpkg._internal.registry.artifact import read_package_manifest
from mpkg._internal.registry.history import PackageRef
from mpkg._internal.registry.store import Manifest
from mpkg.errors import Problem, VerificationError

from ..diff.engine import diff_manifests
from ..diff.report import Change
from ..diff.rules import Bump
from ..diff.versions import precedes
from .backend import Backend

_NAMED_FINDINGS = 6


@dataclass(frozen=True)
class Compatibility:
    """The candidate against the holder: the bump the diff found, its MAJOR findings, a downgrade,
    and which checks the actor overrode."""

    holder: str  # the holder's version
    candidate: str
    bump: Bump
    major: tuple[Change, ...]
    downgrade: bool
    overrides: tuple[str, ...]

    @property
    def note(self) -> str:
        """One line for the history event and the command's output."""
        text = f"compat: {self.bump.label} change from {self.holder} to {self.candidate}"
        if self.major:
            text += f" ({_findings(self.major)})"
        if self.overrides:
            text += "; allowed by " + ", ".join(f"--{o}" for o in self.overrides)
        return text

    def to_json(self) -> dict[str, object]:
        """The --json form of the compatibility check."""
        return {
            "from_version": self.holder,
            "to_version": self.candidate,
            "bump": self.bump.label,
            "major_findings": [c.to_json() for c in self.major],
            "downgrade": self.downgrade,
            "overrides": list(self.overrides),
        }


def _findings(changes: tuple[Change, ...]) -> str:
    named = [f"{c.rule} ({c.subject})" for c in changes[:_NAMED_FINDINGS]]
    more = len(changes) - len(named)
    return ", ".join(named) + (f" and {more} more" if more > 0 else "")


def _package_manifest(backend: Backend, repo: str, manifest: Manifest, ref: PackageRef) -> PackageManifest:
    """The package manifest from the artifact's config; an artifact without one (pushed by mpkg
    0.1) costs a download of its package."""
    found = read_package_manifest(backend, repo, manifest, ref)
    if found is not None:
        return found
    from mpkg._internal.format.package import read_manifest
    from mpkg._internal.registry.pull import download

    with tempfile.TemporaryDirectory(prefix="mpkg-compat-") as tmp:
        fetched = download(backend, repo, manifest, ref, Path(tmp), "holder.mpkg")
        try:
            return read_manifest(fetched.path)
        finally:
            fetched.release()


def check_compatibility(
    backend: Backend,
    repo: str,
    stage: str,
    holder: tuple[Manifest, PackageRef],
    candidate: tuple[Manifest, PackageRef],
    *,
    allow_major: bool = False,
    allow_downgrade: bool = False,
) -> Compatibility:
    """Diff candidate against holder; refuse a MAJOR change or a downgrade not explicitly allowed."""
    old = _package_manifest(backend, repo, *holder)
    new = _package_manifest(backend, repo, *candidate)
    report = diff_manifests(old, new)
    major = report.at_least(Bump.MAJOR)
    downgrade = precedes(new.version, old.version)
    problems = []
    if major and not allow_major:
        problems.append(
            Problem(
                "--allow-major",
                f"{new.name} {new.version} is a MAJOR change from {old.version} in {stage}: {_findings(major)}; "
                "consumers of the stage break. Pass --allow-major to promote it anyway",
            )
        )
    if downgrade and not allow_downgrade:
        problems.append(
            Problem(
                "--allow-downgrade",
                f"{new.version} is lower than {old.version} in {stage}; use `mpkg rollback` to go back, or "
                "pass --allow-downgrade",
            )
        )
    if problems:
        raise VerificationError(problems)
    overrides = (("allow-major",) if major else ()) + (("allow-downgrade",) if downgrade else ())
    return Compatibility(old.version, new.version, report.bump, major, downgrade, overrides)
