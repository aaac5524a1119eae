"""push, pull, promote, rollback, history, gc: the model lifecycle over any :class:`Backend`.

This module holds the transfer pair, push and pull, and is the public face of the lifecycle; one
verb per module otherwise: :mod:`.promote`, :mod:`.rollback` (both applied by the race protocol
in :mod:`.race`), :mod:`.report` (history), :mod:`.gc`, :mod:`.listing` (ls). Every command
that reads the history reads it through :mod:`.trust` under a :class:`HistoryPolicy`.

Pull writes nothing unless the package is exactly what the reference asked for: the blob
matches its descriptor, the package verifies under the caller's keys, its digest is the one
the artifact names, its name and version are the ones the reference names, and a stage
reference holds what the history's newest move put there (:func:`.trust.resolve_trusted`).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from mpkg._internal.io.atomic import Temporary, temporary
from mpkg.errors import Problem, RegistryError, UsageError, VerificationError

from .aliases import ARCHIVE_PREFIX, is_alias
from .annotations import listing_annotations
from .artifact import Expected, check_identity, package_manifest, package_ref
from .auth import Credentials
from .backend import Backend, Progress, digest_bytes, sha256_file
from .gc import GcResult, gc
from .history import EVENT_TAG_PREFIX, MOVES, PackageRef, load_signer
from .local import LocalBackend
from .promote import plan_promotion, promote
from .race import MovePlan, MoveResult, apply_move
from .refs import STAGES, Reference, version_tag
from .report import HistoryReport, history
from .rollback import plan_rollback, rollback
from .trust import UNAUTHENTICATED, History, HistoryPolicy, load_history, resolve_trusted

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

ProgressFactory = Callable[[int], Progress | None]


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
    from .auth import docker_credentials
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
    ref: str
    name: str
    version: str
    package_digest: str
    manifest_digest: str
    blob_digest: str
    size: int
    uploaded: bool  # False: the store already had the bytes
    tagged: bool  # False: the tag already named this package

    def to_json(self) -> dict[str, Any]:
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
    blob, size = sha256_file(package)
    data = package_manifest(manifest, blob, size, listing_annotations(package, manifest))
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
        uploaded = backend.push_blob_file(repo, package, blob, size, progress(size) if progress else None)
        if tagged:
            history = load_history(backend, repo, policy)  # the tips now, after a long upload
            history.require_ok(ref.name)
            backend.put_manifest(repo, tag, data)
            target = PackageRef(digest, package_digest, manifest.name, manifest.version, blob, size)
            history.append(backend, "push", signer, target=target, tag=tag)
    return PushResult(
        str(tagged_ref), manifest.name, manifest.version, package_digest, digest, blob, size, uploaded, tagged
    )


@dataclass(frozen=True)
class PullResult:
    ref: str
    path: str
    name: str
    version: str
    package_digest: str
    manifest_digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "ref": self.ref,
            "path": self.path,
            "name": self.name,
            "version": self.version,
            "digest": self.package_digest,
            "manifest": self.manifest_digest,
            "size": self.size,
        }


def _download(
    backend: Backend, repo: str, target: PackageRef, directory: Path, stem: str, progress: Progress | None = None
) -> Temporary:
    """Stream the package blob to a hidden temp file in ``directory``, checking its digest.
    The temporary (mpkg._internal.io.atomic) is locked until unlinked, removed on signals, swept if orphaned."""
    tmp = temporary(directory / stem)
    try:
        with tmp.open() as out:
            sink = cast(BinaryIO, _Counted(out, progress)) if progress else out  # fetch_blob only writes
            backend.fetch_blob(repo, target.blob, target.size, sink)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _verify(path: Path, keys: Sequence[Path | str], allow_unsigned: bool, target: PackageRef, ref: Reference) -> None:
    """Verify a downloaded package, then check it is the one the artifact and the reference name."""
    from mpkg._internal.trust.verify import verify

    where = str(ref)
    result = verify(path, list(keys), allow_unsigned)
    if not result.ok or result.manifest is None:
        raise VerificationError([Problem(where, e.replace(str(path), where)) for e in result.errors])
    if str(result.digest) != target.package:
        raise VerificationError(
            f"package digest {result.digest} differs from the artifact's annotation "
            f"{target.package}; refusing a substituted package",
            where,
        )
    check_identity(ref, result.manifest.name, result.manifest.version, verified=True)


class _Counted(io.RawIOBase):
    """A writable file that reports each write to a progress callback."""

    def __init__(self, out: BinaryIO, progress: Progress) -> None:
        self._out, self._progress = out, progress

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = self._out.write(data)
        self._progress(n)
        return n


def pull(
    backend: Backend,
    ref: Reference,
    out: Path,
    *,
    keys: Sequence[Path | str] = (),
    allow_unsigned: bool = False,
    progress: ProgressFactory | None = None,
    policy: HistoryPolicy = UNAUTHENTICATED,
) -> PullResult:
    """Fetch, check the blob digest, verify the package, then atomically rename to ``out``.
    ``progress(total)`` may return a callback told each piece downloaded (a progress bar)."""
    out = Path(out)
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"directory {directory} does not exist", "-o")
    if out.is_dir():
        raise UsageError(f"{out} is a directory; name the output file", "-o")
    _, target = resolve_trusted(backend, ref, policy)
    tmp = _download(backend, ref.repository, target, directory, out.name, progress(target.size) if progress else None)
    try:
        _verify(tmp.path, keys, allow_unsigned, target, ref)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return PullResult(str(ref), str(out), target.name, target.version, target.package, target.manifest, target.size)
