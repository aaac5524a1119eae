"""Where the serving container finds its package, and the one function that turns that into
the container's command line.

Each way of bringing a package is a small frozen type; :func:`server_invocation` is the only
place that knows how each one is served: baked into the image, a KServe modelcar, or a
registry reference followed with ``mpkg serve REF --follow`` (:class:`FollowedReference`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..containerize.dockerfile import CONTAINER_PORT, VENV
from ..containerize.follow import CACHE_DIR, DOCKER_CONFIG_DIR, Followed

MPKG = f"{VENV}/bin/mpkg"
# KServe mounts a storageUri's files here in the predictor container (constants.DefaultModelLocalMountPath).
KSERVE_MODEL_DIR = "/mnt/models"
# Where `mpkg containerize` puts the package in the runtime image and `--modelcar` in its own.
IMAGE_MODEL_DIR = "/models"
KEYS_DIR = "/etc/mpkg/keys"


@dataclass(frozen=True)
class BakedPackage:
    """The package is inside the runtime image, where ``mpkg containerize`` put it."""

    filename: str

    @property
    def path(self) -> str:
        """Where the package sits inside the serving image."""
        return f"{IMAGE_MODEL_DIR}/{self.filename}"


@dataclass(frozen=True)
class ModelcarPackage:
    """The package is the only content of an OCI image (``mpkg containerize --modelcar``).

    KServe runs that image as a sidecar sharing the pod's process namespace and links its
    ``/models`` at ``/mnt/models`` in the runtime container, possibly after the runtime has
    started (KServe sets MODEL_INIT_MODE=async for that reason): the server waits for the file.
    """

    image: str
    filename: str

    @property
    def storage_uri(self) -> str:
        """KServe's reference to the modelcar image."""
        return f"oci://{self.image}"

    @property
    def path(self) -> str:
        """Where KServe exposes the modelcar's package to the server."""
        return f"{KSERVE_MODEL_DIR}/{self.filename}"


@dataclass(frozen=True)
class FollowedReference:
    """The server pulls what a registry reference names and follows its tag (``mpkg serve REF
    --follow``): a promote or rollback reaches the pods without a new deploy. The package cache
    (``MPKG_HOME``) is a volume at :data:`CACHE_DIR` (the root filesystem is read-only)."""

    followed: Followed
    registry_secret: str | None = None  # a kubernetes.io/dockerconfigjson Secret, mounted as DOCKER_CONFIG

    @property
    def reference(self) -> str:
        """The registry reference the pods follow."""
        return self.followed.reference


PackageSource = BakedPackage | ModelcarPackage | FollowedReference


@dataclass(frozen=True)
class ServerSettings:
    """How ``mpkg serve`` runs in the pod, whatever the source."""

    drain_timeout: float
    key_files: tuple[str, ...]  # file names under KEYS_DIR
    allow_unsigned: bool = False
    port: int = CONTAINER_PORT

    @property
    def keys_env(self) -> str:
        """``MPKG_KEYS``: the mounted key files, colon-separated."""
        return ":".join(f"{KEYS_DIR}/{name}" for name in self.key_files)


@dataclass(frozen=True)
class Invocation:
    """How the container starts the server: command, arguments and environment."""

    command: tuple[str, ...]
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]


# Wait for the modelcar's link, then become `mpkg serve` (exec: signals reach the server).
# No counter: the startupProbe bounds the wait and restarts the container when it runs out.
# Written without `$(` so that kubelet's $(VAR) expansion leaves it alone.
_WAIT_THEN_SERVE = (
    'until [ -e "$1" ]; do echo "mpkg: waiting for $1 (KServe modelcar)" >&2; sleep 1; done; exec "$0" serve "$@"'
)


def server_invocation(source: PackageSource, settings: ServerSettings) -> Invocation:
    """The serving container's command, arguments and environment for ``source``."""
    options = [
        "--host",
        "0.0.0.0",
        "--port",
        str(settings.port),
        "--drain-timeout",
        f"{settings.drain_timeout:g}",
    ]
    if settings.allow_unsigned:
        options.append("--allow-unsigned")
    env = (("MPKG_KEYS", settings.keys_env),) if settings.key_files else ()
    if isinstance(source, BakedPackage):
        return Invocation((MPKG,), ("serve", source.path, *options), env)
    if isinstance(source, ModelcarPackage):
        return Invocation(("/bin/sh", "-c", _WAIT_THEN_SERVE, MPKG), (source.path, *options), env)
    if isinstance(source, FollowedReference):
        env = (*env, ("MPKG_HOME", CACHE_DIR))
        if source.registry_secret is not None:
            env = (*env, ("DOCKER_CONFIG", DOCKER_CONFIG_DIR))
        return Invocation((MPKG,), ("serve", *source.followed.serve_arguments(), *options), env)
    raise TypeError(f"unknown package source {source!r}")


def default_drain_timeout() -> float:
    """The server's own default (``mpkg serve --drain-timeout``), read from its options."""
    from mpkg.serve.server import ServeOptions

    field = next(f for f in dataclasses.fields(ServeOptions) if f.name == "drain_timeout")
    value = field.default
    assert isinstance(value, int | float), value
    return float(value)


def grace_period(drain_timeout: float, pre_stop_seconds: int) -> int:
    """terminationGracePeriodSeconds: the preStop pause, the drain, and 10 s to exit."""
    return pre_stop_seconds + math.ceil(drain_timeout) + 10


__all__ = [
    "KEYS_DIR",
    "KSERVE_MODEL_DIR",
    "BakedPackage",
    "FollowedReference",
    "Invocation",
    "ModelcarPackage",
    "PackageSource",
    "ServerSettings",
    "default_drain_timeout",
    "grace_period",
    "server_invocation",
]
