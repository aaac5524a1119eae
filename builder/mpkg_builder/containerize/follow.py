"""Follow mode: an image (or a deployment) that serves what a registry reference names, with
``mpkg serve REF --follow``, instead of a package baked in.

A followed reference is checked here once for both `containerize --follow` and `deploy --follow`:
it must name a registry (the pod has no local store) by a tag (a digest never moves). What it
names now is fetched with ``mpkg pull``'s checks (:func:`mpkg._internal.registry.fetch.fetch`)
under the keys the image or the pods will trust: its lockfile sizes the image's wheels and its
facts size the pods. A later package whose dependencies the image lacks fails its smoke test in
the server, and the swap refuses it: the package answering keeps answering (spec/runtime.md §9).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mpkg.errors import MpkgError, UsageError

DEFAULT_INTERVAL = 5.0
# Where the image keeps the package cache and the client's high-water marks (MPKG_HOME): a volume
# owned by the runtime user, since the root filesystem may be read-only.
CACHE_DIR = "/var/cache/mpkg"
# Where the image looks for registry credentials: DOCKER_CONFIG/config.json (mount a
# kubernetes.io/dockerconfigjson Secret's .dockerconfigjson there as config.json).
DOCKER_CONFIG_DIR = "/etc/mpkg/docker"


@dataclass(frozen=True)
class Followed:
    """A registry reference served with ``mpkg serve REF --follow --interval N``."""

    reference: str
    interval: float = DEFAULT_INTERVAL
    insecure: bool = False

    @property
    def interval_text(self) -> str:
        """The interval as ``serve --interval`` takes it (``5s``, ``0.5s``)."""
        return f"{self.interval:g}s"

    def serve_arguments(self) -> tuple[str, ...]:
        """``REF --follow --interval N [--insecure]``: what ``mpkg serve`` is given."""
        return (
            self.reference,
            "--follow",
            "--interval",
            self.interval_text,
            *(("--insecure",) if self.insecure else ()),
        )


def parse_interval(text: str) -> float:
    """``--interval`` as ``mpkg serve`` parses it (``5s``, ``500ms``, ``1m``; argparse type)."""
    from mpkg.serve.cli import parse_duration

    return parse_duration(text)


def check_followed(reference: str, flag: str = "REF") -> None:
    """Refuse, in one line, what ``--follow`` cannot follow: a file, a local-store name, a digest."""
    from mpkg._internal.registry.fetch import is_reference
    from mpkg._internal.registry.refs import parse_ref

    if not is_reference(reference):
        raise UsageError(
            f"{reference!r} is a file; --follow takes a registry reference HOST[:PORT]/REPO:TAG "
            "(drop --follow to bake the package into the image)",
            flag,
        )
    ref = parse_ref(reference)
    if ref.host is None:
        raise UsageError(
            f"{reference!r} names the local store, which the container does not have; "
            "push it and follow HOST[:PORT]/REPO:TAG",
            flag,
        )
    if ref.digest is not None:
        raise UsageError(f"{reference!r} is pinned by digest, which never moves; follow a tag (:production)", flag)


def fetch_current(followed: Followed, keys: Sequence[str | os.PathLike[str]], allow_unsigned: bool) -> tuple[str, Path]:
    """``(digest, path)`` of what the reference names now, pulled and verified under ``keys``
    into the local package cache (``MPKG_HOME``), as ``mpkg serve REF`` would."""
    check_followed(followed.reference)
    try:
        from mpkg._internal.registry.fetch import FetchPolicy, fetch
    except ImportError as exc:  # httpx: the registry extra
        raise MpkgError(
            f"--follow reads a registry and needs its extra ({exc}): pip install 'mpkg[registry]'"
        ) from None
    policy = FetchPolicy.from_paths(keys, allow_unsigned, insecure=followed.insecure)
    return fetch(followed.reference, policy)


__all__ = [
    "CACHE_DIR",
    "DEFAULT_INTERVAL",
    "DOCKER_CONFIG_DIR",
    "Followed",
    "check_followed",
    "fetch_current",
    "parse_interval",
]
