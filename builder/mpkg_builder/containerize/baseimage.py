"""The base image of a serving image, pinned by digest.

A tag moves: ``python:3.11-slim-bookworm`` names other bytes next month, so an image built
FROM a tag is neither reproducible nor reviewable, and can change under a signed package.
`mpkg containerize` writes every FROM as ``NAME[:TAG]@sha256:DIGEST``:

- a ``--base`` that carries a digest is used as given;
- a tag is resolved through the container engine: the digest of the local image of that
  repository (what the engine pulled or imported), else the registry's current digest for
  the tag (asked without pulling);
- when neither is possible (``--context-only`` with no engine, offline and not pulled),
  containerize refuses and says how to pin it.
"""

from __future__ import annotations

import re
from typing import Any

from mpkg.errors import MpkgError, UsageError

from .imageref import check_image_reference

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}", re.ASCII)
_PINNED = re.compile(r"@sha256:[0-9a-f]{64}\Z", re.ASCII)


def is_pinned(base: str) -> bool:
    """Whether ``base`` names its bytes (``@sha256:DIGEST``) rather than a tag that can move."""
    return _PINNED.search(base) is not None


def split_pinned(base: str) -> tuple[str, str]:
    """("NAME[:TAG]", "sha256:...") of a pinned reference."""
    name, _, digest = base.rpartition("@")
    return name, digest


def how_to_pin(base: str) -> str:
    """What to do about an unpinned base, said in each refusal."""
    return (
        f"pin it by digest: --base {base}@sha256:<digest> (`podman image inspect {base}` or "
        f"`docker buildx imagetools inspect {base}` shows it), or pull it where containerize can ask the engine"
    )


def check_base(base: str, example: str) -> None:
    """A well-formed base reference, pinned by digest (what a context's FROM may name)."""
    check_image_reference(base, "--base", f"NAME[:TAG][@sha256:DIGEST], e.g. {example}")
    if not is_pinned(base):
        raise UsageError(f"--base {base} is a tag, which can move; " + how_to_pin(base))


def resolve_base(base: str, client: Any | None) -> str:
    """``base`` pinned: as given if it has a digest, else resolved through ``client``."""
    if is_pinned(base):
        return base
    if client is None:
        raise MpkgError(
            f"--base {base} is a tag, which can move, and no container engine is here to resolve it; "
            + how_to_pin(base)
        )
    digest = _local_digest(client, base) or _registry_digest(client, base)
    if digest is None:
        raise MpkgError(
            f"--base {base}: the engine has no such image and the registry did not answer; " + how_to_pin(base)
        )
    return f"{base}@{digest}"


def repository(reference: str) -> str:
    """The repository of an image reference, as Docker normalises it (python ->
    docker.io/library/python): the tag and digest dropped, the default registry filled in."""
    name = reference.partition("@")[0]
    last_slash = name.rfind("/")
    if ":" in name[last_slash + 1 :]:
        name = name[: name.rfind(":")]
    first, _, rest = name.partition("/")
    if not rest:
        return f"docker.io/library/{name}"
    if "." not in first and ":" not in first and first != "localhost":
        return f"docker.io/{name}"
    return name


def _local_digest(client: Any, base: str) -> str | None:
    try:
        image = client.images.get(base)
    except Exception:  # not here, or the engine refused: ask the registry next
        return None
    wanted = repository(base)
    for entry in image.attrs.get("RepoDigests") or []:
        name, _, digest = str(entry).partition("@")
        if repository(name) == wanted and _DIGEST.fullmatch(digest):
            return digest
    return None


def _registry_digest(client: Any, base: str) -> str | None:
    try:
        digest = str(client.images.get_registry_data(base).id)
    except Exception:  # offline, unknown tag, or an engine without the distribution API
        return None
    return digest if _DIGEST.fullmatch(digest) else None


__all__ = ["check_base", "how_to_pin", "is_pinned", "repository", "resolve_base", "split_pinned"]
