"""Pulling a package: resolve the reference, download, verify, and only then rename into place.

Pull writes nothing unless the package is exactly what the reference asked for: the blob
matches its descriptor, the package verifies under the caller's keys, its digest is the one
the artifact names, its name and version are the ones the reference names, and a stage
reference holds what the history's newest move put there (:func:`.trust.resolve_trusted`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpkg._internal.io.atomic import Temporary, temporary
from mpkg._internal.trust.verify import Policy, policy_for
from mpkg.errors import Problem, UsageError, VerificationError

from .artifact import check_identity
from .auth import Credentials
from .history import PackageRef
from .layers import LocalBlobs, assemble, layers_of
from .local import LocalStore, default_home
from .refs import Reference
from .store import Manifest, Progress, Store
from .trust import UNAUTHENTICATED, HistoryPolicy, resolve_trusted

ProgressFactory = Callable[[int], Progress | None]
EXTRA_HINT = "registry references need the registry extra: pip install 'mpkg[registry]'"


def open_store(
    ref: Reference, *, insecure: bool = False, credentials: Credentials | None = None, home: Path | None = None
) -> Store:
    """The registry a REF names (read side), or the local store when it names no host."""
    if ref.host is None:
        return LocalStore(home)
    try:
        from .oci import OciClient
    except ImportError as exc:  # httpx is the [registry] extra; the runtime works without it
        raise UsageError(f"{EXTRA_HINT} ({exc.name} is missing)", str(ref)) from None
    from .auth import docker_credentials

    return OciClient(ref.host, insecure=insecure, credentials=credentials or docker_credentials(ref.host))


@dataclass(frozen=True)
class PullResult:
    """Where a pulled package went and what it is."""

    ref: str
    path: str
    name: str
    version: str
    package_digest: str
    manifest_digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        """The --json document of `mpkg pull`."""
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


def download(
    store: Store,
    repo: str,
    artifact: Manifest,
    target: PackageRef,
    directory: Path,
    stem: str,
    progress: Progress | None = None,
    local: LocalBlobs | None = None,
) -> Temporary:
    """Reassemble the package into a hidden temp file in ``directory`` from its pieces (copied from
    ``local`` when this machine holds them, else downloaded), checking each piece and the whole
    file against the artifact. The temporary (mpkg._internal.io.atomic) is locked until unlinked,
    removed on signals, swept if orphaned."""
    where = f"{repo}@{target.manifest}"
    tmp = temporary(directory / stem)
    try:
        with tmp.open() as out:
            layers = layers_of(artifact, where)
            assemble(store, repo, layers, out, (target.blob, target.size), where, local, progress)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def check_package(path: Path, policy: Policy, target: PackageRef, ref: Reference) -> None:
    """Verify a downloaded package, then check it is the one the artifact and the reference name."""
    from mpkg._internal.trust.verify import verify

    where = str(ref)
    result = verify(path, policy)
    if not result.ok or result.manifest is None:
        raise VerificationError([Problem(where, e.replace(str(path), where)) for e in result.errors])
    if str(result.digest) != target.package:
        raise VerificationError(
            f"package digest {result.digest} differs from the artifact's annotation "
            f"{target.package}; refusing a substituted package",
            where,
        )
    check_identity(ref, result.manifest.name, result.manifest.version, verified=True)


def pull(
    backend: Store,
    ref: Reference,
    out: Path,
    *,
    keys: Sequence[Path | str] = (),
    allow_unsigned: bool = False,
    progress: ProgressFactory | None = None,
    policy: HistoryPolicy = UNAUTHENTICATED,
    home: Path | None = None,
) -> PullResult:
    """Fetch, check the blob digest, verify the package, then atomically rename to ``out``.
    Pieces this machine holds (the local store and package cache in ``home``, default
    ``MPKG_HOME``) are copied, not downloaded. ``progress(total)`` may return a callback told
    each piece written (a progress bar)."""
    out = Path(out)
    directory = out.parent if str(out.parent) else Path(".")
    if not directory.is_dir():
        raise UsageError(f"directory {directory} does not exist", "-o")
    if out.is_dir():
        raise UsageError(f"{out} is a directory; name the output file", "-o")
    artifact, target = resolve_trusted(backend, ref, policy)
    bar = progress(target.size) if progress else None
    local = LocalBlobs(home or default_home())
    tmp = download(backend, ref.repository, artifact, target, directory, out.name, bar, local)
    try:
        check_package(tmp.path, policy_for(keys, allow_unsigned=allow_unsigned), target, ref)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return PullResult(str(ref), str(out), target.name, target.version, target.package, target.manifest, target.size)
