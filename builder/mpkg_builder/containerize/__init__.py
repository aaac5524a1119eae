"""``mpkg containerize``: a serving image for one package, built from a deterministic context.

One job per module: `core` orchestrates; `context` writes the build context, `dockerfile`
renders its Dockerfile, `requirements` what it installs from the lockfile, `wheels` collects
the wheels, `runtime_wheel` makes the runtime's own, `baseimage` pins the base by digest,
`imageref` checks image references (the registry's grammar), `labels` says what an image
carries, `engine` talks to the container engine, `modelcar` writes the image that carries
only the package (KServe ``storageUri: oci://``), `follow` checks and fetches the registry
reference a ``--follow`` image serves, and `cli` is the command.
"""

from __future__ import annotations

from .context import BuildContext, write_context
from .core import ContainerizeResult, containerize
from .dockerfile import CONTAINER_PORT, DEFAULT_BASE, RUNTIME_UID, VENV, render_dockerfile
from .engine import EngineUnavailable, build_image, connect_engine, engine_candidates
from .labels import LABEL_DIGEST, LABEL_RUNTIME, ServedPackage, image_labels
from .runtime_wheel import build_runtime_wheel
from .wheels import collect_wheels

__all__ = [
    "CONTAINER_PORT",
    "DEFAULT_BASE",
    "LABEL_DIGEST",
    "LABEL_RUNTIME",
    "RUNTIME_UID",
    "VENV",
    "BuildContext",
    "ContainerizeResult",
    "EngineUnavailable",
    "ServedPackage",
    "build_image",
    "build_runtime_wheel",
    "collect_wheels",
    "connect_engine",
    "containerize",
    "engine_candidates",
    "image_labels",
    "render_dockerfile",
    "write_context",
]
