"""`mpkg containerize`, the orchestrator: check the references, pin the base, write the
context (`context`, or `modelcar`), and have the engine build it (`engine`).

The engine is found before the slow part (no engine, no work); the context is written into a
temporary folder unless ``context_only`` keeps it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpkg.errors import UsageError

from .baseimage import is_pinned, resolve_base
from .context import BuildContext, write_context
from .dockerfile import DEFAULT_BASE
from .engine import EngineUnavailable, build_image, connect_engine
from .follow import Followed, check_followed
from .imageref import check_image_reference
from .labels import ServedPackage
from .modelcar import DEFAULT_MODELCAR_BASE, ModelcarContext, write_modelcar_context


@dataclass(frozen=True)
class ContainerizeResult:
    """What `mpkg containerize` made: the image (or only its context) and what it carries."""

    tag: str
    image_id: str | None  # None with context_only
    context: Path | None  # the kept context (context_only), else None: it was temporary
    package: ServedPackage
    labels: Mapping[str, str] = field(hash=False)

    @property
    def built(self) -> bool:
        """Whether an image was built (not only its context written)."""
        return self.image_id is not None

    def to_json(self) -> dict[str, Any]:
        """The `--json` document."""
        return {
            "ok": True,
            "tag": self.tag,
            "image_id": self.image_id,
            "built": self.built,
            "context": str(self.context) if self.context else None,
            "package": {
                "name": self.package.name,
                "version": self.package.version,
                "digest": self.package.digest,
            },
            "labels": dict(self.labels),
        }


def containerize(
    package: str | os.PathLike[str],
    tag: str,
    *,
    base: str | None = None,
    keys: Sequence[str | os.PathLike[str]] = (),
    allow_unsigned: bool = False,
    context_only: str | os.PathLike[str] | None = None,
    wheelhouse: str | os.PathLike[str] | None = None,
    offline: bool = False,
    engine: str | None = None,
    log: Callable[[str], None] | None = None,
    modelcar: bool = False,
    follow: Followed | None = None,
) -> ContainerizeResult:
    """Write the build context for ``package`` and, unless ``context_only``, build ``tag``.

    ``wheelhouse`` is a folder of wheels to take dependencies from first; ``offline`` takes
    them only from there. ``engine`` is a Docker API URL (default: $DOCKER_HOST or a default
    socket). ``modelcar`` builds the image that only carries the package, for KServe's
    ``storageUri: oci://`` (see :mod:`.modelcar`). ``follow`` builds the image that serves what
    a registry reference (``package``) names, following its tag (see :mod:`.follow`).
    Refusals raise :class:`MpkgError` with one-line reasons.
    """
    check_image_reference(tag, "--tag", "NAME[:TAG], e.g. registry.example/team/iris:1.0.0", digest=False)
    if modelcar and (wheelhouse is not None or offline):
        raise UsageError("--wheelhouse and --offline do not apply to --modelcar: that image holds no Python")
    if modelcar and follow is not None:
        raise UsageError(
            "--modelcar and --follow are two images: a modelcar carries one package, a follow image "
            "serves what a reference names; pick one",
            "--follow",
        )
    if follow is not None:
        check_followed(follow.reference)
    if base is None:
        base = DEFAULT_MODELCAR_BASE if modelcar else DEFAULT_BASE
    check_image_reference(base, "--base", "NAME[:TAG][@sha256:DIGEST], e.g. python:3.11-slim-bookworm")
    say = log or (lambda _msg: None)

    def context_in(dest: str | os.PathLike[str], pinned: str) -> BuildContext | ModelcarContext:
        if modelcar:
            return write_modelcar_context(package, dest, base=pinned, keys=keys, allow_unsigned=allow_unsigned, log=log)
        return write_context(
            package,
            dest,
            base=pinned,
            keys=keys,
            allow_unsigned=allow_unsigned,
            wheelhouse=wheelhouse,
            offline=offline,
            log=log,
            follow=follow,
        )

    if context_only is not None:
        pinned = base
        if not is_pinned(base):  # a tag needs an engine to resolve it; without one, say how to pin
            try:
                client = connect_engine(engine)
            except EngineUnavailable:
                client = None
            try:
                pinned = resolve_base(base, client)
            finally:
                if client is not None:
                    client.close()
            say(f"base image {base} is {pinned}")
        ctx = context_in(context_only, pinned)
        return ContainerizeResult(tag, None, ctx.path, ctx.package, ctx.labels)
    client = connect_engine(engine)  # before the slow part: no engine, no work
    try:
        pinned = resolve_base(base, client)
        if pinned != base:
            say(f"base image {base} is {pinned}")
        with tempfile.TemporaryDirectory(prefix="mpkg-containerize-") as tmp:
            ctx = context_in(Path(tmp) / "context", pinned)
            image_id = build_image(client, ctx.path, tag, log=log)
    finally:
        client.close()
    return ContainerizeResult(tag, image_id, None, ctx.package, ctx.labels)


__all__ = ["ContainerizeResult", "containerize"]
