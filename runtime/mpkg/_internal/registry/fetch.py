"""Load and serve by reference: resolve a REF, fetch its package into the cache by digest, once.

``mpkg.load(REF)`` and ``mpkg serve REF`` come here. A reference is pulled with exactly the
checks of ``mpkg pull`` (:mod:`.pull`): the repository names its package, a version tag names its
version, a stage tag holds what the history's newest trusted move put there, the blob matches
its descriptor and the package verifies under the caller's keys with the digest the artifact
names. What arrives is kept under ``MPKG_HOME/packages/sha256/<package digest hex>.mpkg``, so a
second start resolves the reference (one manifest request; a stage also reads the history's new
events) and downloads nothing.

The stable surface for callers inside mpkg (``serve --follow`` polls :func:`resolve` and calls
:func:`fetch` when the digest moves):

- :func:`resolve` ``(ref, policy) -> Resolved``: what the reference names now; no package byte moves.
- :func:`fetch` ``(ref, policy) -> (digest, path)``: the verified package, downloaded into the cache
  unless already there.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpkg._internal.format.package import read_info
from mpkg._internal.trust.verify import Policy, policy_for
from mpkg.errors import MpkgError, UsageError, VerificationError

from .auth import Credentials
from .cache import DiskCache
from .history import PackageRef
from .layers import LocalBlobs, layers_of
from .local import default_home
from .pull import check_package, download, open_store
from .refs import Reference, parse_ref
from .seen import SeenHeads
from .store import Manifest
from .trust import HistoryPolicy, resolve_trusted


@dataclass(frozen=True)
class FetchPolicy:
    """How to reach registries and what to trust of them: one object for load, serve and follow.

    ``package``'s keys verify packages and, for stage tags, the history's events (as ``mpkg pull
    --key``); its ``allow_unsigned`` is the one loud way to accept an unsigned package. ``home`` is
    ``MPKG_HOME`` (the local store, the package cache, this client's high-water marks)."""

    package: Policy = field(default_factory=Policy)
    insecure: bool = False
    credentials: Credentials | None = field(default=None, repr=False)
    home: Path = field(default_factory=default_home)

    @classmethod
    def from_paths(
        cls, keys: Sequence[str | os.PathLike[str]] = (), allow_unsigned: bool = False, **options: Any
    ) -> FetchPolicy:
        """The policy for trusted public-key files (``--key``, ``MPKG_KEYS``); ``options`` are the fields."""
        return cls(policy_for(keys, allow_unsigned=allow_unsigned), **options)

    @property
    def history_policy(self) -> HistoryPolicy:
        """What a stage tag's history must be: signed by the trusted keys if any, never older than
        the head this client saw (marks and event cache in ``home``)."""
        return HistoryPolicy(self.package.keys, SeenHeads(self.home), DiskCache(self.home))


@dataclass(frozen=True)
class Resolved:
    """What a reference names now: ``digest`` is the package digest (``sha256:…`` of its manifest),
    ``manifest`` the OCI manifest digest; ``target`` and ``artifact`` are what a download needs."""

    ref: Reference
    digest: str
    manifest: str
    name: str
    version: str
    target: PackageRef = field(repr=False)
    artifact: Manifest = field(repr=False)


def is_reference(text: str) -> bool:
    """Whether a PKG argument names a registry or local-store package rather than a file.

    An existing path, or anything ending in ``.mpkg``, is a file; otherwise a text that parses
    as a REF with a tag or digest is a reference (``host:5000/fraud:production``, ``fraud:1.2.0``)."""
    if text.endswith(".mpkg") or os.path.exists(text):
        return False
    try:
        ref = parse_ref(text)
    except MpkgError:
        return False
    return ref.reference is not None


def _parse(ref: str | Reference) -> Reference:
    parsed = parse_ref(ref) if isinstance(ref, str) else ref
    if parsed.reference is None:
        raise UsageError(f"{parsed} names no tag or digest; add :TAG, :production or @sha256:...", str(parsed))
    return parsed


def resolve(ref: str | Reference, policy: FetchPolicy) -> Resolved:
    """What ``ref`` names now, checked as ``mpkg pull`` checks it, without moving a package byte:
    one manifest request for a version tag or digest; for a stage tag also the history (its tag
    listing and the events this client has not cached), which must agree with the tag."""
    parsed = _parse(ref)
    store = open_store(parsed, insecure=policy.insecure, credentials=policy.credentials, home=policy.home)
    try:
        artifact, target = resolve_trusted(store, parsed, policy.history_policy)
    finally:
        store.close()
    return Resolved(parsed, target.package, target.manifest, target.name, target.version, target, artifact)


def cached_path(home: Path, digest: str) -> Path:
    """Where the package cache keeps the package with this digest."""
    return home / "packages" / "sha256" / f"{digest.split(':', 1)[1]}.mpkg"


def _cached(path: Path, resolved: Resolved) -> bool:
    """A cached file is used only if its manifest has the digest asked for; the bytes are verified
    by whoever opens it (load and serve verify every byte), so a damaged file fails there."""
    try:
        return str(read_info(path).digest) == resolved.digest
    except (OSError, MpkgError):
        return False


def fetch_resolved(resolved: Resolved, policy: FetchPolicy) -> Path:
    """The package ``resolved`` names, downloaded and verified into the cache unless it is there."""
    path = cached_path(policy.home, resolved.digest)
    if _cached(path, resolved):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    ref = resolved.ref
    store = open_store(ref, insecure=policy.insecure, credentials=policy.credentials, home=policy.home)
    local = LocalBlobs(policy.home)
    try:
        tmp = download(store, ref.repository, resolved.artifact, resolved.target, path.parent, path.name, None, local)
    finally:
        store.close()
    try:
        check_package(tmp.path, policy.package, resolved.target, ref)
        tmp.commit(path)
    finally:
        tmp.release()
    local.record(path, layers_of(resolved.artifact, str(ref)))
    return path


def fetch(ref: str | Reference, policy: FetchPolicy) -> tuple[str, Path]:
    """``(package digest, path)`` of the verified package ``ref`` names, from the cache when it is
    there (a second start downloads nothing), else downloaded with ``mpkg pull``'s checks."""
    resolved = resolve(ref, policy)
    return resolved.digest, fetch_resolved(resolved, policy)


def require_digest(actual: str, expected: str, where: str) -> None:
    """Refuse a cached file whose verified digest is not the one the reference resolved to."""
    if actual != expected:
        raise VerificationError(
            f"the cached package has digest {actual}, not the {expected} the reference names; "
            "remove it from MPKG_HOME/packages and try again",
            where,
        )


def locate(path_or_ref: str | os.PathLike[str], policy: FetchPolicy) -> tuple[str, str | None]:
    """A PKG argument as ``(file to open, package digest it must have)``: a file passes through
    (no digest to hold it to); a reference is fetched into the cache (:func:`fetch`)."""
    text = os.fspath(path_or_ref)
    if not is_reference(text):
        return text, None
    digest, path = fetch(text, policy)
    return str(path), digest
