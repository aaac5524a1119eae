"""The container engine: found through the Docker Engine API, asked to build, its log relayed.

``DOCKER_HOST`` when set, else the first socket that answers among Docker's and podman's
default ones. With podman, run ``podman system service --time=0 unix:///run/podman/podman.sock``
and point ``DOCKER_HOST`` at that socket. The ``docker`` package loads only when an image is built.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mpkg.errors import MpkgError


class EngineUnavailable(MpkgError):
    """No Docker-API container engine answered."""


def engine_candidates(engine: str | None = None) -> list[str]:
    """Where to look for a Docker API: the explicit URL, $DOCKER_HOST, else default sockets."""
    if engine:
        return [engine]
    if os.environ.get("DOCKER_HOST"):
        return [os.environ["DOCKER_HOST"]]
    sockets = ["/var/run/docker.sock", "/run/podman/podman.sock"]
    if os.environ.get("XDG_RUNTIME_DIR"):
        sockets.append(os.path.join(os.environ["XDG_RUNTIME_DIR"], "podman", "podman.sock"))
    return [f"unix://{s}" for s in sockets]


def connect_engine(engine: str | None = None) -> Any:
    """A ``docker.DockerClient`` for the first engine that answers a ping."""
    try:
        import docker
    except ImportError:
        raise MpkgError("building an image needs the docker package: pip install 'mpkg[builder]'") from None
    tried = engine_candidates(engine)
    for url in tried:
        if url.startswith("unix://") and not Path(url[len("unix://") :]).exists():
            continue
        client = docker.DockerClient(base_url=url, timeout=600)
        try:
            client.ping()
        except Exception:  # any transport or API failure means: not this one
            client.close()
            continue
        return client
    raise EngineUnavailable(
        f"no container engine is reachable (tried {', '.join(tried)}): start Docker, or run "
        "`podman system service --time=0 unix:///run/podman/podman.sock` and set "
        "DOCKER_HOST=unix:///run/podman/podman.sock; "
        "or write the context only with --context-only DIR"
    )


def build_image(client: Any, context: Path, tag: str, log: Callable[[str], None] | None = None) -> str:
    """Build ``context`` as ``tag`` through the Docker API; the build log goes to ``log``."""
    say = log or (lambda _msg: None)
    tail: list[str] = []
    error = None
    try:
        for chunk in client.api.build(path=str(context), tag=tag, rm=True, forcerm=True, pull=False, decode=True):
            text = chunk.get("stream") or chunk.get("status") or ""
            for line in str(text).splitlines():
                if line.strip():
                    say(line.rstrip())
                    tail = [*tail[-19:], line.strip()]
            if chunk.get("error") or chunk.get("errorDetail"):
                error = str(chunk.get("error") or chunk["errorDetail"].get("message", "")).strip()
        if error is None:
            image_id: str = client.images.get(tag).id
            return image_id
    except MpkgError:
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    reason = _build_reason(tail)
    raise MpkgError(f"building image {tag} failed: {error}{'; ' + reason if reason else ''} (the build log is above)")


def _build_reason(tail: Sequence[str]) -> str:
    """The line of the build output most likely to say why (mpkg's or pip's own)."""
    for line in reversed(tail):
        if line.startswith(("mpkg:", "ERROR:", "mpkg containerize:")):
            return line
    return ""


__all__ = ["EngineUnavailable", "build_image", "connect_engine", "engine_candidates"]
