"""``mpkg deploy``: argument parsing and output; the work is in :mod:`.plan`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mpkg._internal.commandline import add_key_options, emit_json, info, trusted_keys
from mpkg.errors import UsageError

from ..containerize.follow import parse_interval
from .output import render_stream, write_folder
from .plan import DEFAULT_REPLICAS, TARGETS, DeployOptions, parse_replicas, plan


def _replicas(text: str) -> Any:
    try:
        return parse_replicas(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(exc.problems[0].reason) from None


def _percent(text: str) -> int:
    if not text.isdigit() or int(text) > 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage from 0 to 100")
    return int(text)


def register(subparsers: Any) -> None:
    """Add ``deploy`` to the ``mpkg`` parser (CLI convention)."""
    p = subparsers.add_parser(
        "deploy",
        help="write Kubernetes or KServe manifests that serve a package",
        description="Verify PKG with the trusted keys and write the manifests that serve it: "
        "a KServe ServingRuntime + InferenceService, or a Deployment + Service + "
        "HorizontalPodAutoscaler + PodDisruptionBudget. Never talks to a cluster; apply the "
        "output with `kubectl apply -f DIR`. See spec/deploy.md.",
    )
    p.add_argument("package", metavar="PKG", help="the .mpkg to serve (with --follow: the registry REF to follow)")
    p.add_argument(
        "--follow",
        action="store_true",
        help="the pods run `mpkg serve REF --follow` and swap in what a promote or rollback puts under "
        "the tag; facts come from what REF names now (--image: a `containerize --follow` image)",
    )
    p.add_argument("--interval", type=parse_interval, metavar="DURATION", help="with --follow: how often to poll (5s)")
    p.add_argument("--insecure", action="store_true", help="with --follow: the registry talks plain HTTP")
    p.add_argument(
        "--registry-secret",
        metavar="NAME",
        help="with --follow: a kubernetes.io/dockerconfigjson Secret with the registry's credentials",
    )
    p.add_argument("--target", required=True, choices=TARGETS)
    p.add_argument(
        "--image",
        metavar="IMAGE",
        help="the runtime image `mpkg containerize` built, best pinned as NAME@sha256:DIGEST",
    )
    p.add_argument(
        "--modelcar",
        metavar="IMAGE",
        help="kserve: the package's own image (`containerize --modelcar`), served from storageUri oci://IMAGE",
    )
    p.add_argument("--name", metavar="N", help="name of the objects (default: the package name)")
    p.add_argument("--namespace", metavar="NS", help="namespace (default: none, as kubectl apply -n chooses)")
    p.add_argument(
        "--replicas",
        type=_replicas,
        default=DEFAULT_REPLICAS,
        metavar="MIN:MAX",
        help=f"autoscaling bounds (default {DEFAULT_REPLICAS.minimum}:{DEFAULT_REPLICAS.maximum})",
    )
    p.add_argument("--canary", type=_percent, metavar="PERCENT", help="kserve: traffic share of the new revision")
    p.add_argument("--cluster-runtime", action="store_true", help="kserve: a ClusterServingRuntime instead")
    p.add_argument(
        "--kserve-mode",
        choices=("standard", "knative"),
        help="kserve: deployment mode written into the InferenceService (default standard; "
        "knative for --canary and scale to zero)",
    )
    add_key_options(p)
    p.add_argument("-o", "--output", metavar="DIR", help="write one file per object into DIR (default: stdout)")
    p.add_argument("--json", action="store_true", help="print a JSON summary (with -o)")
    p.set_defaults(handler=cmd_deploy)


def cmd_deploy(args: argparse.Namespace) -> int:
    """`mpkg deploy`: write manifests for a package; never talks to a cluster."""
    options = DeployOptions(
        target=args.target,
        image=args.image,
        name=args.name,
        namespace=args.namespace,
        replicas=args.replicas,
        canary_percent=args.canary,
        cluster_runtime=args.cluster_runtime,
        modelcar=args.modelcar,
        kserve_mode=args.kserve_mode,
        keys=tuple(trusted_keys(args)),
        allow_unsigned=args.allow_unsigned,
        follow=args.follow,
        interval=args.interval,
        insecure=args.insecure,
        registry_secret=args.registry_secret,
    )
    if args.json and not args.output:
        raise UsageError("--json summarises files written with -o DIR; without -o the manifests go to stdout", "--json")
    result = plan(args.package, options)
    for warning in result.warnings:
        info(f"mpkg: warning: {warning}")
    if not args.output:
        sys.stdout.write(render_stream(result.documents, result.origin))
        return 0
    paths = write_folder(result.documents, args.output, result.origin)
    if args.json:
        emit_json(
            {
                "ok": True,
                "target": args.target,
                "package": {"name": result.facts.name, "version": result.facts.version, "digest": result.facts.digest},
                "follow": args.package if args.follow else None,
                "files": [str(p) for p in paths],
                "memory": result.sizing.memory,
                "startup_seconds": result.sizing.startup_seconds,
                "warnings": list(result.warnings),
            }
        )
    else:
        info(f"wrote {len(paths)} manifests for {result.origin} to {args.output}")
        for path in paths:
            info(f"  {path}")
    return 0
