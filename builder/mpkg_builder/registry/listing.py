"""`mpkg ls NAME`: every version in a repository with what its annotations say, pulling no package.

One tag listing, one manifest per tag, then the history (under the caller's policy, like
every command that reads it; its events are cached in MPKG_HOME, so a second listing costs the
tag listings and the manifests). The history gives each version's push time and each alias's
recorded holder; the annotations (:mod:`.annotations`) give version, metrics, params, dataset
digests and claimed signers. A version whose annotations are bad, missing or contradict its tag
is still listed, with a one-line warning. spec/registry.md §2.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mpkg._internal.format.manifest import SEMVER_RE
from mpkg._internal.registry.aliases import ARCHIVE_PREFIX, is_alias, known_aliases
from mpkg._internal.registry.artifact import Expected, package_ref
from mpkg._internal.registry.history import EVENT_TAG_PREFIX, PackageRef
from mpkg._internal.registry.refs import Reference, is_tag
from mpkg._internal.registry.store import Manifest
from mpkg._internal.registry.trust import UNAUTHENTICATED, HistoryPolicy, StageState, load_history
from mpkg.errors import MpkgError

from .annotations import Listing, as_number, read_listing
from .backend import Backend


@dataclass(frozen=True)
class VersionRow:
    """One version (one artifact manifest) as ``ls`` shows it."""

    version: str
    package: str  # the package digest
    manifest: str  # the artifact's manifest digest
    tags: tuple[str, ...]
    aliases: tuple[str, ...]  # the aliases the history says it holds
    pushed: str | None  # time of its push event (None: pushed by another tool, or before the history)
    listing: Listing

    @property
    def numbers(self) -> dict[str, float]:
        """Metrics and numeric params (``param.NAME``): what numeric ``--where`` and ``--sort`` read."""
        params = {f"param.{k}": n for k, v in self.listing.params.items() if (n := as_number(v)) is not None}
        return dict(self.listing.metrics) | params

    @property
    def warnings(self) -> tuple[str, ...]:
        """The listing's problems, each naming this version."""
        missing = () if self.listing.annotated else ("no annotations (pushed before mpkg wrote them): metrics only",)
        cut = tuple(f"annotations truncated: {', '.join(self.listing.truncated)}" for _ in self.listing.truncated[:1])
        return tuple(f"{self.version} ({self.manifest[:19]}): {p}" for p in (*self.listing.problems, *missing, *cut))

    def to_json(self) -> dict[str, Any]:
        """The row as ``ls --json`` prints it."""
        return {
            "version": self.version,
            "digest": self.package,
            "manifest": self.manifest,
            "pushed": self.pushed,
            "tags": list(self.tags),
            "aliases": list(self.aliases),
            "signers": list(self.listing.signers),
            "metrics": dict(self.listing.metrics),
            "params": dict(self.listing.params),
            "data": list(self.listing.data),
            "annotated": self.listing.annotated,
            "truncated": list(self.listing.truncated),
        }


@dataclass(frozen=True)
class VersionList:
    """Every version of a repository, and what was wrong with what the registry sent."""

    repository: str
    rows: tuple[VersionRow, ...]
    warnings: tuple[str, ...]
    authenticated: bool

    def to_json(self) -> dict[str, Any]:
        """The list as ``ls --json`` prints it."""
        return {
            "ok": True,
            "repository": self.repository,
            "authenticated": self.authenticated,
            "versions": [r.to_json() for r in self.rows],
            "warnings": [*self.warnings, *(w for r in self.rows for w in r.warnings)],
        }


def _listed(tag: str) -> bool:
    return not tag.startswith((EVENT_TAG_PREFIX, ARCHIVE_PREFIX))


def list_versions(backend: Backend, ref: Reference, *, policy: HistoryPolicy = UNAUTHENTICATED) -> VersionList:
    """Read every tag's artifact manifest, then the history; never a package blob."""
    repo, warnings = ref.repository, []
    tagged: dict[str, Manifest] = {}
    listed = backend.list_tags(repo)
    bad = [t for t in listed if not is_tag(t)]
    if bad:
        warnings.append(
            f"{ref.name}: the registry lists {len(bad)} names that are not tags (e.g. {bad[0][:40]!r}); skipped"
        )
    for tag in sorted(t for t in listed if is_tag(t) and _listed(t)):
        try:
            found = backend.get_manifest(repo, tag)
        except MpkgError as exc:
            warnings.append(f"{exc.problems[0]}; skipped")
            continue
        if found is not None:
            tagged[tag] = found
    history = load_history(backend, repo, policy)  # after the tags (spec/registry.md §7 step 1)
    history.require_ok(ref.name)
    pushed: dict[str, str] = {}
    for r in history.events:
        if r.event.action == "push" and r.event.target is not None:
            pushed.setdefault(r.event.target.manifest, r.event.time)
    refs: dict[str, tuple[PackageRef, Manifest]] = {}
    tags: dict[str, list[str]] = {}
    aliases: dict[str, list[str]] = {}
    alias_names = set(known_aliases(r.event.stage for r in history.events))
    for tag, manifest in tagged.items():
        where = f"{ref.name}:{tag}"
        try:
            target = package_ref(manifest, where)
        except MpkgError as exc:
            warnings.append(f"{exc.problems[0]}; skipped")
            continue
        if tag in alias_names and is_alias(tag):
            state = StageState(tag, target, manifest, history.latest_moves(tag))
            problem = state.mismatch(ref.name)
            if problem is not None:
                warnings.append(problem)
            if state.holder is not None:
                aliases.setdefault(state.holder.manifest, []).append(tag)
            continue
        if not SEMVER_RE.match(target.version):
            warnings.append(f"{where}: the version annotation is not a SemVer version; skipped")
            continue
        problem = Expected.of(ref.with_tag(tag)).problem(target.name, target.version)
        if problem is not None:
            warnings.append(f"{where}: {problem}")
            continue
        refs.setdefault(target.manifest, (target, manifest))
        tags.setdefault(target.manifest, []).append(tag)
    rows = [
        VersionRow(
            target.version,
            target.package,
            digest,
            tuple(tags.get(digest, ())),
            tuple(sorted(aliases.get(digest, ()))),
            pushed.get(digest),
            read_listing(manifest.json().get("annotations")),
        )
        for digest, (target, manifest) in refs.items()
    ]
    return VersionList(ref.repository, tuple(rows), tuple(warnings), history.authenticated)
