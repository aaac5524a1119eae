"""``mpkg deploy``: Kubernetes and KServe manifests for a package (spec/deploy.md).

:func:`plan` verifies the package and builds the documents; :func:`render_stream` and
:func:`write_folder` print or write them. Nothing here talks to a cluster.

- :mod:`.facts`: the package's identity and sizes, and the sizing formulas;
- :mod:`.sources`: where the container finds the package, and its command line;
- :mod:`.workload`: the serving pod both targets share;
- :mod:`.kubernetes`, :mod:`.kserve`: the objects of each target;
- :mod:`.output`: YAML, and the folder written atomically.
"""

from __future__ import annotations

from .facts import PackageFacts, Sizing, read_facts, sizing
from .output import Document, render_stream, write_folder
from .plan import DEFAULT_REPLICAS, TARGETS, DeployOptions, Plan, check_options, parse_replicas, plan
from .sources import BakedPackage, ModelcarPackage, PackageSource, ServerSettings, server_invocation
from .workload import Replicas, Workload

__all__ = [
    "DEFAULT_REPLICAS",
    "TARGETS",
    "BakedPackage",
    "DeployOptions",
    "Document",
    "ModelcarPackage",
    "PackageFacts",
    "PackageSource",
    "Plan",
    "Replicas",
    "ServerSettings",
    "Sizing",
    "Workload",
    "check_options",
    "parse_replicas",
    "plan",
    "read_facts",
    "render_stream",
    "server_invocation",
    "sizing",
    "write_folder",
]
