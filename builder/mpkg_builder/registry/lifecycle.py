"""push, pull, promote, rollback, history, gc: the model lifecycle over any :class:`Backend`.

This module holds push and is the public face of the lifecycle: pull is the runtime's
(:mod:`mpkg._internal.registry.pull`); one verb per module otherwise: :mod:`.promote`,
:mod:`.rollback` (both applied by the race protocol in :mod:`.race`), :mod:`.report` (history),
:mod:`.gc`, :mod:`.listing` (ls). Every command that reads the history reads it through
:mod:`mpkg._internal.registry.trust` under a :class:`HistoryPolicy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpkg._internal.registry.aliases import ARCHIVE_PREFIX, is_alias
from mpkg._internal.registry.artifact import Expected, package_ref
from mpkg._internal.registry.auth import Credentials
from mpkg._internal.registry.history import EVENT_TAG_PREFIX, MOVES, PackageRef
from mpkg._internal.registry.pull import ProgressFactory, PullResult, pull
from mpkg._internal.registry.refs import STAGES, Reference, version_tag
from mpkg._internal.registry.store import digest_bytes
from mpkg._internal.registry.trust import UNAUTHENTICATED, History, HistoryPolicy, load_history
from mpkg.errors import RegistryError, UsageError

from .annotations import listing_annotations
from .artifact import cut_package, package_manifest, push_pieces
from .backend import Backend
from .gc import GcResult, gc
from .local import LocalBackend
from .promote import plan_promotion, promote
from .race import MovePlan, MoveResult, apply_move
from .record import append_event, load_signer
from .report import HistoryReport, history
from .rollback import plan_rollback, rollback

__all__ = [
    "GcResult",
    "HistoryPolicy",
    "HistoryReport",
    "MovePlan",
    "MoveResult",
    "PullResult",
    "PushResult",
    "apply_move",
    "gc",
    "history",
    "open_backend",
    "plan_promotion",
    "plan_rollback",
    "promote",
    "pull",
    "push",
    "rollback",
]


def open_backend(
    ref: Reference,
    *,
    insecure: bool = False,
    credentials: Credentials | None = None,
    home: Path | None = None,
) -> Backend:
    """The registry a REF names, or the local store when it names no host."""
    if ref.host is None:
        return LocalBackend(home)
    from mpkg._internal.registry.auth import docker_credentials

    from .oci import OciBackend

    creds = credentials or docker_credentials(ref.host)
    return OciBackend(ref.host, insecure=insecure, credentials=creds)


def _check_not_alias(history: History, tag: str, where: str) -> None:
    """Refuse a history with problems, and a tag the history records as an alias (it moves; pushed tags never do)."""
    history.require_ok(where)
    if any(r.event.action in MOVES and r.event.stage == tag for r in history.events):
        raise UsageError(f"{tag!r} is an alias (promoted to before); push a version tag and use `mpkg promote`", "REF")


def _reserved(tag: str) -> bool:
    return tag in STAGES or tag.startswith((EVENT_TAG_PREFIX, ARCHIVE_PREFIX))


# --- push / pull ----------------------------------------------------------------------


@dataclass(frozen=True)
class PushResult:
    """What a push stored, and whether bytes moved."""

    ref: str
    name: str
    version: str
    package_digest: str
    manifest_digest: str
    blob_digest: str
    size: int
    uploaded: bool  # False: the store already had the bytes
    tagged: bool  # False: the tag already named this package
    sent: int = 0  # bytes uploaded: only the pieces the store lacked

    def to_json(self) -> dict[str, Any]:
        """The --json document of `mpkg push`."""
        return {
            "ok": True,
            "ref": self.ref,
            "name": self.name,
            "version": self.version,
            "digest": self.package_digest,
            "manifest": self.manifest_digest,
            "blob": self.blob_digest,
            "size": self.size,
            "uploaded": self.uploaded,
            "tagged": self.tagged,
            "sent": self.sent,
        }


def _check_push_target(ref: Reference, name: str, version: str) -> None:
    """Refuse up front what pull would refuse later: a repository holds the package it is named
    after, and a version tag names the package's own version."""
    expected = Expected.of(ref)
    if name != expected.name:
        parent = ref.name.rsplit("/", 1)[0] + "/" if "/" in ref.repository else ""
        raise UsageError(
            f"package {name!r} goes into a repository named after it ({parent}{name}), not {ref.name}: "
            "pull refuses a package whose name is not its repository's last component",
            "REF",
        )
    if expected.version is not None and version != expected.version:
        raise UsageError(
            f"tag {ref.tag} is a version, but the package is {version}; push it as {version_tag(version)} "
            "(the default) or under a tag that is not a version",
            "REF",
        )


def push(
    backend: Backend,
    ref: Reference,
    package: Path,
    *,
    key: Path | str | None = None,
    progress: ProgressFactory | None = None,
    policy: HistoryPolicy = UNAUTHENTICATED,
) -> PushResult:
    """Store a package as an OCI artifact under ``ref`` (default tag: its version) and record it.
    ``progress(total)`` may return a callback told each piece uploaded (a progress bar)."""
    from mpkg._internal.format.package import read_manifest

    if ref.digest:
        raise UsageError("push takes REPO[:TAG], not a digest", "REF")
    signer = load_signer(key)
    policy.check_signer(signer)
    manifest = read_manifest(package)
    tag = ref.tag or version_tag(manifest.version)
    if _reserved(tag):
        raise UsageError(
            f"tag {tag!r} is managed by mpkg (stages, archives, history); push a version tag and use `mpkg promote`",
            "REF",
        )
    tagged_ref = ref.with_tag(tag)
    _check_push_target(tagged_ref, manifest.name, manifest.version)
    repo, package_digest = ref.repository, str(manifest.digest)
    pieces = cut_package(package)
    blob, size = pieces.digest, pieces.size
    data = package_manifest(manifest, pieces, listing_annotations(package, manifest))
    digest = digest_bytes(data)
    with backend.lock(repo):
        if is_alias(tag):  # a name a promotion may have made an alias: those move, pushed tags never do
            _check_not_alias(load_history(backend, repo, policy), tag, ref.name)
        existing = backend.get_manifest(repo, tag)
        if existing is not None and existing.digest != digest:
            other = package_ref(existing, str(tagged_ref))
            if other.package != package_digest:
                raise RegistryError(
                    f"tag {tag} already names another package ({other.package}); versions are "
                    "immutable: bump the version or push under another tag",
                    str(tagged_ref),
                )
            digest = existing.digest  # the same package, stored by an older mpkg: leave it
        tagged = existing is None
        if tagged:  # fail before uploading anything onto a history this client cannot accept
            load_history(backend, repo, policy).require_ok(ref.name)
        backend.push_blob_bytes(repo, manifest.encoded)  # the config blob
        sent = push_pieces(backend, repo, pieces, progress(size) if progress else None)
        if tagged:
            history = load_history(backend, repo, policy)  # the tips now, after a long upload
            history.require_ok(ref.name)
            backend.put_manifest(repo, tag, data)
            target = PackageRef(digest, package_digest, manifest.name, manifest.version, blob, size)
            append_event(history, backend, "push", signer, target=target, tag=tag)
    return PushResult(
        str(tagged_ref), manifest.name, manifest.version, package_digest, digest, blob, size, sent > 0, tagged, sent
    )
